"""Request and response shapes (they also make the OpenAPI docs).

Knob fields are typed loosely on purpose: GenerationParams checks them, so the server accepts and
refuses exactly what the CLI does, with the same messages (seeds may be strings above 2^53).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field

from .. import defaults, geometry
from ..errors import InvalidParams
from ..params import GenerationParams

Seed = Optional[Union[int, str]]


class Knobs(BaseModel):
    prompt: str = Field(..., description="what to draw")
    negative_prompt: str = Field("", description="only acts with guidance > 0")
    steps: Any = Field(defaults.STEPS, description=f"transformer passes, {defaults.MIN_STEPS}..{defaults.MAX_STEPS}")
    guidance: Any = Field(defaults.GUIDANCE, description="CFG scale; 0 is Turbo's setting, > 0 doubles the cost")
    seed: Seed = Field(None, description="0..2^64-1, a number or a string; random when left out")
    n: Any = Field(1, description=f"images, seeds S..S+n-1 (1..{defaults.SERVER_MAX_IMAGES})")
    rng: Optional[Literal["cuda", "cpu"]] = Field(None, description="where the starting noise is drawn")
    width: Any = Field(None, description=f"multiple of 16 (default {defaults.WIDTH})")
    height: Any = Field(None, description=f"multiple of 16 (default {defaults.HEIGHT})")


class JobRequest(Knobs):
    size: Optional[str] = Field(None, description="WxH, instead of width and height")


class OpenAIImageRequest(Knobs):
    """POST /v1/images/generations: OpenAI's schema plus zturbo's knobs. Unknown fields (model,
    quality, style, user...) are accepted and ignored, so OpenAI clients work unchanged."""

    size: Optional[str] = Field(None, description=f"WxH or 'auto' (default {defaults.WIDTH}x{defaults.HEIGHT}); "
                                                  "or give width and height")
    response_format: Literal["b64_json", "url"] = Field("b64_json", description="image bytes inline, or a URL")
    model: Optional[str] = Field(None, description="ignored: the server runs the model it loaded")


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(f"{name} must be a whole number, got {value!r}")
    return value


def to_params(req: Knobs, max_megapixels: float) -> tuple[GenerationParams, int]:
    """The request as validated GenerationParams and an image count; InvalidParams otherwise."""
    n = _whole("n", req.n)
    if not 1 <= n <= defaults.SERVER_MAX_IMAGES:
        raise InvalidParams(f"n {n} is outside 1..{defaults.SERVER_MAX_IMAGES} images per request")
    width, height, size = req.width, req.height, req.size
    if size is not None and (width is not None or height is not None):
        raise InvalidParams("give size or width/height, not both")
    if size is not None and size.strip().lower() != "auto":
        width, height = geometry.parse_size(size)
    params = GenerationParams(
        prompt=req.prompt, negative_prompt=req.negative_prompt, steps=req.steps, guidance=req.guidance,
        seed=req.seed, width=defaults.WIDTH if width is None else width,
        height=defaults.HEIGHT if height is None else height, rng=req.rng, max_megapixels=max_megapixels,
    )
    return params, n
