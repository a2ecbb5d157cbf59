"""zturbo generate --image / --mask / --strength / --resize end to end: copies beside the output, --from
reproduces, and every bad input is a one-line error with exit 2 and nothing written."""

import hashlib

import numpy as np
import pytest
from inputs_support import half_mask, noise_image, png_header_only
from PIL import Image

from zturbo.cli import main
from zturbo.metadata import read_recipe

TINY = ["--model", "tiny", "--device", "cpu", "--quiet", "--rng", "cpu", "--steps", "4"]


def same_pixels(a, b):
    return np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_img2img_writes_a_copy_of_the_input_and_from_reproduces(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    src = noise_image(tmp_path / "in" / "photo.jpg", 70, 50, quality=90)  # off the 16-grid: --resize
    out, again = tmp_path / "out" / "a.png", tmp_path / "b.png"
    assert main(["generate", "a fox", "--image", str(src), "--strength", "0.5", "--resize", "--seed", "5",
                 "-o", str(out), *TINY]) == 0
    line = capsys.readouterr().out
    assert "64x48" in line and "image-to-image (strength 0.5)" in line and "2 passes" in line  # int(4 - 2) = 2
    copy = out.with_name("a.input.jpg")
    assert copy.read_bytes() == src.read_bytes()  # the bytes as given, not a re-encode
    recipe = read_recipe(out)
    assert recipe["inputs"]["image"] | {"source": None} == {"sha256": sha(src), "format": "JPEG", "width": 70,
                                                            "height": 50, "file": "a.input.jpg", "source": None}
    assert (recipe["params"]["strength"], recipe["params"]["resize"], recipe["passes"]) == (0.5, True, 2)
    assert "Denoising strength: 0.5" in Image.open(out).text["parameters"]
    src.unlink()  # the original is gone: the copy beside the output is enough
    assert main(["generate", "--from", str(out), "-o", str(again), "--quiet"]) == 0
    assert same_pixels(out, again)
    assert read_recipe(again)["inputs"]["image"]["sha256"] == sha(copy)


def test_inpaint_from_reproduces_and_a_moved_output_still_finds_its_copies(tmp_path):
    photo, mask = noise_image(tmp_path / "photo.png"), half_mask(tmp_path / "mask.png")
    out = tmp_path / "c.png"
    assert main(["generate", "a red hat", "--image", str(photo), "--mask", str(mask), "--seed", "9",
                 "-o", str(out), *TINY]) == 0
    assert (tmp_path / "c.mask.png").read_bytes() == mask.read_bytes()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("c.png", "c.input.png", "c.mask.png"):
        (tmp_path / name).rename(moved / name)
    photo.unlink(), mask.unlink()
    assert main(["generate", "--from", str(moved / "c.png"), "-o", str(tmp_path / "d.png"), "--quiet"]) == 0
    assert same_pixels(moved / "c.png", tmp_path / "d.png")
    assert read_recipe(tmp_path / "d.png")["params"]["strength"] == 1.0


def test_from_without_its_inputs_says_what_is_missing(tmp_path, capsys):
    photo = noise_image(tmp_path / "photo.png")
    out = tmp_path / "a.png"
    assert main(["generate", "x", "--image", str(photo), "--seed", "1", "-o", str(out), *TINY]) == 0
    photo.unlink(), (tmp_path / "a.input.png").unlink()
    assert main(["generate", "--from", str(out), "-o", str(tmp_path / "b.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "was made from an input image" in err and "a.input.png" in err and "give --image" in err
    assert not (tmp_path / "b.png").exists()


def test_an_existing_copy_is_kept_unless_overwrite(tmp_path, capsys):
    photo = noise_image(tmp_path / "photo.png")
    (tmp_path / "a.input.png").write_bytes(b"someone's file")
    assert main(["generate", "x", "--image", str(photo), "-o", str(tmp_path / "a.png"), *TINY]) == 2
    assert "a.input.png already exists: pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "a.input.png").read_bytes() == b"someone's file" and not (tmp_path / "a.png").exists()


def _bad_inputs(tmp_path):
    noise_image(tmp_path / "photo.png")
    noise_image(tmp_path / "off.png", 70, 50)
    half_mask(tmp_path / "small_mask.png", 32, 48)
    (tmp_path / "notes.png").write_text("hello")
    png_header_only(tmp_path / "bomb.png", 30000, 30000)


@pytest.mark.parametrize("args,msg", [
    (["--image", "missing.png"], "image {d}/missing.png: no such file"),
    (["--image", "notes.png"], "is not a PNG, JPEG or WebP image"),
    (["--image", "photo.png", "--mask", "missing.png"], "mask {d}/missing.png: no such file"),
    (["--image", "photo.png", "--mask", "small_mask.png"], "is 32x48 but image"),
    (["--image", "photo.png", "--strength", "0"], "strength 0 is outside (0, 1]"),
    (["--image", "photo.png", "--strength", "1.5"], "strength 1.5 is outside (0, 1]"),
    (["--strength", "0.5"], "strength acts on an input image: give image too (--image IMG)"),
    (["--mask", "small_mask.png"], "mask acts on an input image"),
    (["--resize"], "resize acts on an input image"),
    (["--image", "off.png"], "is 70x50; both sides must be multiples of 16 (VAE 8x × patch 2): crop it to 64x48, "
                             "or pass --resize to resize it to 64x48"),
    (["--image", "photo.png", "--size", "64x64"], "the output takes the input's size"),
    (["--image", "bomb.png", "--resize"], "decompression-bomb guard"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, msg):
    _bad_inputs(tmp_path)
    before = sorted(tmp_path.iterdir())
    args = [str(tmp_path / a) if a.endswith(".png") else a for a in args]
    code = main(["generate", "x", "-o", str(tmp_path / "out.png"), *TINY, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert msg.format(d=tmp_path) in err
    assert sorted(tmp_path.iterdir()) == before


def test_help_says_which_way_the_mask_goes(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "WHITE = repaint, BLACK = keep" in out and "Default 0.6, 1 with --mask" in out


def test_inpaint_with_resize_and_from_with_another_image(tmp_path):
    """--resize takes the mask along (nearest, so it stays black and white); --from X --image Y runs X's
    recipe on Y at Y's own size, without X's mask."""
    photo, mask = noise_image(tmp_path / "scan.png", 70, 50), half_mask(tmp_path / "m.png", 70, 50)
    out = tmp_path / "a.png"
    assert main(["generate", "x", "--image", str(photo), "--mask", str(mask), "--resize", "--strength", "0.8",
                 "--seed", "2", "-o", str(out), *TINY]) == 0
    assert Image.open(out).size == (64, 48) and read_recipe(out)["inputs"]["mask"]["width"] == 70
    again = tmp_path / "again.png"
    assert main(["generate", "--from", str(out), "-o", str(again), "--quiet"]) == 0
    assert same_pixels(out, again)
    other = noise_image(tmp_path / "other.png", 32, 32, seed=5)
    b = tmp_path / "b.png"
    assert main(["generate", "--from", str(out), "--image", str(other), "-o", str(b), "--quiet"]) == 0
    rec = read_recipe(b)
    assert Image.open(b).size == (32, 32) and rec["mode"] == "image-to-image" and rec["params"]["strength"] == 0.8
