"""--lora on the command line: the image changes, its recipe names the LoRA, --from brings it back, and
every bad input is one line, exit 2, nothing written."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from zturbo.cli import main
from zturbo.hashing import sha256_file
from zturbo.metadata import read_recipe

from lora_files import RANK, write_lora

TINY = ["--model", "tiny", "--device", "cpu", "--quiet", "--size", "64x64", "--seed", "7", "--steps", "2",
        "--rng", "cpu"]


def pixels(path):
    return np.asarray(Image.open(path))


@pytest.fixture
def style(tmp_path):
    path = tmp_path / "style.safetensors"
    write_lora(path, "kohya", seed=11, alpha=400.0)  # strong: the tiny model's pixels must move
    return path


def test_a_lora_changes_the_image_and_the_recipe_names_it(tmp_path, style, capsys):
    plain, styled = tmp_path / "plain.png", tmp_path / "styled.png"
    assert main(["generate", "a fox", "-o", str(plain), *TINY]) == 0
    assert main(["generate", "a fox", "-o", str(styled), "--lora", f"{style}:0.8", *TINY]) == 0
    assert not np.array_equal(pixels(plain), pixels(styled))
    (rec,) = read_recipe(styled)["loras"]
    assert rec["name"] == "style.safetensors" and rec["path"] == str(style) and rec["scale"] == 0.8
    assert rec["sha256"] == sha256_file(style)
    assert read_recipe(plain)["loras"] == []
    a1111 = Image.open(styled).text["parameters"]
    assert f'Lora hashes: "style: {rec["sha256"][:12]}"' in a1111


def test_from_reloads_the_same_loras(tmp_path, style):
    other = tmp_path / "other.safetensors"
    write_lora(other, "diffusers", seed=12, alpha=300.0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["generate", "a fox", "-o", str(a), "--lora", f"{style}:0.8", "--lora", str(other), *TINY]) == 0
    assert main(["generate", "--from", str(a), "-o", str(b), "--quiet"]) == 0
    assert np.array_equal(pixels(a), pixels(b))
    assert [(r["name"], r["scale"]) for r in read_recipe(b)["loras"]] == [("style.safetensors", 0.8),
                                                                         ("other.safetensors", 1.0)]


def test_from_with_a_missing_lora_names_it(tmp_path, style, capsys):
    a = tmp_path / "a.png"
    assert main(["generate", "a fox", "-o", str(a), "--lora", str(style), *TINY]) == 0
    style.unlink()
    capsys.readouterr()
    assert main(["generate", "--from", str(a), "-o", str(tmp_path / "b.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "style.safetensors" in err and "not found at" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.png").exists()


def _foreign(path):  # a Flux LoRA: modules Z-Image does not have
    save_file({"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(RANK, 64),
               "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(64, RANK)}, str(path))


def _nothing(path):  # keys of no LoRA layout at all
    save_file({"model.embed.weight": torch.zeros(4, 4)}, str(path))


@pytest.mark.parametrize("name,make,scale,msg", [
    ("missing.safetensors", None, "", "no such file"),
    ("old.pt", lambda p: torch.save({"a": torch.zeros(1)}, p), "", "pickled .pt files are refused"),
    ("old.ckpt", lambda p: p.write_bytes(b"x"), ":0.5", "pickled .ckpt files are refused"),
    ("flux.safetensors", _foreign, "", "none of its 2 keys match this Z-Image transformer"),
    ("weird.safetensors", _nothing, "", "weird.safetensors"),
    ("style.safetensors", lambda p: write_lora(p, "kohya"), ":strong", "scale 'strong' is not a number"),
    ("style.safetensors", lambda p: write_lora(p, "kohya"), ":nan", "finite"),
])
def test_bad_lora_is_one_line_exit_2_nothing_written(tmp_path, capsys, name, make, scale, msg):
    lora = tmp_path / "in" / name
    lora.parent.mkdir()
    if make:
        make(lora)
    out = tmp_path / "out"
    out.mkdir()
    try:
        code = main(["generate", "a fox", "-o", str(out / "x.png"), *TINY, "--lora", f"{lora}{scale}"])
    except SystemExit as exc:  # a bad scale is a usage error (argparse), like any mistyped option value
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert msg in err and name in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("command", ["sweep", "serve", "trace", "verify"])
def test_every_model_command_takes_lora(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--lora FILE[:SCALE]" in capsys.readouterr().out


def test_the_loading_line_names_the_loras(tmp_path, style, capsys):
    main(["generate", "a fox", "-o", str(tmp_path / "a.png"), *[a for a in TINY if a != "--quiet"], "--lora",
          f"{style}:0.5"])
    assert "+ LoRA style.safetensors:0.5" in capsys.readouterr().err


def test_the_command_line_shown_for_an_image_names_its_loras(tmp_path, style):
    """The server and report show `zturbo generate ...` for an image: with a LoRA it must carry --lora."""
    from zturbo.server.app import cli_command

    a = tmp_path / "a.png"
    assert main(["generate", "a fox", "-o", str(a), "--lora", f"{style}:0.25", *TINY]) == 0
    assert f"--lora {style}:0.25" in cli_command(read_recipe(a))


def test_a_sweep_resumed_with_another_lora_is_not_counted_as_done(tmp_path, capsys):
    """The LoRAs make the images too: a re-run with another LoRA or scale must not skip what it would change."""
    lora = tmp_path / "style.safetensors"
    write_lora(lora, "kohya", seed=11, alpha=400.0)
    out = tmp_path / "sweep"
    base = ["sweep", "--model", "tiny", "--device", "cpu", "--quiet", "--prompt", "a robot", "--size", "32x32",
            "--vary", "steps=1,2", "--out", str(out), "--name", "g"]
    assert main([*base, "--lora", f"{lora}:0.5"]) == 0
    capsys.readouterr()
    assert main([*base, "--lora", f"{lora}:0.5", "--dry-run"]) == 0
    assert "2 of 2 images already done" in capsys.readouterr().out  # the same LoRA and scale resume
    assert main([*base, "--lora", f"{lora}:0.9"]) == 2  # another scale would replace them: refused
    err = capsys.readouterr().err
    assert "LoRAs style.safetensors:0.5 ->" in err and "--overwrite" in err
    assert main([*base]) == 2  # without the LoRA: refused too
    assert main([*base, "--overwrite"]) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["loras"] for r in records[-2:]] == [[], []]


def test_from_keeps_a_per_call_loras_adapters_unfused_unless_fast(tmp_path, style):
    """An image made with a per-call LoRA (serve --lora-dir) records it unfused; --from loads it that way (bit for
    bit in bf16: tests/lora/test_lora_switch.py), and fuses it when --fast asks for the compiled blocks."""
    import zturbo

    made = tmp_path / "served.png"
    engine = zturbo.load(model="tiny", device="cpu")
    params = zturbo.GenerationParams(prompt="a fox", seed=7, width=64, height=64, steps=2, rng="cpu")
    engine.generate(params, loras=[(str(style), 0.8)]).save(made)
    again, fast = tmp_path / "again.png", tmp_path / "fast.png"
    assert main(["generate", "--from", str(made), "-o", str(again), "--quiet"]) == 0
    assert [(r["scale"], r["fused"]) for r in read_recipe(again)["loras"]] == [(0.8, False)]
    assert np.array_equal(pixels(again), pixels(made))
    assert main(["generate", "--from", str(made), "-o", str(fast), "--quiet", "--fast"]) == 0
    assert [r["fused"] for r in read_recipe(fast)["loras"]] == [True]


def test_unfused_loras_on_the_command_line_and_in_the_shown_command(tmp_path, style, capsys):
    """--unfused-loras keeps --lora as adapters; the command shown for a per-request LoRA image asks for it."""
    import shlex

    import zturbo
    from zturbo.metadata import generate_command

    a = tmp_path / "a.png"
    assert main(["generate", "a fox", "-o", str(a), "--lora", f"{style}:0.8", "--unfused-loras", *TINY]) == 0
    assert [(r["scale"], r["fused"]) for r in read_recipe(a)["loras"]] == [(0.8, False)]
    engine = zturbo.load(model="tiny", device="cpu")
    params = zturbo.GenerationParams(prompt="a fox", seed=7, width=64, height=64, steps=2, rng="cpu")
    recipe = engine.generate(params, loras=[(str(style), 0.8)]).recipes[0]
    shown = shlex.split(generate_command(recipe["params"], recipe["model"], loras=recipe["loras"]))
    assert shown[shown.index("--lora") + 1] == f"{style}:0.8" and "--unfused-loras" in shown
    assert "--unfused-loras" not in generate_command(recipe["params"], recipe["model"],
                                                     loras=[{**recipe["loras"][0], "fused": True}])
    capsys.readouterr()
    for bad, msg in ((["--unfused-loras"], "--unfused-loras says how to load LoRAs"),
                     (["--lora", str(style), "--unfused-loras", "--fast"], "cannot run with --fast")):
        assert main(["generate", "a fox", "-o", str(tmp_path / "x.png"), *bad, *TINY]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
