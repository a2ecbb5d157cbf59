"""zturbo generate --controlnet / --control end to end: the copy beside the output, --from reloads the same
ControlNet and control image, and every bad input is a one-line error with exit 2 and nothing written."""

import hashlib

import numpy as np
import pytest
from inputs_support import half_mask, noise_image
from PIL import Image

from zturbo.cli import main
from zturbo.metadata import read_recipe

TINY = ["--model", "tiny", "--device", "cpu", "--quiet", "--rng", "cpu", "--steps", "2"]


def same_pixels(a, b):
    return np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_control_writes_a_copy_and_from_reloads_controlnet_and_control_image(tmp_path, capsys):
    src = noise_image(tmp_path / "edges.png", 70, 50)  # off the 16-grid: --resize
    out, again = tmp_path / "out" / "a.png", tmp_path / "b.png"
    assert main(["generate", "a glass house", "--controlnet", "tiny", "--control", str(src), "--control-scale",
                 "0.9", "--control-type", "canny", "--resize", "--seed", "5", "-o", str(out), *TINY]) == 0
    line = capsys.readouterr().out
    assert "64x48" in line and "ControlNet canny x0.9" in line
    assert out.with_name("a.control.png").read_bytes() == src.read_bytes()
    recipe = read_recipe(out)
    assert recipe["inputs"]["control"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert recipe["controlnet"]["name"] == "tiny" and len(recipe["controlnet"]["sha256"]) == 64
    line = Image.open(out).text["parameters"]  # A1111's ControlNet extension field
    assert f'ControlNet 0: "Module: canny, Model: tiny [{recipe["controlnet"]["sha256"][:8]}], Weight: 0.9"' in line
    src.unlink()  # the copy beside the output is enough
    assert main(["generate", "--from", str(out), "-o", str(again), "--quiet"]) == 0
    assert same_pixels(out, again)
    assert read_recipe(again)["params"] | {"control_image": None} == recipe["params"] | {"control_image": None}


def test_control_inpaint_from_reproduces(tmp_path):
    photo, mask = noise_image(tmp_path / "photo.png"), half_mask(tmp_path / "mask.png")
    control = noise_image(tmp_path / "edges.png", seed=3)
    out = tmp_path / "c.png"
    assert main(["generate", "a red hat", "--image", str(photo), "--mask", str(mask), "--controlnet", "tiny",
                 "--control", str(control), "--seed", "9", "-o", str(out), *TINY]) == 0
    assert main(["generate", "--from", str(out), "-o", str(tmp_path / "d.png"), "--quiet"]) == 0
    assert same_pixels(out, tmp_path / "d.png")
    assert sorted(read_recipe(tmp_path / "d.png")["inputs"]) == ["control", "image", "mask"]


def test_from_a_controlnet_image_whose_file_changed_is_refused(tmp_path, capsys):
    from zturbo import controlnet

    cn = tmp_path / "cn.safetensors"
    cn.write_bytes(controlnet.tiny_file().read_bytes())
    control = noise_image(tmp_path / "edges.png")
    out = tmp_path / "a.png"
    assert main(["generate", "x", "--controlnet", str(cn), "--control", str(control), "-o", str(out), *TINY]) == 0
    assert read_recipe(out)["controlnet"]["path"] == str(cn)
    cn.write_bytes(cn.read_bytes() + b" ")
    assert main(["generate", "--from", str(out), "-o", str(tmp_path / "b.png"), "--quiet"]) == 2
    assert "has changed since" in capsys.readouterr().err and not (tmp_path / "b.png").exists()


def _files(d):
    noise_image(d / "edges.png")
    noise_image(d / "big.png", 80, 64, seed=2)
    noise_image(d / "photo.png")
    half_mask(d / "mask.png")
    (d / "model.pt").write_bytes(b"\x80\x02pickle")
    from safetensors.numpy import save_file

    save_file({"layers.0.attention.qkv.weight": np.zeros((4, 4), np.float32)}, str(d / "lora.safetensors"))


@pytest.mark.parametrize("args,msg", [
    (["--controlnet", "none.safetensors", "--control", "edges.png"], "ControlNet none.safetensors: no such file"),
    (["--controlnet", "{d}/model.pt", "--control", "edges.png"], "pickled .pt files are refused"),
    (["--controlnet", "{d}/lora.safetensors", "--control", "edges.png"], "lora.safetensors: not a Z-Image ControlNet"),
    (["--control", "edges.png"], "--control needs a ControlNet"),
    (["--controlnet", "tiny"], "--controlnet acts only through a control image"),
    (["--controlnet", "tiny", "--control", "big.png", "--image", "photo.png", "--mask", "mask.png"],
     "is 80x64 but image"),
    (["--controlnet", "tiny", "--control", "big.png", "--size", "64x48"], "is 80x64 but the size asked is 64x48"),
    (["--controlnet", "tiny", "--control", "edges.png", "--control-scale", "2.5"], "control scale 2.5 is outside 0..2"),
    (["--controlnet", "tiny", "--control", "edges.png", "--control-scale", "-0.1"], "is outside 0..2"),
    (["--controlnet", "tiny", "--control", "edges.png", "--image", "photo.png"], "needs a mask"),
    (["--controlnet", "tiny", "--control", "edges.png", "--image", "photo.png", "--mask", "mask.png",
      "--strength", "0.5"], "strength 0.5 does not apply with a control image"),
    (["--control-scale", "0.5"], "control scale acts on a control image"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, msg):
    _files(tmp_path)
    before = sorted(tmp_path.iterdir())
    args = [a.format(d=tmp_path) if "{d}" in a else str(tmp_path / a) if a.endswith(".png") else a for a in args]
    code = main(["generate", "x", "-o", str(tmp_path / "out.png"), *TINY, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert msg in err
    assert sorted(tmp_path.iterdir()) == before


def test_controlnet_tiny_needs_the_tiny_model(capsys):
    from zturbo import InvalidParams
    from zturbo.loading import LoadOptions

    with pytest.raises(InvalidParams, match="give --model tiny too"):
        LoadOptions(controlnet="tiny")


def test_help_names_the_control_options(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert all(f in out for f in ("--controlnet", "--control IMG", "--control-scale", "--control-type"))


def test_verify_refuses_a_controlnet(capsys):
    assert main(["verify", "--model", "tiny", "--controlnet", "tiny", "--quiet"]) == 2
    assert "drop --controlnet" in capsys.readouterr().err
