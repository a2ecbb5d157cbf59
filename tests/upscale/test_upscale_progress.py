"""`zturbo upscale`'s progress bar: it knows the tile count from the start, ends at n/n, says tile(s) right."""

import re

import pytest

from zturbo.cli import main


def _frames(err):
    """What the bar drew, one redraw per entry (tqdm redraws a line after a carriage return)."""
    return [f.strip() for f in re.split(r"[\r\n]", err) if "fox.png:" in f]


@pytest.fixture
def fox(tmp_path, gradient):
    path = tmp_path / "fox.png"
    gradient(128, 96).save(path)
    return path


def test_tiled_run_counts_every_tile_and_ends_full(fox, compact, tmp_path, capsys):
    assert main(["upscale", str(fox), "--model", str(compact), "--tile", "32", "--overlap", "8", "--device", "cpu",
                 "-o", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    frames = _frames(err)
    assert "0/20 tiles" in frames[0] and "100%" in frames[-1] and "20/20 tiles" in frames[-1]
    assert not any("/1 " in f for f in frames)  # never "0/1 tile" while 20 are coming
    assert "(20 tiles of 32," in out


@pytest.mark.parametrize("tile", ["0", "256"])  # no tiling, or one tile bigger than the image
def test_one_piece_is_said_so(fox, compact, tmp_path, capsys, tile):
    assert main(["upscale", str(fox), "--model", str(compact), "--tile", tile, "--device", "cpu",
                 "-o", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    frames = _frames(err)
    assert "1/1 piece" in frames[-1] and "100%" in frames[-1] and "tiles" not in err
    assert "(1 piece," in out and "1 tiles" not in out
