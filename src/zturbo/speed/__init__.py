"""--fast: what makes Z-Image-Turbo fast on this GPU, turned on with one call, each step reported.

    apply_fast(pipe)          -> [Feature]  regional compile, FP8 GEMMs, attention backend, compile cache
    convert_gguf(tr, mode)    -> Feature    a GGUF transformer dequantised once into bf16 or FP8 weights
"""

from .fast import Feature, apply_fast
from .gguf_mode import convert_gguf, resolve_gguf_mode

__all__ = ["Feature", "apply_fast", "convert_gguf", "resolve_gguf_mode"]
