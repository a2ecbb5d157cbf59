"""--fp8's calibrated layer policy on a CPU (tiny model): the emulation, the ranking, the budget, the cache,
the recipe and --from, and bad --fp8-budget values. tests/gpu/test_fp8_policy_gpu.py checks it against torchao."""

import json

import pytest
import torch

from zturbo import Engine, InvalidParams, LoadOptions
from zturbo.cli import main
from zturbo.metadata import read_recipe
from zturbo.speed import fp8_policy as P
from zturbo.speed.fast import Feature

F8 = torch.float8_e4m3fn


def _reference_fp8_linear(x, w, b):
    """torch's own FP8 GEMM (torch._scaled_mm, what torchao calls on a GPU) on row-wise quantised operands."""
    def q(t, floor):
        scale = t.float().abs().amax(dim=-1, keepdim=True).clamp(min=floor) / 448.0
        return (t.float() / scale).clamp(-448, 448).to(F8), scale

    xq, sx = q(x, 1e-12)
    wq, sw = q(w, 0.0)
    return torch._scaled_mm(xq, wq.t(), sx, sw.t(), bias=None, out_dtype=torch.float32) + b.float()


def test_emulation_matches_torchs_fp8_gemm():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 256, generator=g).bfloat16()
    x[3] = 0  # a padding row: the activation floor keeps it 0, not NaN
    x[5, :4] *= 300  # an outlier row
    w = (torch.randn(96, 256, generator=g) / 16).bfloat16()
    b = torch.randn(96, generator=g).bfloat16()
    got, ref = P.fp8_linear(x, w, b), _reference_fp8_linear(x, w, b)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    exact = torch.nn.functional.linear(x.float(), w.float(), b.float())
    e2, r2 = P.error_terms(x, w, b)
    rel = float((e2 / r2).sqrt())
    assert rel == pytest.approx(float((got - exact).norm() / exact.norm()), rel=1e-4)
    assert 0.005 < rel < 0.1  # e4m3 has 3 mantissa bits: a few percent, not 0 and not garbage


def test_ranking_keeps_the_largest_errors_until_the_budget_holds():
    errors = {"a": 0.30, "b": 0.02, "c": 0.10, "d": 0.03, "e": 0.035}
    # mean over all 5 (kept ones count 0): 0.097 all FP8, 0.037 without a, 0.017 without a and c
    assert P.choose(errors, budget=0.03) == ("a", "c")
    assert P.choose(errors, budget=0.04) == ("a",)
    assert P.choose(errors, budget=0.1) == ()
    policy = P.Fp8Policy.calibrated(errors, 0.03)
    assert policy.mean_error <= 0.03 and policy.kept == ("a", "c")


@pytest.fixture(scope="module")
def engine():
    return Engine.load(model="tiny", device="cpu")


@pytest.fixture(scope="module")
def errors(engine):
    return P.calibrate(engine, 1.0).errors


def test_calibration_measures_every_block_gemm_as_fast_runs_it(errors, engine):
    units = {P.unit_of(n) for n, m in engine.pipe.transformer.named_modules() if P.fp8.is_fp8_linear(m, n)}
    assert set(errors) == units and "layers.1.attention.to_qkv" in units  # q/k/v measured as one GEMM
    assert all(0.0 < e < 0.2 for e in errors.values())


@pytest.mark.parametrize("budget", [0.036, 0.03, 0.01])
def test_policy_keeps_the_most_sensitive_and_the_budget_holds(errors, budget):
    policy = P.Fp8Policy.calibrated(errors, budget)
    assert policy.mean_error <= budget
    assert policy.kept  # every budget here is below the all-FP8 mean (~3.7%)
    fp8 = [e for u, e in errors.items() if u not in policy.kept]
    assert min(errors[u] for u in policy.kept) >= max(fp8, default=0.0)
    # and no more than needed: putting back the last one kept breaks the budget
    fewer = sum(fp8) + errors[policy.kept[-1]]
    assert fewer > budget * len(errors)
    assert policy.is_fp8("layers.0.feed_forward.w13") != ("layers.0.feed_forward.w13" in policy.kept)
    for unit in policy.kept:  # a kept fused GEMM keeps its unfused parts too
        if unit.endswith("to_qkv"):
            assert not policy.is_fp8(unit[: -len("to_qkv")] + "to_k")


