"""Request and response shapes (they also make the OpenAPI docs).

Knob fields are typed loosely on purpose: GenerationParams checks them, so the server accepts and
refuses exactly what the CLI does, with the same messages (seeds may be strings above 2^53). What
only JSON can carry (true/false where a number goes, a float seed, a lone surrogate, a misspelt
field) is refused here, before anything is queued.
"""

from __future__ import annotations

import json
import re
import reprlib
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import defaults, geometry
from ..errors import InvalidParams
from ..params import GenerationParams, seed_series

_SURROGATE = re.compile("[\ud800-\udfff]")
_SEED_CHARS = 100  # a seed string longer than this cannot be a seed (2^64-1 has 20 digits)


class Knobs(BaseModel):
    # the native API refuses unknown fields: a typo ("stepz") would otherwise silently get the default
    model_config = ConfigDict(extra="forbid")

    prompt: Any = Field(..., description="what to draw (text)")
    negative_prompt: Any = Field("", description="only acts with guidance > 0")
    steps: Any = Field(defaults.STEPS, description=f"transformer passes, {defaults.MIN_STEPS}..{defaults.MAX_STEPS}")
    guidance: Any = Field(defaults.GUIDANCE, description=f"CFG scale, 0..{defaults.GUIDANCE_MAX:g}; 0 is Turbo's "
                                                         "setting, > 0 doubles the cost")
    seed: Any = Field(None, description="0..2^64-1, a whole number or a string of one; random when left out. "
                                        "With n images the seeds are seed..seed+n-1, never past 2^64-1")
    n: Any = Field(1, description=f"images, seeds S..S+n-1 (1..{defaults.SERVER_MAX_IMAGES})")
    rng: Any = Field(None, description="where the starting noise is drawn: 'cuda' or 'cpu'")
    width: Any = Field(None, description=f"multiple of 16 (default {defaults.WIDTH})")
    height: Any = Field(None, description=f"multiple of 16 (default {defaults.HEIGHT})")
    loras: Any = Field(None, description='LoRAs for this request from the server\'s --lora-dir (GET /api/loras), '
                                         'e.g. [{"name": "style.safetensors", "scale": 0.8}]; scale 1 when left out')


class JobRequest(Knobs):
    size: Optional[str] = Field(None, description="WxH, instead of width and height")
    image: Any = Field(None, description="image-to-image: the name POST /api/uploads returned for the input image")
    mask: Any = Field(None, description="inpainting: the name of an uploaded mask (white = repaint), with image")
    strength: Any = Field(None, description=f"(0, 1], with image: how far the input is noised (default "
                                            f"{defaults.STRENGTH:g}, {defaults.INPAINT_STRENGTH:g} with a mask)")
    resize: Any = Field(False, description="with image: resize an input whose size is not the output's")
    control_image: Any = Field(None, description="ControlNet (serve --controlnet FILE): the name POST /api/uploads "
                                                 "returned for the control image (role 'control')")
    control_scale: Any = Field(None, description=f"0..{defaults.CONTROL_SCALE_MAX:g}, with control_image (default "
                                                 f"{defaults.CONTROL_SCALE:g})")
    control_type: Any = Field(None, description="with control_image: 'none' (as given, the default) or 'canny'")


class OpenAIImageRequest(Knobs):
    """POST /v1/images/generations: OpenAI's schema plus zturbo's knobs. Unknown fields (model,
    quality, style, user...) are accepted and ignored, so OpenAI clients work unchanged."""

    model_config = ConfigDict(extra="ignore")

    size: Optional[str] = Field(None, description=f"WxH or 'auto' (default {defaults.WIDTH}x{defaults.HEIGHT}); "
                                                  "or give width and height")
    response_format: Literal["b64_json", "url"] = Field("b64_json", description="image bytes inline, or a URL")
    model: Optional[str] = Field(None, description="ignored: the server runs the model it loaded")

    @field_validator("n", "response_format", mode="before")
    @classmethod
    def _null_is_the_default(cls, value: Any, info) -> Any:
        # OpenAI's schema allows null for these, meaning the default; its clients send it
        return cls.model_fields[info.field_name].default if value is None else value


class OpenAIEditRequest(OpenAIImageRequest):
    """POST /v1/images/edits' form fields besides the files (OpenAI's plus zturbo's knobs), as typed values."""

    strength: Any = None
    resize: Any = False


