import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "inputs"))  # inputs_support: noise photos and masks, for every suite

# User dirs go to a temp folder; no test may touch the network or the real HF cache.
_SESSION_TMP = None


def pytest_configure(config):
    import tempfile

    global _SESSION_TMP
    _SESSION_TMP = tempfile.mkdtemp(prefix="zturbo-tests-")
    os.environ["ZTURBO_CACHE"] = os.path.join(_SESSION_TMP, "zturbo-cache")
    os.environ["HF_HOME"] = os.path.join(_SESSION_TMP, "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_engine():
    from zturbo import Engine

    return Engine.load(model="tiny", device="cpu")


@pytest.fixture(scope="session")
def control_engine():
    """The tiny model with the tiny ControlNet (control tests, serve --controlnet's server and web UI)."""
    from zturbo import Engine

    return Engine.load(model="tiny", device="cpu", controlnet="tiny")


@pytest.fixture
def small_params():
    from zturbo import GenerationParams

    return GenerationParams(prompt="a sleek black robot on a red background", seed=42, width=64, height=64, rng="cpu")


@pytest.fixture
def photo(tmp_path):
    from inputs_support import noise_image

    return noise_image(tmp_path / "photo.png")


@pytest.fixture
def mask(tmp_path):
    from inputs_support import half_mask

    return half_mask(tmp_path / "mask.png")
