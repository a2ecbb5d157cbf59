"""Which Fun-Controlnet-Union variant a file is, from its keys and shapes, as the shipped configs need."""

import numpy as np
import pytest
from safetensors.numpy import save_file

from zturbo import InvalidParams, controlnet


def union_file(path, blocks, in_dim, refiner=None, width=3840):
    """The keys and shapes that tell the variants apart (the real files hold many more tensors)."""
    tensors = {controlnet.EMBEDDER_KEY: np.zeros((width, 4 * in_dim), np.float16)}
    for i in range(blocks):
        tensors[f"control_layers.{i}.after_proj.weight"] = np.zeros((1, 1), np.float16)
    if refiner is not None:
        tensors[controlnet.REFINER_PROJ_KEY] = np.full((1, 1), refiner, np.float16)
    save_file(tensors, str(path))
    return str(path)


@pytest.mark.parametrize("blocks,in_dim,refiner,variant", [
    (6, 16, None, "union-1.0"), (15, 33, 0.0, "union-2.0"), (15, 33, None, "union-2.0"), (15, 33, 0.5, "union-2.1"),
])
def test_the_variant_is_read_from_the_file(tmp_path, blocks, in_dim, refiner, variant):
    path = union_file(tmp_path / "cn.safetensors", blocks, in_dim, refiner)
    assert controlnet.infer_variant(path) == variant
    assert (controlnet.CONFIGS / variant / "config.json").is_file()  # shipped in the package: nothing is fetched


def test_an_unknown_layout_names_the_file_and_the_known_variants(tmp_path):
    path = union_file(tmp_path / "lite.safetensors", 3, 33, 0.5)
    with pytest.raises(InvalidParams, match=r"lite.safetensors: 3 control blocks with 33 input channels .* 1.0 .* 2.1"):
        controlnet.infer_variant(path)


def test_the_tiny_file_is_the_tiny_layout():
    assert controlnet.infer_variant(str(controlnet.tiny_file())) == "tiny"


def test_a_full_size_controlnet_on_the_tiny_model_is_refused_before_loading(tmp_path):
    from zturbo import Engine

    path = union_file(tmp_path / "cn.safetensors", 15, 33, 0.5)
    with pytest.raises(InvalidParams, match="union-2.1.* width 3840; this model's is 256"):
        Engine.load(model="tiny", device="cpu", controlnet=path)
