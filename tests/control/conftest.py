import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "inputs"))  # inputs_support: noise photos and masks

from inputs_support import half_mask, noise_image  # noqa: E402


@pytest.fixture(scope="session")
def control_engine():
    from zturbo import Engine

    return Engine.load(model="tiny", device="cpu", controlnet="tiny")


@pytest.fixture
def control(tmp_path):
    return noise_image(tmp_path / "edges.png", seed=5)


@pytest.fixture
def photo(tmp_path):
    return noise_image(tmp_path / "photo.png")


@pytest.fixture
def mask(tmp_path):
    return half_mask(tmp_path / "mask.png")
