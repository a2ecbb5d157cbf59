"""zturbo: run Z-Image-Turbo fast on your own GPU, and find out what every knob does.

The names below load on first use (PEP 562), so `import zturbo.params` or `zturbo.defaults` and
`zturbo --help` never import torch: only touching `zturbo.Engine` (or `zturbo.load`) does.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Engine": "engine", "PromptEncoding": "engine", "Result": "engine",
    "LoadOptions": "loading", "load": "loading",
    "Cancelled": "errors", "CorruptWeights": "errors", "GenerationFailed": "errors", "InvalidParams": "errors",
    "OutOfMemory": "errors", "WeightsNotFound": "errors", "ZTurboError": "errors",
    "read_recipe": "metadata",
    "GenerationParams": "params", "seed_series": "params",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'zturbo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
