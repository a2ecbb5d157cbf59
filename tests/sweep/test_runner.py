"""The runner on the tiny model, in-process: resume, failures, full disk, shards."""

import errno
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from zturbo.errors import DiskFull, GenerationFailed, InvalidParams
from zturbo.metadata import read_recipe
from zturbo.sweep import load_sweep, runner
from zturbo.sweep.grid import build_grid, parse_vary
from zturbo.sweep.plan import Plan, shard
from zturbo.sweep.runner import Launch, run_sweep


def _plan(seeds="1-4", name="g", extra=()):
    exp = build_grid(name, ["a robot"], {"size": "32x32", "steps": 2, "rng": "cpu"}, [parse_vary(f"seed={seeds}"), *extra])
    return Plan([exp], "a robot", "steps = passes")


def _run(plan, folder, engine, **kw):
    return run_sweep(plan, folder, loader=lambda quant: engine, model="tiny", quiet=True, **kw)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_sweep_writes_images_records_and_resumes_without_redoing(tmp_path, tiny_engine):
    plan = _plan()
    out = _run(plan, tmp_path, tiny_engine)
    assert (out.made, out.failed, out.any_failed) == (4, 0, False)
    records = _lines(tmp_path / "manifest.jsonl")
    assert [r["id"] for r in records] == ["g/SEED1", "g/SEED2", "g/SEED3", "g/SEED4"]
    for r in records:
        assert r["status"] == "ok" and r["passes"] == 2 and set(r["timings"]) == {"text_encoding", "denoising", "decoding"}
        png = tmp_path / r["file"]
        assert read_recipe(png)["params"]["seed"] == r["params"]["seed"]
        assert r["model"]["model"] == "tiny" and r["versions"]["diffusers"]
    plan_json = json.loads((tmp_path / "plan.json").read_text())
    assert plan_json["experiments"][0]["items"] == [r["id"] for r in records]
    assert plan_json["items"]["g/SEED3"]["file"] == "g/SEED3.png"

    again = _run(plan, tmp_path, tiny_engine)
    assert (again.made, again.skipped) == (0, 4)
    assert len(_lines(tmp_path / "manifest.jsonl")) == 4  # nothing appended

    # a damaged image (hash no longer matches) is made again; the others are kept
    (tmp_path / "g" / "SEED2.png").write_bytes(b"not a png")
    third = _run(plan, tmp_path, tiny_engine)
    assert (third.made, third.skipped) == (1, 3)
    assert Image.open(tmp_path / "g" / "SEED2.png").size == (32, 32)
    assert load_sweep(tmp_path).status_counts() == {"ok": 4, "failed": 0, "pending": 0}


def test_changed_settings_in_the_same_folder_are_refused_unless_asked(tmp_path, tiny_engine):
    _run(_plan("1-2"), tmp_path, tiny_engine)
    exp = build_grid("g", ["another prompt"], {"size": "32x32", "steps": 2, "rng": "cpu"}, [parse_vary("seed=1-2")])
    with pytest.raises(InvalidParams, match="prompt 'a robot' -> 'another prompt'"):
        _run(Plan([exp], "x", ""), tmp_path, tiny_engine)
    out = _run(Plan([exp], "x", ""), tmp_path, tiny_engine, overwrite=True)
    assert out.made == 2
    assert {r["params"]["prompt"] for r in load_sweep(tmp_path).records.values()} == {"another prompt"}


class _FailsOnSeed:
    """The tiny engine, except that one seed fails as an out-of-memory or NaN would."""

    def __init__(self, engine, seed):
        self.engine, self.seed, self.freed = engine, seed, 0

    def generate(self, params, **kw):
        if params.seed == self.seed:
            raise GenerationFailed("generation failed: RuntimeError: injected")
        return self.engine.generate(params, **kw)

    def free_memory(self):
        self.freed += 1

    def __getattr__(self, name):
        return getattr(self.engine, name)


def test_one_failing_item_is_recorded_and_the_sweep_goes_on(tmp_path, tiny_engine):
    plan = _plan()
    flaky = _FailsOnSeed(tiny_engine, 2)
    out = _run(plan, tmp_path, flaky)
    assert (out.made, out.failed, out.any_failed) == (3, 1, True)
    assert flaky.freed >= 1  # memory freed after the failure
    failed = [r for r in _lines(tmp_path / "manifest.jsonl") if r["status"] == "failed"]
    assert [(r["id"], r["file"], r["sha256"]) for r in failed] == [("g/SEED2", None, None)]
    assert "injected" in failed[0]["error"]
    assert not (tmp_path / "g" / "SEED2.png").exists()
    # the next run retries only the failed item; its new record wins
    retry = _run(plan, tmp_path, tiny_engine)
    assert (retry.made, retry.skipped, retry.any_failed) == (1, 3, False)
    assert load_sweep(tmp_path).records["g/SEED2"]["status"] == "ok"


def test_a_precision_that_cannot_load_leaves_its_items_pending_only(tmp_path, tiny_engine):
    plan = _plan("1-2", extra=[parse_vary("quant=bf16,q2")])

    def loader(quant):
        if quant == "q2":
            raise InvalidParams("no q2 file here")
        return tiny_engine

    out = run_sweep(plan, tmp_path, loader=loader, model="tiny", quiet=True)
    status = {i: r["status"] for i, r in load_sweep(tmp_path).records.items()}
    assert status == {"g/SEED1_bf16": "ok", "g/SEED2_bf16": "ok"}  # the q2 items were never tried
    assert out.any_failed and list(out.not_loaded) == ["q2"]


