"""Load an upscaler file safely through spandrel, whatever its architecture.

Safety: `.safetensors` holds tensors only; `.pth`/`.ckpt` go through spandrel's restricted unpickler
(tensors and plain containers, nothing callable); TorchScript `.pt` is refused, because loading it
deserialises code. The check looks at the bytes, not only the name: a TorchScript archive renamed
to `.pth` is refused as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import defaults
from ..errors import CorruptWeights, InvalidParams, WeightsNotFound, ZTurboError

_INSTALL = "pip install --no-deps 'spandrel>=0.4.2,<0.5' einops  (scripts/setup.sh does it)"


# -- spandrel import ------------------------------------------------------------------------------
@contextlib.contextmanager
def _torchvision_standin():
    """spandrel imports torchvision at import time, but only two non-upscaling architectures use
    it (LaMa inpainting: rotate; RestoreFormer face restoration: normalize). torchvision must be
    built for the exact torch installed, and a CPU torch has no matching wheel on PyPI (the CUDA
    build fails with "operator torchvision::nms does not exist"); pip would "fix" that by replacing
    torch. So when torchvision is missing or broken, spandrel is imported against this stand-in,
    which lives in sys.modules only for the import: other libraries never see it."""

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def rotate(*_a: Any, **_k: Any):
        raise ZTurboError("this architecture (LaMa) needs torchvision built for your torch: "
                          "pip install torchvision==<the version matching torch>")

    def normalize(t: torch.Tensor, mean, std, inplace: bool = False) -> torch.Tensor:
        mean = torch.as_tensor(mean, dtype=t.dtype, device=t.device).view(-1, 1, 1)
        std = torch.as_tensor(std, dtype=t.dtype, device=t.device).view(-1, 1, 1)
        return t.sub_(mean).div_(std) if inplace else (t - mean) / std

    tv, tr, fn = (types.ModuleType(n) for n in
                  ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"))
    fn.InterpolationMode, fn.rotate, fn.normalize = InterpolationMode, rotate, normalize
    tv.transforms, tr.functional = tr, fn
    names = {m.__name__: m for m in (tv, tr, fn)}
    sys.modules.update(names)
    try:
        yield
    finally:
        for n in names:
            sys.modules.pop(n, None)


def _drop(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def import_spandrel():
    """The spandrel module, or a clear error saying how to install it."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    try:
        import spandrel

        return spandrel
    except ModuleNotFoundError as exc:
        if exc.name == "spandrel":
            raise ZTurboError(f"upscaling needs spandrel: {_INSTALL}") from None
        if not (exc.name or "").startswith("torchvision"):
            raise
    except RuntimeError as exc:  # a torchvision built for another torch
        if "torchvision" not in str(exc):
            raise
    _drop("spandrel")
    _drop("torchvision")
    with _torchvision_standin():
        import spandrel
    return spandrel


# -- the file -------------------------------------------------------------------------------------
def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a code/ folder (torch.save zips have none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in f"/{n}" for n in z.namelist())


def check_file(path: str | Path) -> Path:
    """The path, once it is known to exist and to be a kind of file that loads safely."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFound(f"upscaler {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".pt" or (suffix in (".pth", ".ckpt") and _is_torchscript(path)):
        raise InvalidParams(
            f"{path} is a TorchScript file: loading one deserialises and can run code, so zturbo refuses it. "
            "Use the .safetensors (or plain .pth state dict) release of the same model, or convert it on a "
            "machine you trust: torch.jit.load(f).state_dict() -> safetensors.torch.save_file"
        )
    if suffix not in defaults.UPSCALE_SUFFIXES:
        raise InvalidParams(f"{path}: not an upscaler file; expected one of {', '.join(defaults.UPSCALE_SUFFIXES)} "
                            "(.safetensors preferred)")
    return path


@dataclasses.dataclass(frozen=True)
class UpscalerInfo:
    """What the recipe records about an upscaler."""

    name: str  # the file name
    file: str
    sha256: str
    architecture: str
    architecture_id: str
    scale: int  # the model's own factor
    purpose: str
    tags: tuple[str, ...]

    def as_recipe(self) -> dict[str, Any]:
        return {"model": self.name, "weights_file": self.file, "weights_sha256": self.sha256,
                "architecture": self.architecture, "architecture_id": self.architecture_id,
                "model_scale": self.scale, "purpose": self.purpose, "tags": list(self.tags)}


def load_descriptor(path: str | Path):
    """(spandrel ImageModelDescriptor on the CPU in fp32, UpscalerInfo). Errors name the file."""
    from ..hashing import cached_sha256

    path = check_file(path)
    spandrel = import_spandrel()
    loader = spandrel.ModelLoader(device="cpu")
    try:
        state_dict = loader.load_state_dict_from_file(path)
    except Exception as exc:  # safetensors header errors, zip/pickle errors, the unpickler's refusals
        if "forbidden" in str(exc):
            raise CorruptWeights(f"{path} was refused by the restricted unpickler ({exc}): it holds code, not "
                                 "only tensors. Use the model's .safetensors release") from None
        raise CorruptWeights(f"{path} cannot be read as {path.suffix} weights ({type(exc).__name__}: {exc}); "
                             "is it complete, and really a model file?") from None
    if not isinstance(state_dict, dict):
        raise InvalidParams(f"{path} holds a {type(state_dict).__name__}, not a model state dict")
    try:
        desc = loader.load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError:
        raise InvalidParams(f"{path}: spandrel recognises no architecture in this file (ESRGAN, Real-ESRGAN, "
                            "SPAN, SwinIR, HAT, DAT, Compact... are supported); is it an image upscaler?") from None
    except Exception as exc:  # an architecture matched but the tensors do not fit it
        raise CorruptWeights(f"{path}: looks like {type(exc).__name__} weights that do not fit any "
                             f"known architecture ({exc})") from None
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise InvalidParams(f"{path} is a {desc.architecture.name} {desc.purpose} model, not an image upscaler")
    info = UpscalerInfo(
        name=path.name, file=str(path.resolve()), sha256=cached_sha256(path),
        architecture=desc.architecture.name, architecture_id=str(desc.architecture.id),
        scale=int(desc.scale), purpose=str(desc.purpose), tags=tuple(desc.tags),
    )
    return desc.eval(), info


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_dtype(desc, device: torch.device, precision: str = "auto") -> torch.dtype:
    """auto: bf16 on a GPU where the architecture supports it, else fp16 where it does, else fp32;
    fp32 on a CPU (half-precision convolutions are slow there). An explicit choice is checked."""
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        if desc.supports_bfloat16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if desc.supports_half else torch.float32
    if precision not in PRECISIONS:
        raise InvalidParams(f"precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if (dtype is torch.float16 and not desc.supports_half) or (dtype is torch.bfloat16 and not desc.supports_bfloat16):
        raise InvalidParams(f"{desc.architecture.name} does not support {precision} (spandrel says so); "
                            "use --precision fp32 or auto")
    return dtype
