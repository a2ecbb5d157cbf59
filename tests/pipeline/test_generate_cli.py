"""The CLI end to end: a PNG with its recipe, --from reproduces it, bad input fails cleanly."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zturbo.cli import main
from zturbo.metadata import read_recipe

TINY = ["--model", "tiny", "--device", "cpu", "--quiet"]


def run_cli(*args):
    return main(list(args))


def test_generate_writes_png_with_recipe(tmp_path, capsys):
    out = tmp_path / "a.png"
    assert run_cli("generate", "a red robot", "--size", "64x48", "--seed", "42", "--steps", "3", "-o", str(out), *TINY) == 0
    line = capsys.readouterr().out
    assert f"wrote {out}" in line and "seed 42" in line and "3 passes" in line
    im = Image.open(out)
    assert im.size == (64, 48)
    recipe = json.loads(im.text["zturbo"])
    assert recipe["params"]["prompt"] == "a red robot" and recipe["passes"] == 3
    assert "Steps: 3" in im.text["parameters"] and "Seed: 42" in im.text["parameters"]


def test_from_reproduces_an_image(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run_cli("generate", "a blue robot", "--size", "64x64", "--seed", "9", "--guidance", "0.5",
                   "--negative-prompt", "blur", "-o", str(a), *TINY) == 0
    assert run_cli("generate", "--from", str(a), "-o", str(b), *TINY[-1:]) == 0
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    assert read_recipe(b)["params"] == read_recipe(a)["params"]
    # a flag given with --from overrides the recipe
    c = tmp_path / "c.png"
    assert run_cli("generate", "--from", str(a), "--seed", "10", "--guidance", "0", "-o", str(c), *TINY[-1:]) == 0
    assert (read_recipe(c)["params"]["seed"], read_recipe(c)["params"]["guidance"]) == (10, 0)  # 0 is a value


def test_num_images_and_folder_output(tmp_path):
    assert run_cli("generate", "x", "--size", "32x32", "--seed", "5", "-n", "3", "--steps", "1", "-o", str(tmp_path), *TINY) == 0
    seeds = sorted(read_recipe(p)["params"]["seed"] for p in tmp_path.glob("*.png"))
    assert seeds == [5, 6, 7]


def test_aspect_preset(tmp_path):
    out = tmp_path / "wide.png"
    assert run_cli("generate", "x", "--aspect", "16:9", "--megapixels", "0.05", "--steps", "1", "-o", str(out), *TINY) == 0
    w, h = Image.open(out).size
    assert w % 16 == 0 and h % 16 == 0 and 1.7 < w / h < 1.85


@pytest.mark.parametrize("args,msg", [
    (["--width", "1000"], "width 1000 is not a multiple of 16 (VAE 8x × patch 2): use 992 or 1008"),
    (["--size", "0x64"], "width must be positive"),
    (["--width", "0", "--height", "64"], "error: width must be positive, got 0\n"),  # 0 is not "the default"
    (["--width", "64", "--height", "0"], "error: height must be positive, got 0\n"),
    (["--size", "4096x4096"], "above the 4 MP cap"),
    (["--steps", "0"], "steps 0 is outside 1..100"),
    (["--steps", "101"], "steps 101 is outside 1..100"),
    (["--guidance", "nan"], "finite"),
    (["--seed", "-1"], "outside 0..2^64-1"),
    (["--seed", str(2**64)], "outside 0..2^64-1"),
    (["--size", "64x64", "--width", "64"], "not size and width/height"),
    (["--megapixels", "1"], "--megapixels goes with --aspect"),
    (["--aspect", "16:9", "--megapixels", "0"], "megapixels must be positive, got 0"),
    (["-o", "fox.jpg"], "zturbo writes PNG (the recipe lives in its text chunks): use fox.png or a folder"),
    (["--num-images", "0"], "at least 1"),
    (["--upscale-scale", "2"], "--upscale-scale goes with --upscale FILE"),  # was dropped silently
    (["--device", "nodevice"], "is not a torch device"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys, args, msg):
    code = run_cli("generate", "x", "-o", str(tmp_path / "x.png"), *TINY, *args)
    err = capsys.readouterr().err
    assert code == 2
    assert msg in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_missing_weights_exit_code_and_message(tmp_path, capsys):
    code = run_cli("generate", "x", "--device", "cpu", "-o", str(tmp_path / "x.png"), "--quiet")
    err = capsys.readouterr().err
    assert code == 1 and "hf download Tongyi-MAI/Z-Image-Turbo" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_from_a_foreign_image_is_refused(tmp_path, capsys):
    p = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(p)
    assert run_cli("generate", "--from", str(p), *TINY) == 2
    assert "carries no zturbo recipe" in capsys.readouterr().err


def test_installed_command_runs_in_a_subprocess(tmp_path):
    """The real entry point, as a user runs it: progress on stderr, summary on stdout."""
    out = tmp_path / "sub.png"
    proc = subprocess.run(
        [sys.executable, "-m", "zturbo", "generate", "a robot", "--model", "tiny", "--device", "cpu",
         "--size", "64x64", "--seed", "1", "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "noise by design" in proc.stderr
    assert f"wrote {out}" in proc.stdout and out.exists()


def test_rng_cuda_without_a_gpu_is_refused_not_swapped(tmp_path, capsys):
    code = run_cli("generate", "x", "--size", "32x32", "--rng", "cuda", "-o", str(tmp_path / "x.png"), *TINY)
    err = capsys.readouterr().err
    assert code == 2 and "needs a CUDA device" in err and "--rng" not in err.split("error:")[0]
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_file_is_kept_unless_overwrite_is_given(tmp_path, capsys):
    out = tmp_path / "fox.png"
    out.write_bytes(b"precious")
    args = ("generate", "x", "--size", "32x32", "--steps", "1", "-o", str(out), *TINY)
    assert run_cli(*args) == 2
    err = capsys.readouterr().err
    assert err == f"error: {out} already exists: pass --overwrite to replace it, or give another -o\n"
    assert out.read_bytes() == b"precious"
    assert run_cli(*args, "--overwrite") == 0
    assert read_recipe(out)["params"]["prompt"] == "x"


def test_from_never_overwrites_its_source_unless_asked(tmp_path, capsys):
    a = tmp_path / "a.png"
    assert run_cli("generate", "a robot", "--size", "32x32", "--steps", "2", "--seed", "3", "-o", str(a), *TINY) == 0
    before = a.read_bytes()
    assert run_cli("generate", "--from", str(a), "--seed", "4", "-o", str(a), *TINY[-1:]) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err and a.read_bytes() == before
    assert run_cli("generate", "--from", str(a), "--seed", "4", "-o", str(a), "--overwrite", *TINY[-1:]) == 0
    assert read_recipe(a)["params"]["seed"] == 4


def test_several_images_check_every_name_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import zturbo.cli.generate as generate

    def never(*a, **k):
        raise AssertionError("the model was loaded although an output would be refused")

    monkeypatch.setattr(generate, "load_engine", never)
    (tmp_path / "x_6.png").write_bytes(b"keep")
    assert run_cli("generate", "x", "--seed", "5", "-n", "3", "-o", str(tmp_path / "x.png"), *TINY) == 2
    assert f"error: {tmp_path / 'x_6.png'} already exists: pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_6.png"]


def test_a_float32_run_records_fp32_not_bf16_and_from_reproduces_it(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run_cli("generate", "a robot", "--size", "32x32", "--steps", "2", "--seed", "8", "-o", str(a), *TINY) == 0
    im = Image.open(a)
    model = json.loads(im.text["zturbo"])["model"]
    assert (model["quant"], model["dtype"]) == ("fp32", "float32")
    assert "Quant: fp32" in im.text["parameters"] and "bf16" not in im.text["parameters"]
    assert run_cli("generate", "--from", str(a), "-o", str(b), "--quiet") == 0
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    assert read_recipe(b)["model"]["quant"] == "fp32"
