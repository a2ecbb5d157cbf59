"""Any grid: `--vary KEY=V1,V2,...` (with A1111 X/Y/Z-plot ranges) and TOML experiment files.

    --vary steps=1-15 (+2)        1, 3, 5, ..., 15         (a range with a step)
    --vary guidance=0-1 [5]       0, 0.25, 0.5, 0.75, 1    (a range with a count)
    --vary "prompt=a cat, \"a dog, sitting\""  (values are CSV: quote one that holds a comma)

A TOML file (read with the standard library's tomllib; tomli on Python 3.10):

    name = "fox"                       # folder and experiment name (default: the file's stem)
    title = "Fox: steps x guidance"
    prompts = ["a red fox", "a blue fox"]   # or prompt = "..."; several prompts become an axis
    [params]                           # fixed: steps, guidance, seed, size/width/height, aspect, megapixels, quant, rng,
    seed = 42                          #   image, mask, resize, strength (image-to-image / inpainting),
                                       #   control_image, control_scale, control_type (ControlNet)
    size = "512x512"
    [axes]                             # in order x, y, z; a list or a range string
    steps = "4-12 (+4)"
    guidance = [0, 0.5]

LoRA scale: with one `--lora FILE`, `--vary lora_scale="0-1 [5]"` (or lora_scale in [axes]) makes one image
per scale of that LoRA (file names ..._L0.5.png); each scale is one model load (the LoRA is fused into the
weights), its images made together.

LoRA files: `--vary lora=none,a.safetensors,b.safetensors:0.8` (or lora = [...] in [axes]): each value is
`FILE[:SCALE]` like --lora, `none` is the base model; one model load per value, its images made together
(file names ..._LORA-a.png, ..._LORA-b-0.8.png). With a lora_scale axis too, every file runs at every scale
(the files then take no :SCALE, and `none` is scale 0's job).

Image-to-image: `image` (and `mask`, `resize`) fixed for the grid, `strength` an axis like any number
(`--vary strength="0.2-1 [5]"`, file names ..._S0.6.png); several images are an axis too (IMG1, IMG2...).

ControlNet (with --controlnet FILE): `control_image` fixed or an axis (CTL1, CTL2...), `control_scale` an axis like
any number (`--vary control_scale="0-1.5 [4]"`, file names ..._CS0.5.png), `control_type` fixed.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
from pathlib import Path
from typing import Any

from .. import defaults, geometry
from ..errors import InvalidParams
from ..params import GenerationParams, parse_seed
from .plan import Experiment, make_item

# key -> the name used in file names
KEYS = {
    "prompt": "P", "negative_prompt": "N", "steps": "STEP", "guidance": "G", "seed": "SEED",
    "size": "", "width": "W", "height": "H", "aspect": "AR", "megapixels": "MP", "quant": "", "rng": "RNG",
    "strength": "S", "image": "IMG", "lora_scale": "L", "lora": "LORA-", "control_image": "CTL", "control_scale": "CS",
}
FIXED_ONLY = ("mask", "resize", "control_type")  # fixed settings of a grid, never an axis
ALIASES = {"cfg": "guidance", "cfg_scale": "guidance", "negative": "negative_prompt", "negative-prompt": "negative_prompt",
           "seeds": "seed", "step": "steps", "ar": "aspect", "mp": "megapixels", "precision": "quant",
           "images": "image", "lora-scale": "lora_scale", "loras": "lora", "control": "control_image",
           "control-scale": "control_scale", "control-type": "control_type"}
NUMERIC = {"steps": int, "seed": int, "width": int, "height": int, "guidance": float, "megapixels": float,
           "strength": float, "lora_scale": float, "control_scale": float}

# A1111's X/Y/Z plot range syntax (modules/scripts/xyz_grid.py), written out here because it ships in no
# package: "a-b", "a-b (+s)", "a-b [n]".
_NUM = r"[+-]?\s*\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"
_RANGE_STEP = re.compile(rf"^\s*({_NUM})\s*-\s*({_NUM})\s*(?:\(\s*({_NUM})\s*\))?\s*$")
_RANGE_COUNT = re.compile(rf"^\s*({_NUM})\s*-\s*({_NUM})\s*\[\s*(\d+)\s*\]\s*$")
_SAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def canonical_key(key: str) -> str:
    key = key.strip().lower().replace(" ", "_")
    key = ALIASES.get(key, key)
    if key in FIXED_ONLY:
        raise InvalidParams(f"{key} is fixed for a whole grid, not an axis: give --{key.replace('_', '-')}"
                            f"{' MASK' if key == 'mask' else ''} (or {key} = ... under [params] in a file)")
    if key not in KEYS:
        raise InvalidParams(f"cannot vary {key!r}: choose from {', '.join(KEYS)}")
    return key


def _num(text: str, kind: type) -> int | float:
    text = text.replace(" ", "")
    value = float(text)
    if kind is int:
        if not value.is_integer():
            raise InvalidParams(f"{text} is not a whole number")
        return int(value)
    return value


def expand_range(text: str, kind: type) -> list[int | float] | None:
    """'1-15 (+2)' -> [1, 3, ..., 15]; '0-1 [5]' -> [0, .25, .5, .75, 1]; None when `text` is no range."""
    m = _RANGE_COUNT.match(text)
    if m:
        start, end, count = _num(m.group(1), float), _num(m.group(2), float), int(m.group(3))
        if count < 1:
            raise InvalidParams(f"range {text!r}: the count in [ ] must be at least 1")
        if count == 1:
            values = [start]
        else:
            values = [start + (end - start) * k / (count - 1) for k in range(count)]
        return [int(round(v)) for v in values] if kind is int else [round(v, 10) for v in values]
    m = _RANGE_STEP.match(text)
    if not m or re.fullmatch(rf"\s*{_NUM}\s*", text):
        return None
    start, end = _num(m.group(1), kind), _num(m.group(2), kind)
    step = _num(m.group(3), kind) if m.group(3) else (1 if end >= start else -1)
    if step == 0 or (end - start) * step < 0:
        raise InvalidParams(f"range {text!r}: the step {step} never reaches {end} from {start}")
    count = int((end - start) / step + 1e-9) + 1
    values = [start + k * step for k in range(count)]
    return [int(v) for v in values] if kind is int else [round(v, 10) for v in values]


def _one(key: str, raw: Any) -> Any:
    """One value of `key`, checked, in the form stored in the plan."""
    try:
        if key in ("steps", "width", "height"):
            if isinstance(raw, bool):
                raise ValueError
            return _num(str(raw), int)
        if key == "seed":
            return parse_seed(raw if not isinstance(raw, str) else raw.strip())
        if key in ("guidance", "megapixels", "strength", "lora_scale", "control_scale"):
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
            if key == "lora_scale" and not math.isfinite(value):
                raise ValueError
            if key == "strength" and not 0 < value <= 1:  # GenerationParams' rule, said here once per bad value
                raise InvalidParams(f"strength {value:g} is outside (0, 1]: 1 repaints fully, smaller keeps more of "
                                    "the input image (e.g. --vary strength=\"0.2-1 [5]\")")
            if key == "control_scale" and not 0 <= value <= defaults.CONTROL_SCALE_MAX:
                raise InvalidParams(f"control scale {value:g} is outside 0..{defaults.CONTROL_SCALE_MAX:g} "
                                    "(e.g. --vary control_scale=\"0-1.5 [4]\")")
            return value
    except InvalidParams:
        raise
    except (ValueError, TypeError):
        raise InvalidParams(f"{key} value {raw!r} is not a number") from None
    if not isinstance(raw, str):
        raise InvalidParams(f"{key} value {raw!r} must be text")
    if key == "size":
        w, h = geometry.parse_size(raw)
        return f"{w}x{h}"
    if key == "aspect":
        geometry.parse_aspect(raw)
        return raw.strip()
    if key == "quant":  # the FP8 tiers too: bf16 weights with FP8 GEMMs, as in `sweep quant --quants`
        if raw.strip() not in defaults.SWEEP_QUANT_CHOICES:
            raise InvalidParams(f"quant {raw!r} is not one of {', '.join(defaults.SWEEP_QUANT_CHOICES)}")
        return raw.strip()
    if key == "lora":
        lora_value(raw)  # checked now: a missing or pickled file is refused before anything runs
        return raw.strip()
    if key == "rng" and raw.strip() not in ("cuda", "cpu"):
        raise InvalidParams(f"rng {raw!r} must be cuda or cpu")
    return raw.strip() if key == "rng" else raw


NO_LORA = "none"


def lora_value(text: str) -> tuple[str, float, bool] | None:
    """A lora axis value: `none` -> None; `FILE[:SCALE]` -> (FILE, SCALE, whether a scale was typed)."""
    from .. import lora

    text = text.strip()
    if text.lower() == NO_LORA:
        return None
    path, scale = lora.parse_arg(text)
    lora.check_file(path)
    return path, scale, path != text


def _lora_label(text: str) -> str:
    value = lora_value(text)
    if value is None:
        return NO_LORA
    path, scale, typed = value
    return Path(path).stem + (f"@{scale:g}" if typed else "")


def _check_lora_axis(values: list[str]) -> None:
    """Two values that are one file at one scale, or whose file names would collide, are refused."""
    seen: dict[Any, str] = {}
    labels: dict[str, str] = {}
    for text in values:
        value = lora_value(text)
        same = None if value is None else (os.path.realpath(value[0]), value[1])
        if same in seen:
            raise InvalidParams(f"lora values {seen[same]!r} and {text!r} are the same file at the same scale: "
                                "give each once")
        seen[same] = text
        label = _SAFE.sub("-", KEYS["lora"] + _lora_label(text))
        if label in labels:
            raise InvalidParams(f"lora values {labels[label]!r} and {text!r} would both be named {label} in the "
                                "image file names: give the LoRA files different names")
        labels[label] = text


def parse_values(key: str, raw: Any) -> list[Any]:
    """An axis's values from a CSV string with ranges (--vary, TOML strings) or a TOML list."""
    key = canonical_key(key)
    if isinstance(raw, str):
        pieces = next(csv.reader([raw], skipinitialspace=True), [])
        values: list[Any] = []
        for piece in pieces:
            kind = NUMERIC.get(key)
            expanded = expand_range(piece, kind) if kind else None
            values.extend(expanded if expanded is not None else [piece])
    elif isinstance(raw, list):
        values = list(raw)
    else:
        values = [raw]
    values = [_one(key, v) for v in values]
    if not values:
        raise InvalidParams(f"--vary {key}= has no values: e.g. --vary {key}=1,2,3")
    seen = set()
    for v in values:
        if v in seen:
            raise InvalidParams(f"{key} value {v!r} is listed twice; each value of an axis must differ")
        seen.add(v)
    if key == "lora":
        _check_lora_axis(values)
    return values


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """'steps=1-15 (+2)' -> ('steps', [1, 3, ..., 15])."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InvalidParams(f"--vary {text!r} is not KEY=V1,V2,... (e.g. --vary steps=4,8 or --vary guidance=\"0-1 [5]\")")
    return canonical_key(key), parse_values(key, raw)


def _label(key: str, value: Any, index: int) -> str:
    if key in ("prompt", "negative_prompt", "image", "control_image"):
        return f"{KEYS[key]}{index + 1}"
    if key == "lora":
        text = _lora_label(value)
    else:
        text = f"{value:g}" if key == "lora_scale" else str(value).replace(":", "x")
    return _SAFE.sub("-", f"{KEYS[key]}{text}")


def _item_lora(text: str | None, lora_scale: float | None) -> tuple[tuple[tuple[str, float], ...] | None, float | None]:
    """(the item's LoRAs, its lora_scale for the one --lora): a lora value sets the LoRAs itself, at the
    lora_scale axis's scale when there is one (checked by _check_lora_with_scale)."""
    if text is None:
        return None, lora_scale
    value = lora_value(text)
    if value is None:
        return (), None
    path, scale, _ = value
    return ((path, scale if lora_scale is None else lora_scale),), None


def _check_lora_with_scale(fixed: dict[str, Any], axes: list[tuple[str, list[Any]]]) -> None:
    """A lora_scale axis scales each LoRA file of a lora axis: a file typed with its own :SCALE, or `none`
    (no LoRA to scale), would make that axis meaningless there."""
    given = {**{k: [v] for k, v in fixed.items()}, **dict(axes)}
    if "lora" not in given or "lora_scale" not in given:
        return
    for text in given["lora"]:
        value = lora_value(text)
        if value is None:
            raise InvalidParams("lora=none with a lora_scale axis: the base model has no scale to vary; drop none "
                                "(lora_scale=0 is the base model, within rounding) or sweep lora alone")
        if value[2]:
            raise InvalidParams(f"lora value {text!r} sets a scale and the lora_scale axis sets others: give "
                                f"{value[0]} without :SCALE")


def _params(values: dict[str, Any], where: str) -> tuple[GenerationParams, str, float | None, tuple | None]:
    values = dict(values)
    quant = values.pop("quant", "bf16")
    # load settings, not params: the one --lora's scale, or the LoRA files themselves
    loras, lora_scale = _item_lora(values.pop("lora", None), values.pop("lora_scale", None))
    size, aspect, mp = values.pop("size", None), values.pop("aspect", None), values.pop("megapixels", None)
    if aspect is not None:
        values["width"], values["height"] = geometry.size_for_aspect(aspect, mp or 1.0)
    elif size is not None:
        values["width"], values["height"] = geometry.parse_size(size)
    elif mp is not None:
        values["width"], values["height"] = geometry.size_for_aspect(1.0, mp)
    if "prompt" not in values:
        raise InvalidParams(f"{where}: no prompt (give --prompt, --prompt-file, or prompt = \"...\" in the file)")
    try:
        return GenerationParams(**values), quant, lora_scale, loras
    except InvalidParams as exc:
        raise InvalidParams(f"{where}: {exc}") from None


def _fixed_only(fixed: dict[str, Any]) -> dict[str, Any]:
    """Pop the inpainting mask, the resize switch and the control type from `fixed`, checked (never axes)."""
    out = {}
    mask = fixed.pop("mask", None)
    if mask is not None:
        if not isinstance(mask, str):
            raise InvalidParams(f"mask {mask!r} must be the path of an image file")
        out["mask"] = mask
    resize = fixed.pop("resize", False)
    if not isinstance(resize, bool):
        raise InvalidParams(f"resize {resize!r} must be true or false")
    if resize:
        out["resize"] = True
    kind = fixed.pop("control_type", None)
    if kind is not None:
        if kind not in defaults.CONTROL_TYPES:
            raise InvalidParams(f"control_type must be one of {', '.join(defaults.CONTROL_TYPES)}, got {kind!r}")
        out["control_type"] = kind
    return out


def build_grid(name: str, prompts: list[str], fixed: dict[str, Any], axes: list[tuple[str, list[Any]]],
               title: str | None = None) -> Experiment:
    """The grid over `axes` (x varies fastest, then y, then z...) with `fixed` params; several prompts
    become one more (outermost) axis."""
    if not _SAFE.sub("", name) or "/" in name or name.startswith("."):
        raise InvalidParams(f"experiment name {name!r} must be a plain folder name, e.g. fox-grid")
    fixed = dict(fixed)
    cap = fixed.pop("max_megapixels", None)  # a limit, not a knob: fixed only
    extra = _fixed_only(fixed)
    gguf = fixed.get("quant") == "gguf" and fixed.pop("quant")  # a --gguf file: fixed only
    fixed = {canonical_key(k): _one(canonical_key(k), v) for k, v in fixed.items()}
    if cap is not None:
        fixed["max_megapixels"] = cap
    fixed.update(extra)
    if gguf:
        fixed["quant"] = "gguf"
    axes = [(canonical_key(k), v) for k, v in axes]
    keys = [k for k, _ in axes]
    if len(set(keys)) != len(keys):
        raise InvalidParams(f"{', '.join(sorted({k for k in keys if keys.count(k) > 1}))} varied twice: give each key once")
    for key in keys:  # a typed value is never silently dropped for an axis's values
        if key in fixed and key != "max_megapixels":
            flag = key.replace("_", "-")
            raise InvalidParams(f"{key} is both fixed ({fixed[key]!r}) and an axis: give either --{flag} (or "
                                f"{key} = ... under [params]) or --vary {key}=... (or [axes])")
    _check_lora_with_scale(fixed, axes)
    if "prompt" not in keys:
        if len(prompts) > 1:
            axes.append(("prompt", list(prompts)))
        elif prompts:
            fixed["prompt"] = prompts[0]
    if "seed" not in fixed and "seed" not in [k for k, _ in axes]:
        fixed["seed"] = defaults.SWEEP_SEED  # a sweep must be reproducible: never a random seed
    items = []
    order = list(reversed(axes))  # product() varies its last factor fastest: make that x
    for combo in itertools.product(*(list(enumerate(v)) for _, v in order)):
        picked = {k: (i, v) for (k, _), (i, v) in zip(order, combo)}
        values = {**fixed, **{k: v for k, (_, v) in picked.items()}}
        labels = [_label(k, *reversed(picked[k])) for k, _ in axes]
        stem = "_".join(labels) or "image"
        params, quant, lora_scale, loras = _params(values, f"{name}/{stem}")
        axes_values = {k: picked[k][1] for k, _ in axes}
        items.append(make_item(name, f"{name}/{stem}.png", params, quant, axes_values, lora_scale=lora_scale,
                               loras=loras))
    knob = ",".join(keys[:3]) if keys else "none"
    axes_title = " x ".join(k for k, _ in axes) or "one image"
    return Experiment(name, title or f"Grid: {axes_title}", knob, "grid", axes, items)


def load_toml(path: str | Path, prompts: list[str] | None = None, fixed: dict[str, Any] | None = None) -> Experiment:
    """An experiment file. Prompts and params given on the command line fill what the file leaves out."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
        import tomli as tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParams(f"experiment file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidParams(f"experiment file {path} is not valid TOML: {exc}") from None
    known = {"name", "title", "prompt", "prompts", "negative_prompt", "params", "axes"}
    unknown = set(data) - known
    if unknown:
        raise InvalidParams(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; the file holds {', '.join(sorted(known))}")
    file_prompts = data.get("prompts") or ([data["prompt"]] if "prompt" in data else [])
    if not isinstance(file_prompts, list) or not all(isinstance(p, str) for p in file_prompts):
        raise InvalidParams(f"{path}: prompts must be a list of strings")
    params = dict(fixed or {})
    table = data.get("params", {})
    if not isinstance(table, dict):
        raise InvalidParams(f"{path}: [params] must be a table of fixed settings")
    params.update(table)
    if "negative_prompt" in data:
        params["negative_prompt"] = data["negative_prompt"]
    axes_table = data.get("axes", {})
    if not isinstance(axes_table, dict):
        raise InvalidParams(f"{path}: [axes] must be a table, e.g. steps = [4, 8]")
    axes = [(canonical_key(k), parse_values(k, v)) for k, v in axes_table.items()]
    return build_grid(str(data.get("name") or path.stem), file_prompts or list(prompts or []), params, axes,
                      data.get("title"))
