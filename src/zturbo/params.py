"""GenerationParams: one image's knobs, frozen and validated. Errors say what to do."""

from __future__ import annotations

import dataclasses
import math
import secrets
from typing import Any

from . import defaults, geometry
from .errors import InvalidParams

RNG_DEVICES = ("cuda", "cpu")


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
    width: int = defaults.WIDTH
    height: int = defaults.HEIGHT
    rng: str | None = None  # where the starting noise is drawn: "cuda" or "cpu"; None = the engine's device
    max_megapixels: float = defaults.MAX_MEGAPIXELS

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
        object.__setattr__(self, "guidance", guidance)
        seed = random_seed() if self.seed is None else parse_seed(self.seed)
        object.__setattr__(self, "seed", seed)
        if self.rng is not None and self.rng not in RNG_DEVICES:
            raise InvalidParams(f"rng must be one of {', '.join(RNG_DEVICES)}, got {self.rng!r}")
        if not (isinstance(self.max_megapixels, (int, float)) and self.max_megapixels > 0):
            raise InvalidParams(f"max megapixels must be positive, got {self.max_megapixels!r}")
        geometry.check_size(self.width, self.height, self.max_megapixels)

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
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParams:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
