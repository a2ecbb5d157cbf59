"""`zturbo sweep` end to end: killed with SIGKILL and resumed, sharded with accelerate launch, exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zturbo.cli import main
from zturbo.sweep import load_sweep

GRID = ["sweep", "--prompt", "a robot", "--vary", "seed=1-8", "--size", "64x64", "--steps", "4",
        "--rng", "cpu", "--model", "tiny", "-q"]


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    return env


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted single-process run everything else must equal."""
    out = tmp_path_factory.mktemp("ref")
    assert main([*GRID, "--out", str(out)]) == 0
    return load_sweep(out)


def _pixels(sweep):
    return {i: np.asarray(Image.open(sweep.image_path(i))) for i in sweep.items}


def _assert_same_set(sweep, reference):
    assert sweep.status_counts() == {"ok": 8, "failed": 0, "pending": 0}
    assert set(sweep.items) == set(reference.items)
    mine, ref = _pixels(sweep), _pixels(reference)
    for item_id in ref:
        assert np.array_equal(mine[item_id], ref[item_id]), item_id
    files = sorted(p.relative_to(sweep.folder).as_posix() for p in sweep.folder.rglob("*.png"))
    assert files == sorted(f"grid/SEED{s}.png" for s in range(1, 9))
    assert not list(sweep.folder.rglob("*.part"))


def test_a_sweep_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_set(tmp_path, reference):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "zturbo", *GRID, "--out", str(out)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_text().count("\n") >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(manifest.read_text().splitlines())
    assert 3 <= done_before < 8

    assert main([*GRID, "--out", str(out)]) == 0
    sweep = load_sweep(out)
    _assert_same_set(sweep, reference)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(reference.items)  # each image recorded once: none redone


def test_accelerate_launch_shards_across_two_processes_and_merges(tmp_path, reference):
    out = tmp_path / "sharded"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "zturbo", *GRID, "--out", str(out)]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    shards = [[json.loads(line)["id"] for line in (out / f"manifest.rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert shards[0] and shards[1] and not set(shards[0]) & set(shards[1])
    sweep = load_sweep(out)
    _assert_same_set(sweep, reference)
    merged = [json.loads(line)["id"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert merged == list(reference.items)  # consolidated, in plan order
    assert main(["sweep", "--merge", str(out)]) == 0  # merging again by hand changes nothing
    assert [json.loads(line)["id"] for line in (out / "manifest.jsonl").read_text().splitlines()] == merged


def test_a_model_that_cannot_load_is_one_error_and_exit_1(tmp_path, capsys):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    code = main(["sweep", "--prompt", "x", "--vary", "seed=1,2", "--size", "32x32", "--steps", "1", "--model", "tiny",
                 "--gguf", str(bad), "--out", str(tmp_path / "s"), "-q"])
    assert code == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: cannot load gguf:") and "\n" not in err and "failed:" not in captured.out
    assert load_sweep(tmp_path / "s").status_counts() == {"ok": 0, "failed": 0, "pending": 2}


def test_dry_run_prints_the_whole_article_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "article"
    assert main(["sweep", "all", "--model", "tiny", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "200 images" in text and "23 distinct shapes" in text and "STEP9 runs 9 passes" in text
    assert not out.exists()


def test_bad_input_is_one_line_and_exit_2(capsys):
    assert main(["sweep", "--vary", "steps=a-b", "--model", "tiny", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    assert main(["sweep", "--model", "tiny"]) == 2
    assert "nothing to sweep" in capsys.readouterr().err


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "fox.png"
    target.write_bytes(b"not a folder")
    assert main(["sweep", "--prompt", "x", "--vary", "seed=1", "--size", "32x32", "--steps", "1", "--model", "tiny",
                 "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot use {target} as the sweep folder: it is a file, not a folder" in err
    assert target.read_bytes() == b"not a folder"


@pytest.mark.parametrize("argv, message", [
    (["steps", "--guidance", "0.5"], "--guidance sets a grid's guidance"),
    (["steps", "--ladder-base", "32x16"], "add `resolution`"),
    (["steps", "--quants", "bf16,q8"], "add `quant`"),
    (["aspect", "--aspect", "16:9"], "--aspect sets a grid's size"),
])
def test_a_value_the_run_would_not_use_is_refused(argv, message, capsys):
    assert main(["sweep", *argv, "--model", "tiny", "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_a_typed_prompt_and_a_prompt_axis_is_an_error(tmp_path, capsys):
    from zturbo.cli import main

    assert main(["sweep", "--model", "tiny", "--prompt", "a fox", "--vary", "prompt=a cat,a dog", "--size", "32x32",
                 "--dry-run", "--out", str(tmp_path / "s")]) == 2
    assert "prompt is both given (--prompt/--prompt-file) and an axis" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
