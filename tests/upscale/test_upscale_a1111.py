"""The A1111 `parameters` line of an upscaled image names the upscaler file, the factor and its hash,
read from the recipe: after `generate --upscale` as after `zturbo upscale`, once each."""

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from zturbo.cli import main
from zturbo.hashing import sha256_file
from zturbo.metadata import read_recipe

GEN = ["generate", "a red fox", "--model", "tiny", "--size", "32x32", "--steps", "1", "--seed", "7", "--rng", "cpu",
       "--device", "cpu", "-q"]


def _fields(compact, by):
    return (f"Postprocess upscaler: {compact.name} (RealESRGAN Compact 2x), Postprocess upscale by: {by}, "
            f"Upscaler hash: {sha256_file(compact)[:10]}")


def test_generate_upscale_writes_the_upscaler_into_the_a1111_line(compact, tmp_path):
    out = tmp_path / "big.png"
    assert main([*GEN, "--upscale", str(compact), "--upscale-scale", "1.5", "-o", str(out)]) == 0
    line = Image.open(out).text["parameters"]
    [step] = read_recipe(out)["upscale"]
    assert step["model"] == compact.name and step["scale"] == 1.5
    assert line.startswith("a red fox\n") and "Seed: 7" in line and "Size: 32x32" in line
    assert line.endswith(_fields(compact, "1.5")) and line.count("Postprocess upscaler") == 1


def test_upscale_command_names_it_once_and_keeps_another_tools_line(compact, tmp_path):
    native, big = tmp_path / "native.png", tmp_path / "native_x2.png"
    assert main([*GEN, "-o", str(native)]) == 0
    assert main(["upscale", str(native), "--model", str(compact), "--device", "cpu", "-q", "-o", str(big)]) == 0
    line = Image.open(big).text["parameters"]
    assert "Seed: 7" in line and line.endswith(_fields(compact, "2")) and line.count("Postprocess upscaler") == 1

    photo, info = tmp_path / "photo.png", PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a")
    Image.new("RGB", (16, 16), "gray").save(photo, pnginfo=info)
    assert main(["upscale", str(photo), "--model", str(compact), "--device", "cpu", "-q",
                 "-o", str(tmp_path / "photo_x2.png")]) == 0
    assert Image.open(tmp_path / "photo_x2.png").text["parameters"] == \
        f"a cat\nSteps: 20, Sampler: Euler a, {_fields(compact, '2')}"
