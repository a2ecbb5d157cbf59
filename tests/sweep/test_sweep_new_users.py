"""What new users ran into (issue 13): a grid re-run at another size into one folder, a sweep with no
weights, dry-run counts that disagreed with the run's summary, a time estimate that named no device."""

import json
import re
from types import SimpleNamespace

import pytest

from zturbo.cli import main
from zturbo.errors import WeightsNotFound
from zturbo.sweep import load_sweep, runner
from zturbo.sweep.grid import build_grid, parse_vary
from zturbo.sweep.manifest import sha256_of
from zturbo.sweep.plan import Plan, Target, describe
from zturbo.sweep.runner import run_sweep

TINY = ["--model", "tiny", "--device", "cpu", "--rng", "cpu", "-q"]


class _Instant:
    """An engine that makes no pixels, at once."""

    device_name, versions = "cpu", {}
    info = SimpleNamespace(to_dict=lambda: {"model": "tiny"})

    def generate(self, params):
        return SimpleNamespace(image=None, recipes=[{"params": params.to_dict()}])


def _save(image, target, recipe):
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(recipe["params"], sort_keys=True))


@pytest.fixture
def instant(monkeypatch):
    """Every model load gives _Instant, and a PNG is its recipe's params: these tests are about which files
    and records a sweep writes, not about pixels (the tiny model's real runs are test_cli_sweep's)."""
    monkeypatch.setattr("zturbo.cli.sweep.load_engine", lambda *a, **k: _Instant())
    monkeypatch.setattr(runner, "save_png", _save)


def _fox(out, *extra):
    return ["sweep", "--prompt", "a red fox", "--vary", "steps=1,2", "--out", str(out), "--name", "fox", *TINY, *extra]


def _hashes(folder):
    return {p.relative_to(folder).as_posix(): sha256_of(p) for p in sorted(folder.rglob("*.png"))}


