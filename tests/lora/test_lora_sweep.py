"""zturbo sweep --lora FILE --vary lora_scale=...: one image and one model load per scale, records and
resume by each image's own scale, and bad inputs as one line, exit 2, nothing written."""

import json

import numpy as np
import pytest
from PIL import Image

from zturbo.cli import main
from zturbo.hashing import sha256_file

from lora_files import write_lora

TINY = ["--model", "tiny", "--device", "cpu", "--size", "64x64", "--seed", "7", "--steps", "2", "--rng", "cpu",
        "--prompt", "a fox"]


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def records(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
def style(tmp_path):
    path = tmp_path / "style.safetensors"
    write_lora(path, "kohya", seed=11, alpha=400.0)  # strong: the tiny model's pixels must move
    return path


def test_a_scale_sweep_makes_one_image_and_one_load_per_scale(tmp_path, style, capsys, monkeypatch):
    from zturbo.cli import sweep as cli_sweep

    loads, load = [], cli_sweep.load_engine
    monkeypatch.setattr(cli_sweep, "load_engine", lambda o, q: loads.append(o.loras) or load(o, q))
    out, plain = tmp_path / "s", tmp_path / "plain"
    args = ["sweep", "--lora", str(style), "--vary", "lora_scale=0-1 [3]", "--vary", "guidance=0,0.5", "--out", str(out),
            *TINY]
    assert main(args) == 0
    assert loads == [((str(style), s),) for s in (0.0, 0.5, 1.0)]  # one load a scale, its 2 guidances together
    err = capsys.readouterr().err
    assert "6 to make in 3 model loads (one per precision and LoRA scale)" in err
    files = sorted(p.name for p in (out / "grid").glob("*.png"))
    assert files == sorted(f"L{s}_G{g}.png" for s in ("0", "0.5", "1") for g in ("0.0", "0.5"))
    imgs = {s: pixels(out / "grid" / f"L{s}_G0.0.png") for s in ("0", "0.5", "1")}
    assert not np.array_equal(imgs["0"], imgs["0.5"]) and not np.array_equal(imgs["0.5"], imgs["1"])
    # scale 0 is the model without the LoRA, within rounding
    assert main(["sweep", "--vary", "guidance=0", "--out", str(plain), *TINY]) == 0
    assert np.abs(pixels(plain / "grid" / "G0.0.png") - imgs["0"]).max() <= 2
    recs = {r["file"]: r for r in records(out)}
    for s in (0.0, 0.5, 1.0):
        assert recs[f"grid/L{s:g}_G0.5.png"]["axes"]["lora_scale"] == s
        (lora,) = recs[f"grid/L{s:g}_G0.0.png"]["loras"]
        assert lora["scale"] == s and lora["sha256"] == sha256_file(style)

    capsys.readouterr()
    loads.clear()
    assert main(args) == 0  # each image's own scale is its setting: all skipped, none refused
    assert "6 already done, 0 to make" in capsys.readouterr().err
    assert len(records(out)) == 6 and loads == []  # and nothing loaded again


def test_dry_run_counts_the_loads(tmp_path, style, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--lora", str(style), "--vary", "lora_scale=0,0.5,1", "--vary", "guidance=0,1",
                 "--dry-run", "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "6 images" in text and "3 model loads (one per precision and LoRA scale)" in text
    assert not out.exists()


def test_a_toml_axis_takes_lora_scale(tmp_path, style, capsys):
    exp = tmp_path / "fox.toml"
    exp.write_text('prompt = "a fox"\n[axes]\nlora_scale = [0.25, 0.75]\n')
    assert main(["sweep", "--file", str(exp), "--lora", str(style), "--dry-run", "--out", str(tmp_path / "s"),
                 *TINY[:-2]]) == 0
    assert "2 model loads" in capsys.readouterr().out


@pytest.mark.parametrize("extra, says", [
    ([], "give the LoRA with --lora FILE"),
    (["--lora", "{style}", "--lora", "{other}"], "exactly one --lora"),
    (["--lora", "{style}:0.8"], "without :SCALE"),
    (["--lora", "{style}", "--vary", "lora_scale=0,abc"], "lora_scale value 'abc' is not a number"),
    (["--lora", "{style}", "--vary", "lora_scale=0,nan"], "lora_scale value 'nan' is not a number"),
])
def test_bad_lora_scale_inputs_exit_2_and_write_nothing(tmp_path, style, capsys, extra, says):
    other = tmp_path / "other.safetensors"
    write_lora(other, "diffusers", seed=12)
    out = tmp_path / "s"
    extra = [a.format(style=style, other=other) for a in extra]
    vary = [] if any(a.startswith("lora_scale") for a in extra) else ["--vary", "lora_scale=0,1"]
    assert main(["sweep", *extra, *vary, "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not out.exists()