def test_cache_is_hit_on_a_second_load_and_missed_when_weights_change(engine, monkeypatch):
    measured = []
    real = P.measure
    monkeypatch.setattr(P, "measure", lambda *a, **k: measured.append(1) or real(*a, **k))
    first = P.calibrate(Engine.load(model="tiny", device="cpu"), 0.03)
    before = len(measured)
    second = P.calibrate(Engine.load(model="tiny", device="cpu"), 0.03)
    assert len(measured) == before  # no generation ran: the cached errors were used
    assert second.seconds is None and "cached" in second.summary() and second.path == first.path
    assert second.kept == first.kept and second.sha256 == first.sha256
    # other weights (the tiny model drawn from another seed): measured again, another cache file
    from zturbo.models import tiny

    monkeypatch.setattr(tiny, "WEIGHTS_SEED", 7)
    other = P.calibrate(Engine.load(model="tiny", device="cpu"), 0.03)
    assert len(measured) == before + 1
    assert other.seconds is not None and other.path != first.path and other.errors != first.errors
    assert json.loads(open(other.path).read())["weights_key"] == other.weights_key


def _pretend_fp8_runs(monkeypatch):
    """The CPU has no FP8 GEMMs: let load() calibrate as on an sm_89+ GPU and report FP8 on."""
    import zturbo.speed as speed
    from zturbo.speed import fast

    monkeypatch.setattr(fast, "fp8_blocker", lambda pipe, offload=None: None)
    real = speed.apply_fast

    def apply(pipe, tier, *a, fp8_policy=None, **k):
        out = [f for f in real(pipe, tier, *a, **k) if f.name != "fp8"]
        return out + [Feature("fp8", True, fp8_policy.summary())]

    monkeypatch.setattr(speed, "apply_fast", apply)


def test_recipe_carries_the_policy_and_from_reproduces_it(monkeypatch, tmp_path, small_params, capsys):
    _pretend_fp8_runs(monkeypatch)
    engine = Engine.load(LoadOptions(model="tiny", device="cpu", fast="fp8", fp8_budget=0.03))
    policy = engine.fp8_policy
    assert policy is not None and policy.budget == 0.03 and policy.kept
    recipe = engine.generate(small_params).recipes[0]
    assert recipe["fp8_policy"]["sha256"] == policy.sha256
    assert recipe["fp8_policy"]["kept_bf16"] == list(policy.kept)
    assert any("FP8 policy:" in s for s in recipe["speed"])
    # the CLI: the summary line at load, the recipe in the PNG, --from loads --fp8 at the same budget again
    out = tmp_path / "a.png"
    assert main(["generate", "a robot", "--model", "tiny", "--device", "cpu", "--size", "64x64", "--fp8",
                 "--fp8-budget", "0.03", "-o", str(out), "-q"]) == 0
    assert read_recipe(out)["fp8_policy"]["sha256"] == policy.sha256
    again = tmp_path / "b.png"
    assert main(["generate", "--from", str(out), "-o", str(again)]) == 0
    assert "FP8 policy: " in capsys.readouterr().err
    assert read_recipe(again)["fp8_policy"]["sha256"] == policy.sha256


def test_no_policy_where_fp8_does_not_run(small_params):
    engine = Engine.load(LoadOptions(model="tiny", device="cpu", fast="fp8"))
    assert engine.fp8_policy is None  # on a CPU nothing is quantised: no policy claimed
    assert engine.generate(small_params).recipes[0]["fp8_policy"] is None