def test_a_grid_rerun_with_another_size_refuses_and_keeps_the_images(tmp_path, capsys, instant):
    out = tmp_path / "D"
    assert main(_fox(out, "--size", "64x64")) == 0
    before, manifest = _hashes(out), (out / "manifest.jsonl").read_text()
    capsys.readouterr()

    assert main(_fox(out, "--size", "32x32")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert "size 64x64 -> 32x32" in err and "--name" in err and "--out" in err and "--overwrite" in err
    assert _hashes(out) == before and (out / "manifest.jsonl").read_text() == manifest  # nothing touched
    assert main(_fox(out, "--size", "32x32", "--dry-run")) == 2  # the dry run says so too
    assert "size 64x64 -> 32x32" in capsys.readouterr().err

    # the same command again still resumes: nothing redone, nothing appended
    assert main(_fox(out, "--size", "64x64")) == 0
    assert _hashes(out) == before and (out / "manifest.jsonl").read_text() == manifest

    # asked for: replaced, and the new records win
    assert main(_fox(out, "--size", "32x32", "--overwrite")) == 0
    sweep = load_sweep(out)
    assert {r["params"]["width"] for r in sweep.records.values()} == {32}
    assert sweep.status_counts() == {"ok": 2, "failed": 0, "pending": 0}


def test_a_rerun_that_drops_an_experiments_images_is_refused(tmp_path, capsys, instant):
    out = tmp_path / "D"
    assert main(_fox(out, "--size", "32x32")) == 0
    capsys.readouterr()
    argv = ["sweep", "--prompt", "a red fox", "--vary", "steps=3", "--size", "32x32", "--out", str(out),
            "--name", "fox", *TINY]
    assert main(argv) == 2  # fox/STEP1, fox/STEP2 would fall out of plan.json and the report
    assert "'fox' with 2 image(s) this run does not make" in capsys.readouterr().err
    assert len(load_sweep(out).items) == 2


def test_steps_then_seeds_into_one_folder_keeps_both_in_the_plan(tmp_path, instant):
    out = tmp_path / "D"
    assert main(["sweep", "steps", "--size", "32x64", "--out", str(out), *TINY]) == 0
    assert main(["sweep", "seeds", "--size", "32x64", "--out", str(out), *TINY]) == 0
    assert main(["sweep", "steps", "--size", "32x64", "--out", str(out), *TINY]) == 0  # resumes: both stay
    sweep = load_sweep(out)
    assert sorted(e["name"] for e in sweep.experiments) == ["seeds", "steps"]
    assert sweep.status_counts() == {"ok": 22, "failed": 0, "pending": 0}


def test_a_sweep_with_no_weights_stops_once_with_one_message(tmp_path, capsys):
    """The hub model (the default) is not on this machine and HF_HUB_OFFLINE is set (conftest)."""
    out = tmp_path / "D"
    code = main(["sweep", "steps", "--size", "32x32", "--out", str(out), "--device", "cpu", "-q"])
    assert code == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: cannot load bf16:") and "\n" not in err
    assert err.count("not found") == 1 and "failed:" not in captured.out
    sweep = load_sweep(out)  # consistent: the plan, and no record of images never tried
    assert sweep.status_counts() == {"ok": 0, "failed": 0, "pending": 6}
    assert not (out / "manifest.jsonl").exists() or not (out / "manifest.jsonl").read_text()


def _quant_grid():
    exp = build_grid("g", ["a robot"], {"size": "32x32", "steps": 1, "rng": "cpu"},
                     [parse_vary("seed=1-3"), parse_vary("quant=bf16,q8,q2")])
    return Plan([exp], "a robot", "")


def test_every_precision_failing_to_load_is_one_error(tmp_path):
    def loader(quant):
        raise WeightsNotFound("weights not found: run `hf download ...`")

    with pytest.raises(WeightsNotFound) as info:
        run_sweep(_quant_grid(), tmp_path, loader=loader, model="tiny", quiet=True)
    message = str(info.value)
    assert message.startswith("cannot load bf16, q8, q2: weights not found")  # one cause, said once
    assert message.count("weights not found") == 1
    assert load_sweep(tmp_path).status_counts() == {"ok": 0, "failed": 0, "pending": 9}

    def by_file(quant):  # different causes: the first in full, the others by name
        raise WeightsNotFound("weights not found: run `hf download ...`" if quant == "bf16" else
                              f"GGUF file {quant}.gguf not found. Download it")

    with pytest.raises(WeightsNotFound, match=r"^cannot load bf16: weights not found: run `hf download \.\.\.` "
                                              r"\(q8, q2 could not be loaded either: GGUF file q8.gguf not found\)"):
        run_sweep(_quant_grid(), tmp_path, loader=by_file, model="tiny", quiet=True)


def test_a_precision_that_loads_goes_on_when_another_does_not(tmp_path, tiny_engine):
    def loader(quant):
        if quant != "bf16":
            raise WeightsNotFound(f"no {quant} file here")
        return tiny_engine

    out = run_sweep(_quant_grid(), tmp_path, loader=loader, model="tiny", quiet=True)
    assert out.any_failed and out.made == 3
    assert load_sweep(tmp_path).status_counts() == {"ok": 3, "failed": 0, "pending": 6}
    table = runner.summary_table(_quant_grid().groups(), out.records, out.not_loaded)
    assert "not made: 3 q8 image(s), q8 could not be loaded: no q8 file here" in table
    assert "not made: 3 q2 image(s), q2 could not be loaded: no q2 file here" in table
    assert "failed:" not in table


def _dry_counts(text):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^  (\S+)\s+(\d+) images ", text, re.M)}


def _summary_counts(text):
    rows = text.split("-" * 10)[-1].splitlines()
    return {r.split()[0]: int(r.split()[1]) for r in rows if re.match(r"^\S+\s+\d+\s+\d+", r)}


@pytest.mark.parametrize("argv", [
    ["steps", "quant", "--quants", "bf16,q8", "--vary", "seed=1,2", "--prompt", "x"],
    ["quant", "--quants", "bf16,q2", "--megapixels", "0.01", "--ladder-base", "32x16"],
    ["--vary", "seed=1,2", "--vary", "quant=bf16,q8", "--prompt", "x"],
], ids=["steps-quant-grid", "quant-alone", "grid"])
def test_dry_run_and_the_runs_summary_print_the_same_counts(argv, tmp_path, capsys, instant):
    argv = ["sweep", *argv, "--size", "32x64", "--out", str(tmp_path / "D"), *TINY]
    assert main([*argv, "--dry-run"]) == 0
    dry = _dry_counts(capsys.readouterr().out)
    assert main(argv) == 0
    summary = _summary_counts(capsys.readouterr().out)
    total = summary.pop("all")
    assert summary == dry
    assert total == len(load_sweep(tmp_path / "D").items)


def test_dry_run_names_the_device_its_estimate_is_for(capsys):
    assert main(["sweep", "--vary", "seed=1,2", "--size", "64x64", "--dry-run", *TINY]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "estimated time" in x)
    assert line.startswith("estimated time on cpu:") and "tiny demo model" in line
    assert "measured on a 2-core CPU" in line and "H200" not in line  # no GPU seconds for a CPU run

    plan = Plan([build_grid("g", ["x"], {"size": "64x64"}, [parse_vary("seed=1,2")])], "x", "")
    real_on_cpu = describe(plan, target=Target("cpu", "cpu"))
    assert "no GPU here (cpu)" in real_on_cpu and "on an NVIDIA H200 the sweep would take" in real_on_cpu
    h200 = describe(plan, target=Target("cuda", "NVIDIA H200"))
    assert "estimated time on NVIDIA H200:" in h200 and "measured on an NVIDIA H200" in h200
    other = describe(plan, target=Target("cuda", "NVIDIA GeForce RTX 4090"))
    assert "on NVIDIA GeForce RTX 4090:" in other and "if it runs as fast as an NVIDIA H200" in other
    assert "not estimated" in describe(plan, target=Target("cuda", "NVIDIA H200", tiny=True))
    assert json.dumps(plan.estimate(target=Target("cuda", "NVIDIA H200", tiny=True))["seconds"]) == "null"


def test_dry_run_estimates_the_tier_asked_for_with_its_compile(capsys, tmp_path, monkeypatch):
    """--fast / --fp8 run their passes faster and pay a compile (and --fp8 a calibration) once: the estimate says
    which rates it used, and a filled compile cache shortens the compile."""
    from zturbo.sweep.specs import article_experiments

    plan = Plan(article_experiments(["steps", "guidance", "seeds", "aspect", "resolution"]), "x", "")
    h200 = lambda **kw: Target("cuda", "NVIDIA H200", **kw)  # noqa: E731
    cold = {t: plan.estimate(target=h200(tier=t))["seconds"] for t in (None, "lossless", "fp8")}
    warm = {t: plan.estimate(target=h200(tier=t, compiled_before=True, calibrated_before=True))["seconds"]
            for t in ("lossless", "fp8")}
    assert cold["lossless"] < cold[None]  # 50 images: the passes saved outweigh the compile
    assert warm["fp8"] < warm["lossless"] < cold["lossless"] and warm["fp8"] < cold["fp8"]
    line = describe(plan, target=h200(tier="fp8")).splitlines()
    assert any("--fp8 rates measured on an NVIDIA H200" in x and "compiling on an empty compile cache" in x
               and "calibrating" in x for x in line)
    shown = describe(plan, target=h200(tier="lossless", compiled_before=True))
    assert "--fast rates" in shown and "from the compile cache" in shown and "calibrating" not in shown
    # the CLI looks at the caches: an empty one is cold
    monkeypatch.setenv("ZTURBO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert main(["sweep", "guidance", "--dry-run", "--fast", "--out", str(tmp_path / "s")]) == 0
    assert "--fast rates" in capsys.readouterr().out
