"""One exit-code rule for every command (README, Generate): 2 = bad input, 1 = a failure.

2: an option or value zturbo refuses, an input image or folder that does not exist, a file of a kind the
command does not take, an output file that exists (without --overwrite). 1: weights that are missing (not in the cache,
or a weights path that does not exist) or damaged, out of memory, a failed generation or write."""

import pytest
from PIL import Image

from zturbo.cli import COMMANDS, main


@pytest.fixture
def plain_png(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    return path


BAD_INPUT = {
    "generate": ["generate", "x", "--model", "tiny", "--width", "0", "--height", "64"],
    "upscale": ["upscale", "{tmp}/nope.png", "--model", "{tmp}/x.safetensors"],
    "inspect": ["inspect", "{png}"],
    "verify": ["verify", "--model", "tiny", "--vram-budget", "0"],
    "trace": ["trace", "x", "--model", "tiny", "--size", "0x64"],
    "doctor": ["doctor", "--vram-budget", "0"],
    "sweep": ["sweep", "aspect", "--megapixels", "0", "--model", "tiny", "--dry-run", "-o", "{tmp}/sweep"],
    "report": ["report", "{tmp}/nope"],
    "serve": ["serve", "--model", "tiny", "--port", "0"],
    "bench": ["bench", "--device", "cpu"],  # the full-size model needs a GPU
}
FAILURE = {
    "generate": ["generate", "x", "--device", "cpu", "-o", "{tmp}/x.png"],  # no weights offline
    "upscale": ["upscale", "{png}", "--model", "{tmp}/nope.safetensors", "-o", "{tmp}/out.png"],
    "inspect": ["inspect", "{tmp}/nope.gguf"],
    "verify": ["verify", "--model", "tiny", "--gguf", "{tmp}/nope.gguf"],
    "trace": ["trace", "x", "--model", "{tmp}/no-such-model-folder"],
}


def _run(argv, tmp_path, png) -> int:
    try:
        return main([a.format(tmp=tmp_path, png=png) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        return exc.code


def test_every_command_is_covered():
    assert set(BAD_INPUT) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(command, tmp_path, plain_png, capsys):
    assert _run(BAD_INPUT[command], tmp_path, plain_png) == 2
    err = capsys.readouterr().err
    assert "error: " in err.splitlines()[-1] and "Traceback" not in err


@pytest.mark.parametrize("command", sorted(FAILURE))
def test_a_failure_exits_1_with_one_line(command, tmp_path, plain_png, capsys):
    assert _run(FAILURE[command], tmp_path, plain_png) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and "Traceback" not in err
