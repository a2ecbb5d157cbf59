"""Fixtures for the LoRA tests; the LoRA file writers are in lora_files.py."""

import pytest


@pytest.fixture(scope="session")
def base_weights():
    """The tiny transformer's weights with no LoRA."""
    from zturbo.models import tiny

    return {k: v.clone() for k, v in tiny.build_components()["transformer"].state_dict().items()}
