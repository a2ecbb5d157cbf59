"""`zturbo sweep upscale`: the article's "generate near native, then upscale" as an experiment."""

import numpy as np
import pytest
from PIL import Image

from zturbo.errors import InvalidParams, WeightsNotFound
from zturbo.metadata import read_recipe
from zturbo.sweep import specs
from zturbo.sweep.plan import Plan
from zturbo.sweep.runner import run_sweep


def _settings(upscaler, **kw):
    return specs.ArticleSettings(prompt="a robot", size=(48, 32), steps=2, rng="cpu", upscaler=upscaler, **kw)


def test_plan_pairs_direct_and_upscaled_at_the_same_sizes(compact):
    [exp] = specs.article_experiments(["upscale"], _settings(str(compact)))
    sizes = {(i.row, i.axes["factor"]): (i.params.width, i.params.height, i.upscale) for i in exp.items}
    assert sizes[("direct", 1.0)][:2] == (48, 32)
    assert sizes[("direct", 1.5)][:2] == (80, 48)  # 72x48 snapped to the 16-pixel grid
    assert sizes[("upscaled", 1.5)][:2] == (48, 32) and sizes[("upscaled", 1.5)][2]["size"] == [80, 48]
    assert sizes[("direct", 2.0)][:2] == (96, 64) and sizes[("upscaled", 2.0)][2]["size"] == [96, 64]
    assert ("upscaled", 1.0) not in sizes  # that would be the native image again
    assert all(i.params.seed == exp.items[0].params.seed for i in exp.items)
    assert "upscale" not in [e.name for e in specs.article_experiments(["all"], _settings(None))]


def test_upscale_experiment_needs_a_usable_upscaler(tmp_path):
    with pytest.raises(InvalidParams, match="--upscaler FILE"):
        specs.article_experiments(["upscale"], _settings(None))
    with pytest.raises(WeightsNotFound, match="nope.safetensors"):
        specs.article_experiments(["upscale"], _settings(str(tmp_path / "nope.safetensors")))


def test_sweep_makes_both_arms_with_their_seconds(compact, tmp_path, tiny_engine):
    experiments = specs.article_experiments(["upscale"], _settings(str(compact)))
    out = run_sweep(Plan(experiments, "a robot", "steps = passes"), tmp_path, loader=lambda q: tiny_engine,
                    model="tiny", quiet=True)
    assert (out.made, out.failed) == (5, 0)
    rec = out.records["upscale/upscaled_2x_96x64"]
    assert rec["timings"]["upscale"] > 0 and rec["seconds"] >= rec["timings"]["upscale"]
    direct, upscaled = (Image.open(tmp_path / f"upscale/{m}_2x_96x64.png") for m in ("direct", "upscaled"))
    assert direct.size == upscaled.size == (96, 64)
    recipe = read_recipe(tmp_path / "upscale/upscaled_2x_96x64.png")
    assert recipe["params"]["width"] == 48 and recipe["upscale"][0]["output_size"] == [96, 64]
    # the upscaled arm starts from the very image the 1x direct arm made (same prompt, seed, size)
    native = np.asarray(Image.open(tmp_path / "upscale/direct_1x_48x32.png").resize((96, 64), Image.Resampling.NEAREST), float)
    assert np.abs(np.asarray(upscaled, float) - native).mean() < np.abs(np.asarray(direct, float) - native).mean()