def test_a_full_disk_stops_cleanly_with_the_manifest_whole(tmp_path, tiny_engine, monkeypatch):
    plan = _plan("1-5")
    real_save, calls = runner.save_png, []

    def save_until_full(image, target, recipe):
        calls.append(target)
        if len(calls) == 3:
            with open(str(target) + ".tmp-half", "wb") as f:  # what a real writer would leave: cleaned by atomic_path
                f.write(b"")
            (target.parent / (target.name + ".tmp-half")).unlink()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(image, target, recipe)

    monkeypatch.setattr(runner, "save_png", save_until_full)
    with pytest.raises(DiskFull, match="run the same command again"):
        _run(plan, tmp_path, tiny_engine)
    records = _lines(tmp_path / "manifest.jsonl")
    assert [r["id"] for r in records] == ["g/SEED1", "g/SEED2"]
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["SEED1.png", "SEED2.png"]
    monkeypatch.undo()
    out = _run(plan, tmp_path, tiny_engine)
    assert (out.made, out.skipped) == (3, 2)


def test_free_disk_is_checked_before_anything_is_written(tmp_path, tiny_engine, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DiskFull, match="free some space"):
        _run(_plan(), tmp_path, tiny_engine)
    assert list(tmp_path.iterdir()) == []


def test_shards_partition_the_plan_deterministically_and_balance_the_work():
    exp = build_grid("g", ["x"], {"rng": "cpu"}, [parse_vary("size=32x32,64x64,128x128,256x256"), parse_vary("seed=1-5")])
    items = Plan([exp], "x", "").items
    shards = [shard(items, r, 3) for r in range(3)]
    ids = [i.id for s in shards for i in s]
    assert sorted(ids) == sorted(i.id for i in items) and len(ids) == len(set(ids))
    assert shards == [shard(items, r, 3) for r in range(3)]
    costs = [sum(i.cost for i in s) for s in shards]
    assert max(costs) < 1.5 * min(costs)
    assert Launch.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Launch(1, 2, 1)
    with pytest.raises(InvalidParams):
        Launch.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_two_ranks_in_process_make_the_same_set_as_one(tmp_path, tiny_engine):
    plan = _plan("1-5")
    _run(plan, tmp_path / "one", tiny_engine)
    _run(plan, tmp_path / "two", tiny_engine, launch=Launch(1, 2, 1))
    _run(plan, tmp_path / "two", tiny_engine, launch=Launch(0, 2, 0))  # rank 0 merges when all are done
    one, two = load_sweep(tmp_path / "one"), load_sweep(tmp_path / "two")
    assert set(one.records) == set(two.records) == {i.id for i in plan.items}
    for item_id in one.records:
        a = np.asarray(Image.open(one.image_path(item_id)))
        b = np.asarray(Image.open(two.image_path(item_id)))
        assert np.array_equal(a, b)
    merged = _lines(tmp_path / "two" / "manifest.jsonl")
    assert [r["id"] for r in merged] == [i.id for i in plan.items]
    assert {r["rank"] for r in merged} == {0, 1}


def test_progress_bar_counts_images_and_the_summary_names_failures(tmp_path, tiny_engine, capsys):
    plan = _plan("1-3")
    out = run_sweep(plan, tmp_path, loader=lambda quant: _FailsOnSeed(tiny_engine, 3), model="tiny", quiet=False)
    err = capsys.readouterr().err
    assert "3 images in this sweep: 0 already done, 3 to make" in err
    assert "sweep 3/3 images 100%" in err.replace("\r", "\n")
    table = runner.summary_table(plan.groups(), out.records)
    assert table.splitlines()[2].split()[:5] == ["g", "3", "2", "1", "0"]
    assert "failed: g/SEED3: generation failed: RuntimeError: injected" in table


def test_one_model_load_per_precision_even_when_the_plan_interleaves_them(tmp_path, tiny_engine):
    from zturbo import Engine

    exp = build_grid("g", ["a robot"], {"size": "32x32", "steps": 2, "rng": "cpu"},
                     [parse_vary("quant=bf16,q8"), parse_vary("seed=1-3")])  # x = quant: bf16, q8, bf16, q8, ...
    loads = []

    def loader(quant):
        loads.append(quant)
        return tiny_engine if quant == "bf16" else Engine.load(model="tiny", quant=quant, device="cpu")

    out = run_sweep(Plan([exp], "a robot", ""), tmp_path, loader=loader, model="tiny", quiet=True)
    assert loads == ["bf16", "q8"]
    assert not out.any_failed
    records = load_sweep(tmp_path).records
    # the tiny model's unquantised weights are float32, and its recipe says so
    assert {r["quant"]: r["model"]["quant"] for r in records.values()} == {"bf16": "fp32", "q8": "q8"}


def test_images_are_made_one_shape_after_another(tmp_path, tiny_engine):
    exp = build_grid("g", ["a robot"], {"steps": 1, "rng": "cpu"},
                     [parse_vary("size=32x32,48x32"), parse_vary("seed=1-3")])  # plan order alternates shapes
    _run(Plan([exp], "a robot", ""), tmp_path, tiny_engine)
    made = [r["axes"]["size"] for r in _lines(tmp_path / "manifest.jsonl")]
    assert made == ["32x32"] * 3 + ["48x32"] * 3
