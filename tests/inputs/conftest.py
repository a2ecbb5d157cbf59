import pytest
from inputs_support import half_mask, noise_image


@pytest.fixture
def photo(tmp_path):
    return noise_image(tmp_path / "photo.png")


@pytest.fixture
def mask(tmp_path):
    return half_mask(tmp_path / "mask.png")
