"""zturbo: run Z-Image-Turbo fast on your own GPU, and find out what every knob does."""

from .engine import Engine, PromptEncoding, Result
from .errors import (
    Cancelled,
    CorruptWeights,
    GenerationFailed,
    InvalidParams,
    OutOfMemory,
    WeightsNotFound,
    ZTurboError,
)
from .metadata import read_recipe
from .params import GenerationParams

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "CorruptWeights",
    "Engine",
    "GenerationFailed",
    "GenerationParams",
    "InvalidParams",
    "OutOfMemory",
    "PromptEncoding",
    "Result",
    "WeightsNotFound",
    "ZTurboError",
    "__version__",
    "read_recipe",
]
