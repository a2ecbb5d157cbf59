"""zturbo sweep with a ControlNet: --vary control_scale makes one image per scale from one load, the records
carry the control image's and the ControlNet's sha256, and a changed control image is another setting."""

import hashlib
import json

import numpy as np
import pytest
from inputs_support import noise_image
from PIL import Image

from zturbo.cli import main

TINY = ["--model", "tiny", "--device", "cpu", "--quiet", "--rng", "cpu", "--steps", "1", "--prompt", "a fox"]


def records(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]


def test_vary_control_scale(tmp_path, capsys):
    control = noise_image(tmp_path / "edges.png")
    out = tmp_path / "sw"
    assert main(["sweep", "--controlnet", "tiny", "--control", str(control), "--vary", "control_scale=0,1.5",
                 "--out", str(out), *TINY]) == 0
    a, b = (np.asarray(Image.open(out / "grid" / f"CS{s}.png")) for s in ("0.0", "1.5"))
    assert not np.array_equal(a, b)  # the scale steers the image
    recs = {r["id"]: r for r in records(out)}
    assert set(recs) == {"grid/CS0.0", "grid/CS1.5"}
    for r in recs.values():
        assert r["inputs"]["control"]["sha256"] == hashlib.sha256(control.read_bytes()).hexdigest()
        assert r["controlnet"]["variant"] == "tiny" and len(r["controlnet"]["sha256"]) == 64
    assert recs["grid/CS1.5"]["params"]["control_scale"] == 1.5
    noise_image(control, seed=8)  # another file at the control image's path: another setting, never overwritten
    capsys.readouterr()
    assert main(["sweep", "--controlnet", "tiny", "--control", str(control), "--vary", "control_scale=0,1.5",
                 "--out", str(out), *TINY]) == 2
    assert "input control" in capsys.readouterr().err


@pytest.mark.parametrize("args,msg", [
    (["--controlnet", "tiny", "--vary", "seed=1,2"], "--controlnet acts only through a control image"),
    (["--control", "{c}", "--vary", "seed=1,2"], "needs a ControlNet"),
    (["--controlnet", "tiny", "--control", "{c}", "--vary", "control_scale=0,2.5"], "control scale 2.5 is outside"),
    (["--controlnet", "tiny", "--control", "{c}", "--vary", "control_type=canny"], "control_type is fixed"),
    (["--controlnet", "tiny", "--control", "{c}", "steps"], "--control sets a grid's input image"),
])
def test_bad_sweep_input_is_exit_2_and_nothing_written(tmp_path, capsys, args, msg):
    control = noise_image(tmp_path / "edges.png")
    args = [a.format(c=control) for a in args]
    assert main(["sweep", "--out", str(tmp_path / "sw"), *TINY, *args]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not (tmp_path / "sw").exists()


def test_a_rerun_with_another_controlnet_file_is_refused_never_counted_done(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    from zturbo.controlnet import tiny_file

    control = noise_image(tmp_path / "edges.png")
    out = tmp_path / "sw"
    run = ["sweep", "--control", str(control), "--vary", "control_scale=0.5,1", "--out", str(out), *TINY]
    assert main([*run, "--controlnet", "tiny"]) == 0
    assert main([*run, "--controlnet", "tiny"]) == 0  # the same file: a resume, nothing to redo
    state = load_file(str(tiny_file()))
    key = next(k for k in state if k.startswith("control_layers."))
    state[key] = state[key] + 0.01
    other = tmp_path / "other-union.safetensors"
    save_file(state, str(other))
    before = {p.name: p.read_bytes() for p in (out / "grid").glob("*.png")}
    capsys.readouterr()
    assert main([*run, "--controlnet", str(other)]) == 2
    assert "ControlNet sha256" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "grid").glob("*.png")} == before
