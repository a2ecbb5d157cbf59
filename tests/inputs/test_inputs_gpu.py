"""Image-to-image and inpainting on a real GPU (device machine only: pytest -m gpu tests/inputs): each memory
mode and --fast run the edit pipelines on the shared modules, with the real pass count. No timings here."""

import pytest
import torch
from inputs_support import half_mask, noise_image

from zturbo import Engine, GenerationParams

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    return noise_image(d / "photo.png", 128, 96), half_mask(d / "mask.png", 128, 96)


def _edits(engine, inputs):
    photo, mask = inputs
    for extra, passes in (({"strength": 0.6}, 5), ({"mask": mask}, 8)):
        p = GenerationParams(prompt="a fox", image=photo, seed=1, rng="cuda", **extra)
        res = engine.generate(p)
        rec = res.recipes[0]
        assert res.passes == passes == p.passes and res.image.size == (128, 96)
        assert not rec["nan"] and rec["mode"] == p.mode


@pytest.mark.parametrize("memory", ["full", "model-offload", "group-offload"])
def test_each_memory_mode_runs_the_edits(memory, inputs):
    _edits(Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, memory=memory), inputs)


def test_fast_runs_the_edits(inputs):
    _edits(Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, fast=True), inputs)
