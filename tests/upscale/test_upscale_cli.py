"""`zturbo upscale` and `zturbo generate --upscale`, as a user runs them."""

import json

import numpy as np
import pytest
from PIL import Image

from zturbo.cli import main
from zturbo.hashing import sha256_file
from zturbo.metadata import read_recipe, save_png

RECIPE = {"params": {"prompt": "a red fox", "negative_prompt": "", "steps": 8, "guidance": 0.0, "seed": 42,
                     "width": 48, "height": 32, "rng": "cpu"},
          "model": {"model": "tiny", "quant": "bf16"}, "passes": 8}


@pytest.fixture
def fox(tmp_path, gradient):
    path = tmp_path / "fox.png"
    save_png(gradient(48, 32), path, RECIPE)
    return path


def test_upscale_keeps_the_recipe_and_adds_the_upscaler(fox, compact, tmp_path, capsys):
    assert main(["upscale", str(fox), "--model", str(compact), "-o", str(tmp_path / "out"), "-q"]) == 0
    out = tmp_path / "out" / "fox_x2.png"
    assert f"wrote {out}  96x64" in capsys.readouterr().out
    assert Image.open(out).size == (96, 64)
    recipe = read_recipe(out)  # still a generation recipe: `generate --from` works on the upscaled PNG
    assert recipe["params"] == RECIPE["params"]
    [step] = recipe["upscale"]
    assert (step["model"], step["architecture"], step["scale"], step["model_scale"]) == \
        ("tiny-Compact.safetensors", "RealESRGAN Compact", 2, 2)
    assert step["weights_sha256"] == sha256_file(compact)
    assert "Postprocess upscaler: tiny-Compact.safetensors" in Image.open(out).text["parameters"]


def test_several_images_never_overwrite(fox, compact, tmp_path, gradient):
    plain = tmp_path / "photo.png"
    gradient(40, 24).save(plain)
    folder = tmp_path / "out"
    assert main(["upscale", str(fox), str(plain), "--model", str(compact), "-o", str(folder), "-q"]) == 0
    first = (folder / "fox_x2.png").read_bytes()
    assert main(["upscale", str(fox), "--model", str(compact), "-o", str(folder), "-q", "--tile", "16",
                 "--overlap", "4"]) == 0
    assert (folder / "fox_x2.png").read_bytes() == first and (folder / "fox_x2-1.png").exists()
    # a plain image: its upscale history is kept under its own key, and a second pass adds to it
    assert main(["upscale", str(folder / "photo_x2.png"), "--model", str(compact), "--scale", "1.5",
                 "-o", str(tmp_path / "twice.png"), "-q"]) == 0
    twice = Image.open(tmp_path / "twice.png")
    assert twice.size == (120, 72)
    steps = json.loads(twice.text["zturbo-upscale"])["upscale"]
    assert [s["scale"] for s in steps] == [2, 1.5]


@pytest.mark.parametrize("extra,message", [
    (["--scale", "3"], "tiny-Compact.safetensors is a 2x model"),
    (["--tile", "-5"], "tile -5"),
])
def test_bad_options_write_nothing(fox, compact, tmp_path, capsys, extra, message):
    out = tmp_path / "out.png"
    assert main(["upscale", str(fox), "--model", str(compact), "-o", str(out), "-q", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.png.*"))


def test_torchscript_and_missing_inputs_are_refused_before_loading(fox, tmp_path, capsys):
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"PK whatever")
    assert main(["upscale", str(fox), "--model", str(pt)]) == 2
    assert "is a TorchScript file" in capsys.readouterr().err
    assert main(["upscale", str(tmp_path / "nope.png"), "--model", str(pt)]) == 2
    assert "no such image: " in capsys.readouterr().err
    assert main(["upscale", str(fox), "--model", str(pt), "-o", str(fox)]) == 2  # never the input itself


def test_generate_then_upscale_in_one_run(compact, tmp_path, capsys):
    base = ["generate", "a red fox", "--model", "tiny", "--size", "32x32", "--steps", "2", "--seed", "7", "--rng", "cpu",
            "--device", "cpu", "-q"]
    assert main([*base, "-o", str(tmp_path / "native.png")]) == 0
    assert main([*base, "--upscale", str(compact), "-o", str(tmp_path / "big.png")]) == 0
    big = tmp_path / "big.png"
    assert Image.open(big).size == (64, 64)
    recipe = read_recipe(big)
    assert recipe["params"]["width"] == 32 and recipe["upscale"][0]["architecture"] == "RealESRGAN Compact"
    # the recipe still reproduces the native image
    assert main(["generate", "--from", str(big), "--device", "cpu", "-q", "-o", str(tmp_path / "again.png")]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "again.png")),
                                  np.asarray(Image.open(tmp_path / "native.png")))


def test_an_existing_output_file_is_kept_unless_overwrite_is_given(fox, compact, tmp_path, capsys, monkeypatch):
    import zturbo.upscale as upscale

    out = tmp_path / "big.png"
    out.write_bytes(b"precious")
    load = upscale.Upscaler.load
    monkeypatch.setattr(upscale.Upscaler, "load", lambda *a, **k: pytest.fail("loaded before checking -o"))
    assert main(["upscale", str(fox), "--model", str(compact), "-o", str(out), "-q"]) == 2
    assert capsys.readouterr().err == f"error: {out} already exists: pass --overwrite to replace it, or give another -o\n"
    assert out.read_bytes() == b"precious"
    monkeypatch.setattr(upscale.Upscaler, "load", load)
    assert main(["upscale", str(fox), "--model", str(compact), "-o", str(out), "-q", "--overwrite"]) == 0
    assert Image.open(out).size == (96, 64)
