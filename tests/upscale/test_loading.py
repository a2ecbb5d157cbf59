"""Safe loading through the real path: spandrel's detection, .safetensors, .pth via the restricted
unpickler, TorchScript refused, wrong files named in a clear error."""

import pickle

import numpy as np
import pytest
import torch

from zturbo.errors import CorruptWeights, InvalidParams, WeightsNotFound
from zturbo.upscale import Upscaler


@pytest.mark.parametrize("arch,scale,label", [("Compact", 2, "RealESRGAN Compact"), ("ESRGAN", 4, "ESRGAN"),
                                             ("SPAN", 2, "SPAN")])
def test_safetensors_and_pth_load_the_same_model(model_files, gradient, arch, scale, label):
    image = gradient(24, 16)
    outs = []
    for suffix in (".safetensors", ".pth"):
        up = Upscaler.load(model_files[arch][suffix], device="cpu")
        assert (up.info.architecture, up.scale, up.dtype) == (label, scale, torch.float32)
        assert len(up.info.sha256) == 64
        out = up.upscale(image, tile=0)
        assert out.image.size == (24 * scale, 16 * scale)
        outs.append(np.asarray(out.image))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_scale_below_the_models_is_resized_above_is_refused(model_files, gradient):
    up = Upscaler.load(model_files["ESRGAN"][".safetensors"], device="cpu")
    out = up.upscale(gradient(20, 12), scale=2, tile=0)
    assert out.image.size == (40, 24) and out.record["scale"] == 2 and out.record["model_scale"] == 4
    assert up.upscale(gradient(20, 12), size=(30, 18), tile=0).image.size == (30, 18)  # the sweep's 1.5x
    with pytest.raises(InvalidParams, match="4x model"):
        up.upscale(gradient(20, 12), scale=8)


def test_bf16_where_the_architecture_supports_it(compact, gradient):
    fp32 = Upscaler.load(compact, device="cpu")
    bf16 = Upscaler.load(compact, device="cpu", precision="bf16")
    assert bf16.dtype is torch.bfloat16 and bf16.upscale(gradient(16, 16), tile=0).record["precision"] == "bfloat16"
    a = np.asarray(fp32.upscale(gradient(32, 32), tile=0).image, dtype=int)
    b = np.asarray(bf16.upscale(gradient(32, 32), tile=0).image, dtype=int)
    assert np.abs(a - b).max() <= 8  # bf16 keeps ~3 significant digits


def test_unsupported_precision_is_refused(compact):
    up = Upscaler.load(compact, device="cpu")
    up.descriptor.supports_half = False  # as spandrel declares for e.g. SwinIR-class models
    from zturbo.upscale.loading import pick_dtype

    with pytest.raises(InvalidParams, match="does not support fp16"):
        pick_dtype(up.descriptor, torch.device("cpu"), "fp16")


def test_torchscript_is_refused_even_renamed(compact, tmp_path):
    up = Upscaler.load(compact, device="cpu")
    scripted = torch.jit.trace(up.descriptor.model, torch.rand(1, 3, 8, 8))
    for name in ("model.pt", "renamed.pth"):
        scripted.save(str(tmp_path / name))
        with pytest.raises(InvalidParams, match="TorchScript.*refuses"):
            Upscaler.load(tmp_path / name, device="cpu")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/zturbo-upscale-pwned",))


def test_pickle_with_code_is_not_run(tmp_path):
    import os

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Evil()}, f)
    if os.path.exists("/tmp/zturbo-upscale-pwned"):
        os.unlink("/tmp/zturbo-upscale-pwned")
    with pytest.raises(CorruptWeights, match="evil.pth was refused by the restricted unpickler"):
        Upscaler.load(path, device="cpu")
    assert not os.path.exists("/tmp/zturbo-upscale-pwned")


def test_wrong_files_get_an_error_naming_them(tmp_path, gradient):
    from safetensors.torch import save_file

    with pytest.raises(WeightsNotFound, match="missing.safetensors: no such file"):
        Upscaler.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all" * 10)
    with pytest.raises(CorruptWeights, match="junk.safetensors"):
        Upscaler.load(junk)
    other = tmp_path / "text-encoder.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(4, 4)}, other)
    with pytest.raises(InvalidParams, match="text-encoder.safetensors: spandrel recognises no architecture"):
        Upscaler.load(other)
    img = tmp_path / "photo.png"
    gradient(8, 8).save(img)
    with pytest.raises(InvalidParams, match="photo.png: not an upscaler file"):
        Upscaler.load(img)
