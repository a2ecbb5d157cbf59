"""Result.save as a library user calls it: one path for one image, a list for several."""

from pathlib import Path

import pytest
from PIL import Image

from zturbo.engine import Result
from zturbo.errors import InvalidParams
from zturbo.metadata import read_recipe


def _result(n: int) -> Result:
    params = [{"prompt": "a robot", "negative_prompt": "", "steps": 8, "guidance": 0.0, "seed": 40 + i,
               "width": 16, "height": 16, "rng": "cpu"} for i in range(n)]
    recipes = [{"params": p, "model": {"model": "tiny", "quant": "float32"}, "passes": 8} for p in params]
    return Result([Image.new("RGB", (16, 16), (i * 50, 0, 0)) for i in range(n)], params, recipes, [])


@pytest.mark.parametrize("as_type", [str, Path])
def test_one_image_saves_to_one_path(tmp_path, monkeypatch, as_type):
    monkeypatch.chdir(tmp_path)
    assert _result(1).save(as_type("robot.png")) == [Path("robot.png")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["robot.png"]  # not a file named "r"
    assert read_recipe(tmp_path / "robot.png")["params"]["seed"] == 40


def test_several_images_save_to_a_list(tmp_path):
    paths = [tmp_path / "a.png", str(tmp_path / "b.png")]
    _result(2).save(paths)
    assert [read_recipe(p)["params"]["seed"] for p in paths] == [40, 41]


@pytest.mark.parametrize("n,targets,msg", [
    (2, "robots.png", "this result holds 2 images: save() takes a list of 2 paths, one per image, got 1"),
    (2, ["a.png"], "this result holds 2 images: save() takes a list of 2 paths, one per image, got 1"),
    (1, ["a.png", "b.png"], "this result holds 1 image: save() takes one path, got 2"),
    (1, [1], "save() takes paths (str or Path), got int"),
])
def test_a_count_mismatch_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch, n, targets, msg):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidParams) as exc:
        _result(n).save(targets)
    assert str(exc.value) == msg
    assert list(tmp_path.iterdir()) == []
