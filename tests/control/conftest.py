import pytest
from inputs_support import noise_image


@pytest.fixture
def control(tmp_path):
    return noise_image(tmp_path / "edges.png", seed=5)
