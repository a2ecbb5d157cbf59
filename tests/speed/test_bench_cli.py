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


def test_quality_on_tiny_cpu_writes_json(tmp_path):
    out = tmp_path / "q.json"
    assert main(["bench", "--quality", "--tiny", "--device", "cpu", "--sizes", "64x64", "--prompts", "1",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["images"][0]["psnr_db"] == 99.0 and res["images"][0]["ssim"] == 1.0  # on a CPU --fast changes nothing
    assert any(s.startswith("compile: off") for s in res["candidate"]["speed"])


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
    (["--variants", "stock,turbo"], "argument --variants: unknown variant turbo: choose from stock,"),
])
def test_bench_bad_sizes_and_variants_are_named(capsys, args, msg):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--tiny", *args])
    assert exit_.value.code == 2 and msg in capsys.readouterr().err
