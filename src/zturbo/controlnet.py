"""ControlNet: a Fun-Controlnet-Union single file, checked, loaded with diffusers' single-file path, run by
diffusers' ZImageControlNetPipeline / ZImageControlNetInpaintPipeline on the engine's own modules.

alibaba-pai publishes Z-Image-Turbo-Fun-Controlnet-Union (1.0), -2.0 and -2.1 as one .safetensors file each;
diffusers reads them with ZImageControlNetModel.from_single_file and convert_z_image_controlnet_checkpoint_to_
diffusers, fetching the config from a hub repo. zturbo ships those configs in the package (controlnets/*/config.json)
and picks one from the file's own keys and shapes, so nothing is fetched. The ControlNet owns only its control
blocks: the embedders, refiners and pad tokens are the base transformer's (the pipeline links them with
ZImageControlNetModel.from_transformer), so it costs ~1-3 GB on top of the base model, not a second transformer.

This module is light to import (no torch until load_controlnet runs): LoadOptions validates with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import defaults
from .errors import CorruptWeights, InvalidParams

CONFIGS = Path(__file__).with_name("controlnets")  # package data: one folder per variant, holding config.json
EMBEDDER_KEY = "control_all_x_embedder.2-1.weight"  # diffusers' own marker of a Z-Image ControlNet file
REFINER_PROJ_KEY = "control_noise_refiner.0.before_proj.weight"
# variant -> (control blocks, control input channels) as the files hold them. 2.0 and 2.1 share a layout and
# are told apart as diffusers' infer_diffusers_model_type does: 2.0's refiner projections are absent or zero
LAYOUTS = {"union-1.0": (6, 16), "union-2.x": (15, 33), "tiny": (2, 33)}
KNOWN = "Fun-Controlnet-Union 1.0 (6 control blocks, 16 input channels), 2.0 and 2.1 (15 blocks, 33 channels)"


def check_file(path: str) -> None:
    """A ControlNet file that exists and is safetensors; pickles are refused before anything reads them."""
    from .lora import PICKLE_SUFFIXES, SUFFIX

    if path == defaults.TINY_MODEL:
        return
    suffix = Path(path).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise InvalidParams(f"ControlNet {path}: pickled {suffix} files are refused (loading a pickle can run any "
                            f"code); use the {SUFFIX} file")
    if suffix != SUFFIX:
        raise InvalidParams(f"ControlNet {path}: not a {SUFFIX} file (zturbo loads Fun-Controlnet-Union "
                            f"{SUFFIX} files)")
    if not os.path.isfile(path):
        raise InvalidParams(f"ControlNet {path}: no such file")


def infer_variant(path: str) -> str:
    """Which shipped config fits the file, from its keys and shapes; a one-line error naming the file if none."""
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            keys = set(f.keys())
            if EMBEDDER_KEY not in keys:
                raise InvalidParams(f"ControlNet {path}: not a Z-Image ControlNet (no {EMBEDDER_KEY}; e.g. "
                                    f"{', '.join(sorted(keys)[:3]) or 'no tensors at all'}): give a {KNOWN} file")
            out_dim, in_features = f.get_slice(EMBEDDER_KEY).get_shape()
            refiner = f.get_tensor(REFINER_PROJ_KEY) if REFINER_PROJ_KEY in keys else None
    except InvalidParams:
        raise
    except Exception as exc:  # safetensors' own error types for a damaged header
        raise InvalidParams(f"ControlNet {path}: not a readable .safetensors file ({exc})") from None
    blocks = len({k.split(".")[1] for k in keys if k.startswith("control_layers.")})
    layout = (blocks, in_features // 4)  # patch 2x2: the embedder reads 4 x control_in_dim values
    for name, want in LAYOUTS.items():
        if layout == want and (name != "tiny") == (out_dim != 256):
            if name == "union-2.x":
                return "union-2.1" if refiner is not None and bool(refiner.abs().sum() > 0) else "union-2.0"
            return name
    raise InvalidParams(f"ControlNet {path}: {blocks} control blocks with {layout[1]} input channels (width "
                        f"{out_dim}) fit none of the layouts zturbo ships configs for: {KNOWN}")


def load_controlnet(path: str, transformer, dtype) -> tuple[Any, dict[str, Any]]:
    """(ZImageControlNetModel on the CPU, its recipe record). `path` "tiny" writes (once) and loads the tiny
    model's ControlNet file, through the same single-file path as a real one."""
    from diffusers import ZImageControlNetModel

    from .hashing import cached_sha256

    given = path
    if path == defaults.TINY_MODEL:
        path = str(tiny_file())
    variant = infer_variant(path)
    width = transformer.config.dim
    config = CONFIGS / variant
    cn_width = json.loads((config / "config.json").read_text())["dim"]
    if cn_width != width:
        raise InvalidParams(f"ControlNet {given} ({variant}) is for a transformer of width {cn_width}; this model's "
                            f"is {width}: use a ControlNet made for this model"
                            + (" (--controlnet tiny with --model tiny)" if width == 256 or cn_width == 256 else ""))
    try:
        model = ZImageControlNetModel.from_single_file(path, config=str(config), torch_dtype=dtype,
                                                       local_files_only=True)
    except Exception as exc:  # diffusers raises ValueError / SingleFileComponentError / RuntimeError on bad tensors
        raise CorruptWeights(f"ControlNet {given}: diffusers could not load it as {variant} "
                             f"({str(exc).splitlines()[0][:200]})") from None
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise CorruptWeights(f"ControlNet {given}: lacks {len(missing)} weights the {variant} layout needs "
                             f"(e.g. {missing[0]}): a damaged or incomplete file")
    record = {"name": Path(path).name if given != defaults.TINY_MODEL else defaults.TINY_MODEL,
              "path": defaults.TINY_MODEL if given == defaults.TINY_MODEL else os.path.abspath(path),
              "sha256": cached_sha256(path), "variant": variant,
              "control_in_dim": model.config.control_in_dim}
    return model.eval(), record


def from_recipe(record: dict[str, Any], image: str) -> str:
    """The ControlNet an image's recipe names, for --from: the file at its recorded path, unchanged."""
    from .hashing import recorded_file

    path = record.get("path") or record.get("name")
    if path == defaults.TINY_MODEL:
        return path
    return recorded_file(path, record.get("sha256") or "", image=image, what="ControlNet", name=record.get("name"),
                         flag="--controlnet")


def tiny_file() -> Path:
    """The tiny model's ControlNet as a Union-2.1-layout single file (written once, then cached): the real
    class at the tiny transformer's width, with deterministic random weights. The zero-initialised projections
    of a fresh ControlNet are made random too, or its hints would be zero and a test could not tell it ran."""
    import torch
    from diffusers import ZImageControlNetModel
    from safetensors.torch import save_file

    from .atomic import write_text_atomic
    from .models.loader import _state_hash
    from .paths import cache_dir

    config = {k: v for k, v in json.loads((CONFIGS / "tiny" / "config.json").read_text()).items()
              if not k.startswith("_")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(defaults.TINY_CONTROLNET_SEED)
        model = ZImageControlNetModel(**config)
        for name, p in model.named_parameters():
            if "before_proj" in name or "after_proj" in name or "control_all_x_embedder" in name:
                torch.nn.init.normal_(p, std=0.05)
    path = cache_dir() / "tiny" / "z-image-turbo-tiny-controlnet-union-2.1.safetensors"
    source = _state_hash(model)
    stamp = path.with_name(path.name + ".source")
    if not (path.exists() and stamp.is_file() and stamp.read_text().strip() == source):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, path)
        write_text_atomic(stamp, source + "\n")
    return path
