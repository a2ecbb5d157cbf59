"""Sweeps over image-to-image and inpainting: strength as an axis, the input's sha256 in every record,
resume that notices another file at the input's path, and a dry run that counts the real passes."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zturbo.cli import main
from zturbo.errors import InvalidParams
from zturbo.sweep.grid import load_toml
from zturbo.sweep.plan import Plan, describe
from zturbo.sweep.runner import run_sweep

TINY = ["--model", "tiny", "--rng", "cpu", "--steps", "4", "-q"]


def noise_image(path, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def half_mask(path):
    m = np.zeros((48, 64), np.uint8)
    m[:, 32:] = 255  # white: repaint the right half
    Image.fromarray(m).save(path)
    return path


def _records(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _passes_in_dry_run(text):
    return int(re.search(r"^(\d+) transformer passes in all", text, re.M).group(1))


def test_a_strength_sweep_makes_one_image_per_strength_and_the_dry_run_counts_its_passes(tmp_path, capsys):
    photo = noise_image(tmp_path / "photo.png")
    out = tmp_path / "out"
    args = ["sweep", "--prompt", "a fox", "--image", str(photo), "--vary", "strength=0.2-1 [5]", "--out", str(out), *TINY]
    assert main([*args, "--dry-run"]) == 0
    planned = _passes_in_dry_run(capsys.readouterr().out)
    assert main(args) == 0
    records = _records(out)
    assert sorted(p.name for p in (out / "grid").glob("*.png")) == [f"S{s}.png" for s in ("0.2", "0.4", "0.6", "0.8", "1.0")]
    # 4 steps: diffusers keeps steps - int(steps - steps * strength) passes
    assert {r["file"]: r["passes"] for r in records} == {"grid/S0.2.png": 1, "grid/S0.4.png": 2, "grid/S0.6.png": 3,
                                                       "grid/S0.8.png": 4, "grid/S1.0.png": 4}
    assert planned == sum(r["passes"] for r in records) == 14  # not 5 x 4 steps
    assert all(r["inputs"]["image"]["sha256"] == _sha(photo) for r in records)
    assert all(r["params"]["strength"] == r["axes"]["strength"] for r in records)


def test_a_toml_file_with_an_image_a_mask_and_a_strength_axis(tmp_path, tiny_engine):
    photo, mask = noise_image(tmp_path / "photo.png"), half_mask(tmp_path / "mask.png")
    other = noise_image(tmp_path / "other.png", seed=5)
    toml = tmp_path / "edit.toml"
    toml.write_text(f'name = "edit"\nprompt = "a red hat"\n[params]\nsteps = 2\nseed = 3\nrng = "cpu"\n'
                    f'mask = "{mask}"\n[axes]\nstrength = [0.5, 1]\nimage = ["{photo}", "{other}"]\n')
    exp = load_toml(toml)
    assert [i.file for i in exp.items] == ["edit/S0.5_IMG1.png", "edit/S1.0_IMG1.png", "edit/S0.5_IMG2.png",
                                           "edit/S1.0_IMG2.png"]
    out = run_sweep(Plan([exp], "a red hat", "steps = passes"), tmp_path / "o", loader=lambda q: tiny_engine,
                    model="tiny", quiet=True)
    assert (out.made, out.failed) == (4, 0)
    by_file = {r["file"]: r for r in _records(tmp_path / "o")}
    assert by_file["edit/S0.5_IMG2.png"]["inputs"]["image"]["sha256"] == _sha(other)
    assert by_file["edit/S0.5_IMG1.png"]["inputs"]["image"]["sha256"] == _sha(photo)
    assert all(r["inputs"]["mask"]["sha256"] == _sha(mask) and r["params"]["mask"] == str(mask) for r in by_file.values())
    assert by_file["edit/S0.5_IMG1.png"]["passes"] == 1 and by_file["edit/S1.0_IMG1.png"]["passes"] == 2
    assert "4 image-to-image" in describe(Plan([exp], "a red hat", ""))


@pytest.mark.parametrize("vary, bad", [("strength=0,0.5", "strength 0 "), ("strength=1.5", "strength 1.5 "),
                                       ("strength=0-1 [5]", "strength 0 "), ("strength=high", "'high'")])
def test_a_bad_strength_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, vary, bad):
    photo = noise_image(tmp_path / "photo.png")
    out = tmp_path / "out"
    assert main(["sweep", "--prompt", "x", "--image", str(photo), "--vary", vary, "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and bad in err and ("(0, 1]" in err or "not a number" in err)
    assert not out.exists()


def test_a_bad_strength_in_a_file_and_strength_without_an_image_are_refused(tmp_path, capsys):
    toml = tmp_path / "t.toml"
    toml.write_text(f'prompt = "x"\n[params]\nimage = "{noise_image(tmp_path / "p.png")}"\n[axes]\nstrength = [0.5, 2]\n')
    with pytest.raises(InvalidParams, match=r"strength 2 is outside \(0, 1\]"):
        load_toml(toml)
    assert main(["sweep", "--prompt", "x", "--vary", "strength=0.5,1", "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "give image too (--image IMG)" in capsys.readouterr().err
    assert main(["sweep", "steps", "--image", str(tmp_path / "p.png"), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "--image sets a grid's input image" in capsys.readouterr().err
    assert main(["sweep", "--prompt", "x", "--image", str(tmp_path / "p.png"), "--strength", "0.5", "--vary",
                 "strength=0.5,1", "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "strength is both fixed (0.5) and an axis" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_resume_skips_done_items_and_another_file_at_the_input_path_is_refused_unless_overwrite(tmp_path, capsys):
    photo = noise_image(tmp_path / "photo.png")
    out = tmp_path / "out"
    args = ["sweep", "--prompt", "a fox", "--image", str(photo), "--vary", "strength=0.5,1", "--out", str(out),
            "--steps", "2", "--model", "tiny", "--rng", "cpu"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "2 already done, 0 to make" in capsys.readouterr().err
    assert len(_records(out)) == 2

    noise_image(photo, seed=9)  # the same name and size, other pixels
    before = (out / "grid" / "S0.5.png").read_bytes()
    assert main([*args, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"input image {photo}" in err and "--overwrite" in err
    assert (out / "grid" / "S0.5.png").read_bytes() == before and len(_records(out)) == 2
    assert main([*args, "--dry-run"]) == 2  # the dry run says the same, and counts nothing as done
    assert "already done" not in capsys.readouterr().out

    assert main([*args, "--overwrite"]) == 0
    records = _records(out)
    assert len(records) == 4 and all(r["inputs"]["image"]["sha256"] == _sha(photo) for r in records[2:])
    assert (out / "grid" / "S0.5.png").read_bytes() != before
    assert main(args) == 0 and "2 already done, 0 to make" in capsys.readouterr().err
