"""A sweep over image-to-image / inpainting keeps one copy of each input (inputs/<sha256>.<ext>), never one
per image; every recipe points at it, so `generate --from` reproduces an image after the original moved."""

import hashlib
import json
import shutil

import numpy as np
from PIL import Image

from zturbo.cli import main
from zturbo.metadata import read_recipe

TINY = ["--model", "tiny", "--rng", "cpu", "--steps", "2", "-q", "--prompt", "a fox"]


def noise(path, seed, size=(64, 48)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_each_input_is_copied_once_and_from_finds_the_copy_after_the_original_moved(tmp_path):
    a, b = noise(tmp_path / "a.png", 1), noise(tmp_path / "b.jpg", 2)
    mask = tmp_path / "mask.png"
    m = np.zeros((48, 64), np.uint8)
    m[:, 32:] = 255
    Image.fromarray(m).save(mask)
    out = tmp_path / "out"
    assert main(["sweep", "--vary", f"image={a},{b}", "--vary", "strength=0.5,1", "--mask", str(mask),
                 "--out", str(out), *TINY]) == 0
    copies = sorted(p.name for p in (out / "inputs").iterdir())
    assert copies == sorted([f"{sha(a)}.png", f"{sha(b)}.jpg", f"{sha(mask)}.png"])  # 3 files for 4 images
    for copy in (out / "inputs").iterdir():
        assert sha(copy) == copy.name.split(".")[0]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 4 and not list((out / "grid").glob("*.input.*"))  # no copy beside each image
    recipe = read_recipe(out / "grid" / "IMG2_S0.5.png")
    assert recipe["inputs"]["image"]["file"] == f"../inputs/{sha(b)}.jpg"
    assert recipe["inputs"]["mask"]["file"] == f"../inputs/{sha(mask)}.png"

    made = np.asarray(Image.open(out / "grid" / "IMG2_S0.5.png"))
    shutil.move(b, tmp_path / "elsewhere.jpg")
    shutil.move(mask, tmp_path / "elsewhere-mask.png")
    again = tmp_path / "again.png"
    assert main(["generate", "--from", str(out / "grid" / "IMG2_S0.5.png"), "-o", str(again), "-q"]) == 0
    assert np.array_equal(np.asarray(Image.open(again)), made)