@pytest.mark.parametrize("value", ["0", "-0.1", "nan", "inf", "lots", "1e400"])
def test_bad_fp8_budget_is_exit_2(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "x", "--model", "tiny", "--device", "cpu", "--fp8", "--fp8-budget", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--fp8-budget: must be a positive number" in err and f"got '{value}'" in err
    assert len(err.strip().splitlines()) == 1


def test_fp8_budget_without_fp8_is_exit_2(capsys):
    assert main(["generate", "x", "--model", "tiny", "--device", "cpu", "--fp8-budget", "0.05"]) == 2
    assert "--fp8-budget goes with --fp8" in capsys.readouterr().err
    with pytest.raises(InvalidParams, match="positive number"):
        LoadOptions(model="tiny", fast="fp8", fp8_budget=True)


def test_sweep_quant_fp8_tiers_fail_with_one_line_where_fp8_cannot_run(tmp_path, capsys):
    code = main(["sweep", "steps", "quant", "--quants", "bf16,fp8,fp8-all", "--size", "32x32", "--rng", "cpu",
                 "--model", "tiny", "--device", "cpu", "-q", "--out", str(tmp_path / "s")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1 and "Traceback" not in text
    for tier in ("fp8", "fp8-all"):  # never bf16 pixels under an FP8 label
        assert (f"not made: 6 {tier} image(s), {tier} could not be loaded: FP8 GEMMs cannot run here: the "
                "transformer is on cpu, not a CUDA GPU") in text
    assert not (tmp_path / "s" / "quant" / "fp8").exists()


def test_a_grid_varies_quant_over_the_fp8_tiers_too(tmp_path, capsys):
    code = main(["sweep", "--prompt", "a fox", "--vary", "quant=bf16,fp8", "--size", "32x32", "--steps", "2",
                 "--rng", "cpu", "--model", "tiny", "--device", "cpu", "-q", "--out", str(tmp_path / "g")])
    text = "".join(capsys.readouterr())
    assert code == 1 and "Traceback" not in text  # here FP8 cannot run: its image is not made, and said so
    assert "not made: 1 fp8 image(s), fp8 could not be loaded: FP8 GEMMs cannot run here" in text
    assert (tmp_path / "g" / "grid" / "bf16.png").is_file() and not (tmp_path / "g" / "grid" / "fp8.png").exists()


def test_sweep_fp8_tiers_load_bf16_weights_with_fp8_gemms():
    opts = LoadOptions(model="tiny", quant="q8")
    assert opts.with_quant("fp8") == LoadOptions(model="tiny", quant="bf16", fast="fp8")
    assert opts.with_quant("fp8-all").fp8_budget == "all"
    tight = LoadOptions(model="tiny", fast="fp8", fp8_budget=0.02)
    assert tight.with_quant("fp8").fp8_budget == 0.02  # the sweep's --fp8-budget, never replaced


def test_error_is_the_same_in_chunks_of_output_rows():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(32, 64, generator=g), torch.randn(100, 64, generator=g)
    whole = P.error_terms(x, w, chunk=1000)
    for a, b in zip(P.error_terms(x, w, chunk=16), whole):
        assert float(a) == pytest.approx(float(b), rel=1e-5)


@pytest.mark.parametrize("command", ["generate", "bench", "sweep", "serve"])
def test_help_shows_the_fp8_budget(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "--fp8-budget" in capsys.readouterr().out


def test_a_local_folders_shards_name_the_weights_and_a_hub_blob_is_not_read(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import zturbo.hashing as hashing

    folder = tmp_path / "model"
    (folder / "transformer").mkdir(parents=True)
    blob = tmp_path / ("ab" * 32)  # a hub cache blob: its name is its sha256
    blob.write_bytes(b"hub shard")
    (folder / "transformer" / "part-1.safetensors").write_bytes(b"local shard one")
    (folder / "transformer" / "part-2.safetensors").symlink_to(blob)
    engine = SimpleNamespace(info=SimpleNamespace(model=str(folder), source="local"))
    read = []
    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: (read.append(p.name), real(p))[1])
    first = P._files_hash(engine)
    assert read == ["part-1.safetensors"]
    (folder / "transformer" / "part-1.safetensors").write_bytes(b"local shard, another version")
    assert P._files_hash(engine) != first
