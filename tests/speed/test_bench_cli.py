"""zturbo bench: the report helpers and --quality on the tiny model (no timings asserted)."""

import json

import pytest

from zturbo.cli import main
from zturbo.benchmark.harness import summary, table


def _res():
    row = lambda t: {"prompt_to_png_s": t, "dit_s_per_pass": t / 10, "dit_tflops": 1.0, "peak_gb": 1.0,  # noqa: E731
                     "first_call_s": 1.0}
    return {"sizes": ["64x64"], "variants": {
        "stock": {"64x64": row(2.0), "transformer_gb": 1.0},
        "stock-q8": {"64x64": row(3.0), "transformer_gb": 0.5},
        "q8-fp8": {"64x64": row(1.0), "transformer_gb": 0.5},
        "fast": {"error": "RuntimeError: broken"},
    }}


def test_summary_and_table_name_speedups_and_errors():
    s = summary(_res())
    assert s["q8-fp8_speedup_vs_stock"] == 2.0 and s["q8_fp8_speedup_vs_q8_on_the_fly"] == 3.0
    t = table(_res())
    assert "x stock" in t.splitlines()[0] and "RuntimeError: broken" in t


def test_quality_on_tiny_cpu_writes_json(tmp_path, capsys):
    out = tmp_path / "q.json"
    assert main(["bench", "--quality", "--tiny", "--device", "cpu", "--sizes", "64x64", "--prompts", "1",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["tiers"]) == {"fp8", "fp8-all"}  # the default: the calibrated policy beside all-FP8
    for tier in res["tiers"].values():
        assert tier["images"][0]["psnr_db"] == 99.0 and tier["images"][0]["ssim"] == 1.0  # a CPU runs no FP8
        assert any(s.startswith("compile: off") for s in tier["speed"]) and tier["fp8_policy"] is None
    assert "fp8: off (no CUDA GPU" in capsys.readouterr().out  # says why nothing changed


def test_quality_reports_lpips_where_its_weights_are_on_disk_and_says_why_not_elsewhere(tmp_path, capsys,
                                                                                         monkeypatch):
    from zturbo.report import learned

    args = ["bench", "--quality", "--tiny", "--device", "cpu", "--sizes", "64x64", "--prompts", "1", "--tier", "fast"]
    out = tmp_path / "q.json"
    assert main([*args, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "lpips" not in res["tiers"]["fast"]["images"][0] and res["lpips"].startswith("unavailable")
    assert "LPIPS: unavailable" in capsys.readouterr().out
    # with the backbone on disk: one distance per image pair, from the report's own LPIPS
    monkeypatch.setattr(learned, "_lpips_backbone", lambda: tmp_path / "alexnet.pth")
    seen = []
    monkeypatch.setattr(learned, "lpips_distances", lambda pairs: seen.append(pairs) or {k: 0.0 for k in pairs})
    assert main([*args, "--json", str(out)]) == 0
    tier = json.loads(out.read_text())["tiers"]["fast"]
    assert tier["images"][0]["lpips"] == 0.0 and tier["mean_lpips"] == 0.0
    (a, b), = seen[0].values()
    assert a.size == b.size == (64, 64)


def test_quality_prints_the_per_gemm_error_table_of_the_calibrated_tier(tmp_path, capsys, monkeypatch):
    from test_fp8_policy import _pretend_fp8_runs

    _pretend_fp8_runs(monkeypatch)
    out = tmp_path / "q.json"
    assert main(["bench", "--quality", "--tiny", "--device", "cpu", "--sizes", "64x64", "--prompts", "1",
                 "--tier", "fp8,fp8-all", "--fp8-budget", "0.03", "--top", "3", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    policy = res["tiers"]["fp8"]["fp8_policy"]
    assert policy["budget"] == 0.03 and policy["kept_bf16"]
    assert res["tiers"]["fp8-all"]["fp8_policy"]["budget"] == "all"
    text = capsys.readouterr().out
    assert "FP8 error per block GEMM (calibration on these weights, top 3 of 8)" in text
    rows = [line for line in text.splitlines() if line.startswith("  ") and "%" in line]
    assert len(rows) == 3 and "bf16" in rows[0] and policy["kept_bf16"][0] in rows[0]  # the worst first, kept


def test_quality_bad_tier_is_named(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--quality", "--tiny", "--tier", "fp8,fp4"])
    assert exit_.value.code == 2 and "unknown tier fp4: choose from fast,fp8,fp8-all" in capsys.readouterr().err


def test_bench_without_a_gpu_says_so_instead_of_loading_the_full_model(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench"]) == 2
    err = capsys.readouterr().err
    assert "on a CUDA GPU, and there is none here (device cpu)" in err and "zturbo bench --tiny --device cpu" in err
    assert main(["bench", "--device", "cuda"]) == 2
    assert "(device cuda)" in capsys.readouterr().err


@pytest.mark.parametrize("args,msg", [
    (["--sizes", "64"], "argument --sizes: size '64' is not WIDTHxHEIGHT"),
    (["--sizes", "0x64"], "argument --sizes: width must be positive, got 0"),
    (["--sizes", "64x64,100x64"], "width 100 is not a multiple of 16 (VAE 8x × patch 2): use 96 or 112"),
    (["--variants", "stock,turbo"], "argument --variants: unknown variant turbo: choose from stock,"),
])
def test_bench_bad_sizes_and_variants_are_named(capsys, args, msg):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--tiny", *args])
    assert exit_.value.code == 2 and msg in capsys.readouterr().err
