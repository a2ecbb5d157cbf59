"""Every memory mode places and runs on a real GPU (tiny model: seconds), and --vram-budget caps."""

import pytest
import torch

from zturbo import Engine, GenerationParams
from zturbo import defaults

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def params():
    return GenerationParams(prompt="a red fox in the snow", seed=1, width=128, height=128, rng="cuda")


@pytest.mark.parametrize("memory", defaults.MEMORY_MODES)
def test_each_mode_places_and_generates(memory, params):
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    engine = Engine.load(model="tiny", device="cuda", memory=memory)
    engine.memory.apply(engine.memory.plan.__class__(
        **{**engine.memory.plan.to_dict(), "mode": memory,
           "text_encoder": {"full": "stream", "model-offload": "offload", "group-offload": "stream",
                            "sequential": "sequential"}[memory], "vae_tiling": True}))
    result = engine.generate(params)
    assert result.passes == 8 and result.image.size == (128, 128)
    assert result.recipes[0]["memory"].startswith(memory)


def test_vram_budget_caps_the_allocator(params):
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    engine = Engine.load(model="tiny", device="cuda", vram_budget_gb=2.0)
    engine.generate(params)
    assert torch.cuda.max_memory_reserved() <= 2.0e9
    torch.cuda.set_per_process_memory_fraction(1.0)
