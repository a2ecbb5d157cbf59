"""FP8 GEMMs for the transformer blocks through torchao (dynamic activation, row-wise scales).

Only the big matrices of the 34 transformer blocks (attention q/k/v/out, feed-forward w1/w2/w3:
~98% of the FLOPs) go to FP8. Embedders, norms, the adaLN modulation and the final layer stay bf16:
they are cheap and precision-sensitive (the issue's rule, and torchao's own advice for DiTs).
"""

from __future__ import annotations

import torch

from .. import defaults

BLOCK_LISTS = ("layers", "noise_refiner", "context_refiner")
_FP8_PARTS = (".attention.", ".feed_forward.")


def is_fp8_linear(module: torch.nn.Module, fqn: str) -> bool:
    """True for a block's attention/FFN Linear whose shape FP8 tensor cores take (multiples of 16)."""
    return (
        isinstance(module, torch.nn.Linear)
        and fqn.split(".", 1)[0] in BLOCK_LISTS
        and any(p in f".{fqn}" for p in _FP8_PARTS)
        and module.in_features % 16 == 0
        and module.out_features % 16 == 0
    )


def torchao_available() -> str | None:
    """None if torchao's float8 inference works here, else why not."""
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_  # noqa: F401
    except Exception as exc:  # ImportError, or a torchao built for another torch
        return f"torchao is not usable ({type(exc).__name__}: {str(exc)[:120]}); pip install torchao"
    return None


def quantize_fp8(module: torch.nn.Module, prefix: str = "", policy=None) -> int:
    """Swap the FP8-eligible Linears under `module` (named `prefix` + fqn in the transformer) in place; with a
    `policy` (fp8_policy.Fp8Policy) only those it puts in FP8 (the rest stay bf16)."""
    names = [n for n, m in module.named_modules() if is_fp8_linear(m, prefix + n)
             and (policy is None or policy.is_fp8(prefix + n))]
    if not names:
        return 0
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    wanted = set(names)
    config = Float8DynamicActivationFloat8WeightConfig(
        granularity=PerRow(),
        # an all-zero activation row (padding) would get scale 0 and turn into NaN: floor its max
        activation_value_lb=defaults.FP8_ACTIVATION_AMAX_FLOOR,
        # torchao's default turns on Inductor's coordinate-descent tuning, which took compile
        # past 5 minutes on an H200 (bench/speed_H200.json); the default Inductor settings suffice
        set_inductor_config=False,
    )
    quantize_(module, config, filter_fn=lambda m, fqn: fqn in wanted)
    return len(names)
