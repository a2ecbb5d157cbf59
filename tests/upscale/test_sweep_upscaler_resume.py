"""Resuming `zturbo sweep upscale` with another upscaler file re-makes the upscaled images (and only them)."""

import shutil

from zturbo.metadata import read_recipe
from zturbo.sweep import specs
from zturbo.sweep.plan import Plan
from zturbo.sweep.runner import run_sweep

UPSCALED = {"upscale/upscaled_1.5x_80x48", "upscale/upscaled_2x_96x64"}


def _run(upscaler, folder, engine):
    settings = specs.ArticleSettings(prompt="a robot", size=(48, 32), steps=2, rng="cpu", upscaler=str(upscaler))
    return run_sweep(Plan(specs.article_experiments(["upscale"], settings), "a robot", "steps = passes"), folder,
                     loader=lambda q: engine, model="tiny", quiet=True)


def _upscaler_of(folder, item_id):
    return read_recipe(folder / f"{item_id}.png")["upscale"][-1]["model"]


def test_another_upscaler_file_remakes_the_upscaled_items(model_files, tmp_path, tiny_engine):
    compact, span = model_files["Compact"][".safetensors"], model_files["SPAN"][".safetensors"]
    assert (_run(compact, tmp_path, tiny_engine).made, _run(compact, tmp_path, tiny_engine).made) == (5, 0)
    again = _run(span, tmp_path, tiny_engine)
    assert (again.made, again.skipped) == (2, 3)
    assert {i for i, r in again.records.items() if (r.get("upscale") or [{}])[-1].get("model") == span.name} == UPSCALED
    assert all(_upscaler_of(tmp_path, i) == span.name for i in UPSCALED)


def test_the_same_file_name_with_new_weights_remakes_them_too(model_files, tmp_path, tiny_engine):
    up = tmp_path / "upscaler.safetensors"
    shutil.copy(model_files["Compact"][".safetensors"], up)
    assert _run(up, tmp_path / "sweep", tiny_engine).made == 5
    shutil.copy(model_files["SPAN"][".safetensors"], up)  # replaced in place, same name
    again = _run(up, tmp_path / "sweep", tiny_engine)
    assert (again.made, again.skipped) == (2, 3)
    architectures = {read_recipe(tmp_path / "sweep" / f"{i}.png")["upscale"][-1]["architecture"] for i in UPSCALED}
    assert architectures == {"SPAN"}
