"""GenerationParams: one image's knobs, frozen and validated. Errors say what to do."""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
from typing import Any

from . import defaults, geometry
from .errors import InvalidParams

RNG_DEVICES = ("cuda", "cpu")
_INPUT_FIELDS = ("image", "mask", "strength")
_CONTROL_FIELDS = ("control_image", "control_scale", "control_type")


def random_seed() -> int:
    # 32 bits keeps seeds short to type; every value up to 2^64-1 is accepted.
    return secrets.randbits(32)


def parse_seed(value: Any) -> int:
    """Seeds arrive as int or str (JSON clients lose precision above 2^53, so they send strings)."""
    if isinstance(value, bool):
        raise InvalidParams(f"seed must be a whole number, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise InvalidParams(f"seed {value!r} is not a whole number") from None
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidParams(f"seed must be a whole number, got {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise InvalidParams(f"seed must be a whole number, got {value!r}")
    if not 0 <= value <= defaults.MAX_SEED:
        raise InvalidParams(f"seed {value} is outside 0..2^64-1 ({defaults.MAX_SEED})")
    return value


def seed_series(seed: int, count: int) -> list[int]:
    """The seeds of `count` images starting at `seed`: S..S+N-1, never wrapping past 2^64-1.

    The one rule the CLI (-n), the library (Engine.generate(num_images=...)) and the server ("n") share.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidParams(f"number of images must be a whole number of at least 1, got {count!r}")
    seed = parse_seed(seed)
    last = seed + count - 1
    if last > defaults.MAX_SEED:
        raise InvalidParams(
            f"seed {seed} with {count} images would need seeds up to {last}, past the largest seed 2^64-1 "
            f"({defaults.MAX_SEED}); seeds never wrap: start at {defaults.MAX_SEED - count + 1} or lower"
        )
    return list(range(seed, last + 1))


@dataclasses.dataclass(frozen=True)
class GenerationParams:
    prompt: str
    negative_prompt: str = ""
    steps: int = defaults.STEPS
    guidance: float = defaults.GUIDANCE
    seed: int | None = None  # None draws a random seed now; the drawn value is recorded
    width: int | None = None  # None: the input image's width, else defaults.WIDTH
    height: int | None = None
    rng: str | None = None  # where the starting noise is drawn: "cuda" or "cpu"; None = the engine's device
    max_megapixels: float = defaults.MAX_MEGAPIXELS
    # image-to-image / inpainting (diffusers' ZImageImg2ImgPipeline / ZImageInpaintPipeline)
    image: str | None = None  # path of a PNG/JPEG/WebP to start from
    mask: str | None = None  # path of the inpainting mask: white = repaint, black = keep (diffusers' convention)
    strength: float | None = None  # (0, 1]: how far the input is noised; None: 0.6, or 1.0 with a mask
    resize: bool = False  # resize an input whose size is not the output's (never done unless asked)
    # ControlNet (diffusers' ZImageControlNetPipeline / ZImageControlNetInpaintPipeline): needs an engine loaded
    # with a ControlNet (LoadOptions(controlnet=...))
    control_image: str | None = None  # path of the control image (an edge/depth/pose map, or a photo with canny)
    control_scale: float | None = None  # [0, 2]: diffusers' controlnet_conditioning_scale; None: 0.75
    control_type: str | None = None  # "none" (use the image as given) or "canny" (edges computed here); None: none

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InvalidParams(f"prompt must be text, got {type(self.prompt).__name__}")
        if not isinstance(self.negative_prompt, str):
            raise InvalidParams("negative prompt must be text")
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise InvalidParams(f"steps must be a whole number, got {steps!r}")
        if not defaults.MIN_STEPS <= steps <= defaults.MAX_STEPS:
            raise InvalidParams(
                f"steps {steps} is outside {defaults.MIN_STEPS}..{defaults.MAX_STEPS} "
                f"(Turbo is distilled for {defaults.STEPS})"
            )
        try:
            if isinstance(self.guidance, bool):  # True is not 1.0 (JSON's true reaches here from the server)
                raise TypeError
            guidance = float(self.guidance)
        except (TypeError, ValueError):
            raise InvalidParams(f"guidance must be a number, got {self.guidance!r}") from None
        except OverflowError:  # an int too large for a float
            guidance = math.inf
        if not math.isfinite(guidance):
            raise InvalidParams(f"guidance must be a finite number, got {self.guidance!r}")
        if guidance < 0:
            raise InvalidParams(f"guidance must be >= 0, got {guidance:g} (0 is Turbo's setting)")
        if guidance > defaults.GUIDANCE_MAX:
            raise InvalidParams(f"guidance must be <= {defaults.GUIDANCE_MAX:g}, got {guidance:g} (0 is Turbo's setting; "
                                "the article's sweep goes to 1)")
        object.__setattr__(self, "guidance", guidance)
        seed = random_seed() if self.seed is None else parse_seed(self.seed)
        object.__setattr__(self, "seed", seed)
        if self.rng is not None and self.rng not in RNG_DEVICES:
            raise InvalidParams(f"rng must be one of {', '.join(RNG_DEVICES)}, got {self.rng!r}")
        if not (isinstance(self.max_megapixels, (int, float)) and self.max_megapixels > 0):
            raise InvalidParams(f"max megapixels must be positive, got {self.max_megapixels!r}")
        self._check_inputs()
        geometry.check_size(self.width, self.height, self.max_megapixels)

    def _check_inputs(self) -> None:
        """Image, mask, strength, resize and the control image; fills in the output size (the input's unless told
        otherwise)."""
        from . import inputs

        if not isinstance(self.resize, bool):
            raise InvalidParams(f"resize must be true or false, got {self.resize!r}")
        self._check_control()
        if self.image is None:
            for name, value in (("mask", self.mask), ("strength", self.strength)):
                if value is not None:
                    raise InvalidParams(f"{name} acts on an input image: give image too (--image IMG)")
            if self.control_image is None:
                if self.resize:
                    raise InvalidParams("resize acts on an input image: give image too (--image IMG)")
                object.__setattr__(self, "width", defaults.WIDTH if self.width is None else self.width)
                object.__setattr__(self, "height", defaults.HEIGHT if self.height is None else self.height)
                return
            self._take_size(inputs.probe(self.control_image, "control"), "control image", self.control_image)
            return
        info = inputs.probe(self.image, "image")
        object.__setattr__(self, "image", str(self.image))
        if self.mask is not None:
            mask = inputs.probe(self.mask, "mask")
            object.__setattr__(self, "mask", str(self.mask))
            if mask.size != info.size:
                raise InvalidParams(f"mask {self.mask} is {mask.width}x{mask.height} but image {self.image} is "
                                    f"{info.width}x{info.height}: give a mask of the image's size")
        self._take_size(info, "image", self.image)
        if self.control_image is not None:
            if self.mask is None:
                raise InvalidParams("control image with an input image needs a mask: diffusers' ControlNet "
                                    "pipelines do text-to-image or inpainting (--control with --image and --mask), "
                                    "not image-to-image")
            control = inputs.probe(self.control_image, "control")
            if control.size != info.size and not self.resize:
                raise InvalidParams(f"control image {self.control_image} is {control.width}x{control.height} but "
                                    f"image {self.image} is {info.width}x{info.height}: give a control image of "
                                    "the image's size, or pass --resize to resize both to the output's size")
            if self.strength not in (None, 1, 1.0):
                raise InvalidParams(f"strength {self.strength!r} does not apply with a control image: diffusers' "
                                    "ZImageControlNetInpaintPipeline repaints the masked area from pure noise "
                                    "(strength 1); leave strength out")
        strength = self.strength
        if strength is None:
            strength = defaults.INPAINT_STRENGTH if self.mask is not None else defaults.STRENGTH
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
            raise InvalidParams(f"strength must be a number in (0, 1], got {strength!r}")
        if not 0 < strength <= 1:
            raise InvalidParams(f"strength {strength:g} is outside (0, 1]: 1 repaints fully, smaller keeps more of "
                                f"the input (default {defaults.STRENGTH:g}, {defaults.INPAINT_STRENGTH:g} with a mask)")
        object.__setattr__(self, "strength", float(strength))

    def _take_size(self, info, what: str, path: str) -> None:
        """The output size from an input's (image, or control image without one): the input's own, a --size it
        is resized to with --resize, or an error; both sides must be multiples of 16 unless resized."""
        from . import inputs

        if self.resize:
            auto = inputs.nearest_size(*info.size)
            size = (auto[0] if self.width is None else self.width, auto[1] if self.height is None else self.height)
        else:
            size = (info.width if self.width is None else self.width, info.height if self.height is None else self.height)
            if size != info.size:
                raise InvalidParams(
                    f"{what} {path} is {info.width}x{info.height} but the size asked is {size[0]}x{size[1]}: "
                    "the output takes the input's size; leave the size out, or pass --resize to "
                    "resize the input to it")
            m = defaults.SIZE_MULTIPLE
            if info.width % m or info.height % m:
                crop = (geometry.nearest_multiples(info.width)[0], geometry.nearest_multiples(info.height)[0])
                near = inputs.nearest_size(*info.size)
                raise InvalidParams(
                    f"{what} {path} is {info.width}x{info.height}; both sides must be multiples of {m} "
                    f"(VAE 8x × patch 2): crop it to {crop[0]}x{crop[1]}, or pass --resize to "
                    f"resize it to {near[0]}x{near[1]}")
        object.__setattr__(self, "width", size[0])
        object.__setattr__(self, "height", size[1])

    def _check_control(self) -> None:
        """control_scale and control_type act on a control image; filled with their defaults when one is given."""
        if self.control_image is None:
            for name, value in (("control scale", self.control_scale), ("control type", self.control_type)):
                if value is not None:
                    raise InvalidParams(f"{name} acts on a control image: give it too (--control IMG)")
            return
        if not isinstance(self.control_image, (str, os.PathLike)):
            raise InvalidParams(f"control image must be a path to a PNG, JPEG or WebP file, got "
                                f"{type(self.control_image).__name__}")
        object.__setattr__(self, "control_image", os.fspath(self.control_image))
        scale = defaults.CONTROL_SCALE if self.control_scale is None else self.control_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise InvalidParams(f"control scale must be a number in 0..{defaults.CONTROL_SCALE_MAX:g}, got {scale!r}")
        if not 0 <= scale <= defaults.CONTROL_SCALE_MAX:
            raise InvalidParams(f"control scale {scale:g} is outside 0..{defaults.CONTROL_SCALE_MAX:g}: 0 turns the "
                                f"ControlNet off, the model card works in 0.65..1.0 (default {defaults.CONTROL_SCALE:g})")
        object.__setattr__(self, "control_scale", float(scale))
        kind = "none" if self.control_type is None else self.control_type
        if kind not in defaults.CONTROL_TYPES:
            raise InvalidParams(f"control type must be one of {', '.join(defaults.CONTROL_TYPES)}, got {kind!r}")
        object.__setattr__(self, "control_type", kind)

    @property
    def passes(self) -> int:
        """Transformer passes this run makes: `steps`, or with an input image the last part of the schedule
        that `strength` keeps (diffusers' get_timesteps: steps - int(steps - steps * strength))."""
        if self.image is None:
            return self.steps
        return self.steps - int(max(self.steps - min(self.steps * self.strength, self.steps), 0))

    @property
    def mode(self) -> str:
        """'text-to-image', 'image-to-image' or 'inpainting'."""
        return "text-to-image" if self.image is None else "inpainting" if self.mask is not None else "image-to-image"

    @property
    def uses_cfg(self) -> bool:
        """diffusers runs classifier-free guidance (a second, unconditional batch) iff guidance > 0."""
        return self.guidance > 0

    def notes(self) -> list[str]:
        """Warnings a user should see before the run; they never change the params."""
        out = []
        if self.uses_cfg:
            out.append(
                f"guidance {self.guidance:g} > 0: on Turbo guidance is a contrast knob, not a quality "
                "knob (article, Experiment 2), and it doubles the cost of every pass"
            )
        if self.negative_prompt and not self.uses_cfg:
            out.append("the negative prompt only acts with guidance > 0; it is ignored at guidance 0")
        if not self.prompt.strip():
            out.append("empty prompt: an unconditional image")
        return out

    def replace(self, **changes: Any) -> GenerationParams:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; text-to-image leaves out the input-image and control fields (its recipes, manifests and
        resume checks stay exactly what they were before image-to-image existed)."""
        out = dataclasses.asdict(self)
        if self.image is None:
            for name in _INPUT_FIELDS:
                del out[name]
        if self.control_image is None:
            for name in _CONTROL_FIELDS:
                del out[name]
            if self.image is None:
                del out["resize"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParams:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