_FORM_NUMBERS = {"n": int, "steps": int, "width": int, "height": int, "guidance": float, "strength": float}
_FORM_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def edit_request(fields: dict[str, str]) -> OpenAIEditRequest:
    """The edit's text form fields typed as JSON would carry them (a form sends only text); unknown ones ignored."""
    typed: dict[str, Any] = {}
    for name, value in fields.items():
        _text(name, value)
        kind = _FORM_NUMBERS.get(name)
        if kind is not None and value.strip() != "":
            try:
                typed[name] = kind(value.strip())
            except ValueError:
                what = "a whole number" if kind is int else "a number"
                raise InvalidParams(f"{name} must be {what}, got {reprlib.repr(value)}") from None
        elif name == "loras":  # a form carries text: the JSON list /api/jobs takes
            try:
                typed[name] = json.loads(value)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                raise InvalidParams('loras must be JSON text like [{"name": "style.safetensors", "scale": 0.8}], '
                                    f"got {reprlib.repr(value)}") from None
        elif name == "resize":
            if value.strip().lower() not in _FORM_BOOLS:
                raise InvalidParams(f"resize must be true or false, got {reprlib.repr(value)}")
            typed[name] = _FORM_BOOLS[value.strip().lower()]
        elif kind is None:
            typed[name] = value
    if "prompt" not in typed:
        raise InvalidParams("prompt is missing: send a form field prompt (what the edit should draw)")
    try:
        return OpenAIEditRequest.model_validate(typed)
    except ValidationError as exc:  # only response_format is checked here: the rest by GenerationParams
        e = exc.errors()[0]
        raise InvalidParams(f"{'.'.join(map(str, e['loc']))}: {e['msg']}, got {reprlib.repr(e.get('input'))}") from None


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(f"{name} must be a whole number, got {reprlib.repr(value)}")
    return value


def _text(name: str, value: Any) -> Any:
    # valid JSON ("\ud800"), but not Unicode text: the tokenizer, the PNG and the JSON reply would all fail on it
    bad = _SURROGATE.search(value) if isinstance(value, str) else None
    if bad:
        raise InvalidParams(f"{name} contains an invalid character (lone surrogate U+{ord(bad.group()):04X} "
                            f"at position {bad.start()}): send valid Unicode text")
    return value


def _seed(value: Any) -> Any:
    """JSON's seed: a whole number or a string of one (exact above 2^53). A float may already be rounded,
    and true is not 1: both are refused rather than guessed."""
    if value is None or isinstance(value, str) and len(value) <= _SEED_CHARS:
        return value
    if isinstance(value, str):
        raise InvalidParams(f"seed {reprlib.repr(value)} is {len(value)} characters long: a seed is a whole "
                            f"number in 0..2^64-1 ({defaults.MAX_SEED})")
    return _whole("seed", value)


def to_params(req: Knobs, max_megapixels: float, image: str | None = None,
              mask: str | None = None, control: str | None = None) -> tuple[GenerationParams, int]:
    """The request as validated GenerationParams and an image count; InvalidParams otherwise.
    `image`/`mask`/`control` are paths of stored uploads (the output takes the image's size unless one is given)."""
    _text("prompt", req.prompt)
    _text("negative_prompt", req.negative_prompt)
    n = _whole("n", req.n)
    if not 1 <= n <= defaults.SERVER_MAX_IMAGES:
        raise InvalidParams(f"n {reprlib.repr(n)} is outside 1..{defaults.SERVER_MAX_IMAGES} images per request")
    width, height, size = req.width, req.height, req.size
    if size is not None and (width is not None or height is not None):
        raise InvalidParams("give size or width/height, not both")
    if size is not None and size.strip().lower() != "auto":
        width, height = geometry.parse_size(size)
    try:
        params = GenerationParams(
            prompt=req.prompt, negative_prompt=req.negative_prompt, steps=req.steps, guidance=req.guidance,
            seed=_seed(req.seed), width=width, height=height, rng=req.rng, max_megapixels=max_megapixels,
            image=image, mask=mask, strength=getattr(req, "strength", None), resize=getattr(req, "resize", False),
            control_image=control, control_scale=getattr(req, "control_scale", None),
            control_type=getattr(req, "control_type", None),
        )
    except InvalidParams as exc:
        raise InvalidParams(_for_http(str(exc), image, mask, control)) from None
    seed_series(params.seed, n)  # S..S+n-1 must all be seeds: refused now, never queued
    return params, n


def _for_http(message: str, *paths: str | None) -> str:
    """GenerationParams' words for the CLI, said for HTTP: uploads by their names, not server paths."""
    for path in paths:
        if path is not None:
            message = message.replace(path, f"upload {Path(path).name}")
    return (message.replace("pass --resize", "send resize=true").replace(" (--image IMG)", "")
            .replace(" (--control IMG)", "")
            .replace("--resize", "resize=true"))

