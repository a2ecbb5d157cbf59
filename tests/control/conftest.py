import pytest
from inputs_support import noise_image


@pytest.fixture(scope="session")
def control_engine():
    from zturbo import Engine

    return Engine.load(model="tiny", device="cpu", controlnet="tiny")


@pytest.fixture
def control(tmp_path):
    return noise_image(tmp_path / "edges.png", seed=5)
