"""Every image carries its recipe: PNG text chunks with the full recipe as JSON (`zturbo`) and an
A1111-style `parameters` line that other tools read. `read_recipe` takes it back for --from."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from . import defaults
from .atomic import atomic_path, write_bytes_atomic
from .errors import InvalidParams
from .lora import a1111_hashes
from .pngwrite import encode_png

RECIPE_KEY = "zturbo"
A1111_KEY = "parameters"


def _a1111_controlnet(record: dict[str, Any] | None, p: dict[str, Any]) -> str | None:
    """The ControlNet extension's field: "Module: canny, Model: NAME [hash], Weight: 0.75", in quotes."""
    if not record:
        return None
    module = "none" if p.get("control_type") in (None, "none") else p["control_type"]
    return (f'"Module: {module}, Model: {record.get("name")} [{str(record.get("sha256"))[:8]}], '
            f'Weight: {p.get("control_scale", 1.0):g}"')


def a1111_line(recipe: dict[str, Any]) -> str:
    """The A1111 `parameters` text. An upscaled image (the recipe's `upscale` list) gets A1111's own
    postprocessing fields: the upscaler file, the total factor and the file's hash (not "Hires" fields:
    nothing is denoised again). A recipe with only an `upscale` list gives just those fields."""
    p = recipe.get("params")
    model = recipe.get("model", {})
    lines, fields = [], {}
    if p:
        lines.append(p["prompt"])
        if p.get("negative_prompt"):
            lines.append(f"Negative prompt: {p['negative_prompt']}")
        fields = {
            "Steps": p["steps"],
            "Sampler": "Euler (flow matching)",
            "CFG scale": f"{p['guidance']:g}",
            "Seed": p["seed"],
            "Size": f"{p['width']}x{p['height']}",
            "Model": model.get("label") or model.get("model"),
            "Model hash": (model.get("weights_sha256") or model.get("revision") or "")[:10] or None,
            "Quant": model.get("quant"),
            "Denoising strength": None if p.get("strength") is None else f"{p['strength']:g}",  # img2img, as A1111
            "Passes": recipe.get("passes"),
            "RNG": p.get("rng"),
            "Lora hashes": a1111_hashes(recipe.get("loras")),
            "ControlNet 0": _a1111_controlnet(recipe.get("controlnet"), p),
            "Version": f"zturbo {recipe.get('versions', {}).get('zturbo', '')}".strip(),
        }
    steps = recipe.get("upscale") or []
    if steps:
        last, by = steps[-1], 1.0
        for step in steps:
            by *= float(step.get("scale") or 1)
        fields["Postprocess upscaler"] = f"{last.get('model')} ({last.get('architecture')} {last.get('model_scale')}x)"
        fields["Postprocess upscale by"] = f"{by:g}"
        fields["Upscaler hash"] = (last.get("weights_sha256") or "")[:10] or None
    lines.append(", ".join(f"{k}: {v}" for k, v in fields.items() if v is not None and v != ""))
    return "\n".join(lines)


def save_png(image: Image.Image, target: str | os.PathLike, recipe: dict[str, Any]) -> Path:
    """Write `image` with its recipe, atomically (temp file + rename)."""
    return write_png(image, target, {RECIPE_KEY: json.dumps(recipe, sort_keys=True), A1111_KEY: a1111_line(recipe)})


def write_png(image: Image.Image, target: str | os.PathLike, text: dict[str, str]) -> Path:
    """Write `image` with `text` as iTXt chunks (in that order), atomically."""
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        data = encode_png(np.asarray(image), text)  # all cores: Pillow's encoder is single-threaded
        return write_bytes_atomic(target, data)
    info = PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(target)


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe stored in a zturbo PNG; a clear error for anything else."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            text = im.text.get(RECIPE_KEY) if hasattr(im, "text") else None
    except FileNotFoundError:
        raise InvalidParams(f"{path}: no such image") from None
    except OSError as exc:
        raise InvalidParams(f"{path} is not a readable image ({exc})") from None
    if not text:
        raise InvalidParams(f"{path} carries no zturbo recipe (it was not written by zturbo, or its metadata was stripped)")
    try:
        recipe = json.loads(text)
        recipe["params"]["prompt"]
    except (ValueError, KeyError, TypeError):
        raise InvalidParams(f"{path} has a damaged zturbo recipe") from None
    return recipe


def generate_command(params: dict[str, Any], model: dict[str, Any] | None = None, quant: str | None = None,
                     loras: list[dict[str, Any]] | None = None, controlnet: dict[str, Any] | None = None) -> str:
    """The `zturbo generate` line that makes an image again from its recipe (params + model info).

    `quant` overrides the model's (a sweep records the precision it asked for). The report and the
    server both show this line; tests run it and compare pixels.
    """
    model = model or {}
    quant = quant or model.get("quant")
    args = ["zturbo", "generate", params.get("prompt", "")]
    if params.get("negative_prompt"):
        args += ["--negative-prompt", params["negative_prompt"]]
    args += ["--seed", str(params.get("seed")), "--steps", str(params.get("steps")),
             "--guidance", f"{float(params.get('guidance', 0)):g}", "--size", f"{params.get('width')}x{params.get('height')}"]
    if quant in defaults.QUANTS:
        args += ["--quant", quant]
    elif model.get("weights_file"):
        args += ["--gguf", str(model["weights_file"])]
    if params.get("rng"):
        args += ["--rng", str(params["rng"])]
    for role in ("image", "mask"):
        if params.get(role):
            args += [f"--{role}", str(params[role])]
    if params.get("strength") is not None:
        args += ["--strength", f"{float(params['strength']):g}"]
    if params.get("resize"):
        args += ["--resize"]
    mp = int(params.get("width", 0)) * int(params.get("height", 0)) / defaults.MEGAPIXEL
    if mp > defaults.MAX_MEGAPIXELS:
        args += ["--max-megapixels", f"{float(params.get('max_megapixels', mp)):g}"]
    if model.get("model") and model["model"] != defaults.MODEL_ID:
        args += ["--model", str(model["model"])]
    for lora in loras or ():
        args += ["--lora", f"{lora['path']}:{float(lora['scale']):g}"]
    gguf = quant == "gguf" or quant in defaults.GGUF_FILES or model.get("weights_file")
    if loras and not gguf and not any(lora.get("fused", True) for lora in loras):
        args += ["--unfused-loras"]  # as they ran (serve's per-request LoRAs): the same pixels
    if params.get("control_image"):  # `controlnet`: the recipe's record of the file (its path, or "tiny")
        if controlnet and (controlnet.get("path") or controlnet.get("name")):
            args += ["--controlnet", str(controlnet.get("path") or controlnet["name"])]
        args += ["--control", str(params["control_image"])]
        if params.get("control_scale") is not None:
            args += ["--control-scale", f"{float(params['control_scale']):g}"]
        if params.get("control_type"):
            args += ["--control-type", str(params["control_type"])]
    return shlex.join(args)
