"""One load recipe: LoadOptions says what to load and how; load(options) -> Engine does it.

Every command builds a LoadOptions from its arguments (cli/common.load_options) and the library takes
the same object (`zturbo.load(LoadOptions(quant="q8"))`, or `Engine.load(quant="q8")` for short). The
body of load() reads top to bottom in numbered steps:

  1. device        resolve "cuda" / "cuda:1" / "cpu" / None (the GPU if there is one)
  2. memory plan   free memory (capped by --vram-budget) x precisions on disk -> a Plan (memory/plan.py)
  3. pipeline      weights from the hub cache, a folder, a GGUF file or the tiny model (models/loader.py)
  4. LoRAs         --lora files merged into the transformer's weights (lora.py), before placement and
                   before --fast rewrites, compiles or quantises them; a GGUF transformer keeps them unfused
  5. ControlNet    --controlnet FILE: a Fun-Controlnet-Union file read with diffusers' single-file loader and
                   a config shipped in the package (controlnet.py); it shares the transformer's embedders
  6. placement     the plan carried out by diffusers' offloading; one step lower if placing runs out
  7. speed         --fast / --gguf-mode features (speed/), each one listed in engine.speed

This module is light to import (no torch until load() runs), so that a command can validate its
options before paying for torch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from . import defaults
from .errors import InvalidParams

log = logging.getLogger("zturbo")

# float dtypes a user may ask for (torch.<name>); fp16 is refused: this model makes NaN / black images in it
DTYPES = ("bfloat16", "float32")

GGUF_SPEED_WITH_LORA = ("a LoRA on a GGUF transformer stays unfused (diffusers cannot merge it into quantised weights), "
                        "and --fast / --gguf-mode bf16|fp8 rewrite the weights it wraps: drop --fast / --gguf-mode, "
                        "or use --quant bf16")


def parse_fp8_budget(value) -> float | str:
    """A --fp8-budget value: a positive finite number, or "all" (every block GEMM FP8, no calibration)."""
    number = value
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return "all"
        try:
            number = float(value)
        except ValueError:
            pass
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not (0 < number < float("inf")):
        raise InvalidParams(f"--fp8-budget must be a positive number (the mean relative FP8 error allowed, e.g. "
                            f"{defaults.FP8_BUDGET:g} = {defaults.FP8_BUDGET:.0%}) or 'all' (every block GEMM in FP8, "
                            f"uncalibrated), got {value!r}")
    return float(number)


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """What to load and how. Frozen and validated: a bad value fails here, before anything loads."""

    model: str = defaults.MODEL_ID  # hub id, local diffusers folder, or "tiny"
    quant: str | None = None  # bf16 | q8 | q4 | q2; None: bf16, or under memory auto a GGUF already on disk
    gguf: str | None = None  # a local GGUF transformer file (overrides quant)
    device: str | None = None  # torch device; None: the GPU if there is one
    dtype: str | None = None  # compute dtype name (bfloat16 | float32); None: bf16, float32 for the tiny model
    memory: str = "auto"  # auto | full | model-offload | group-offload | sequential
    vram_budget_gb: float | None = None  # use at most this much GPU memory (caps torch's allocator)
    fast: str | None = None  # None | "lossless" (compile, fused blocks, graphs, attention) | "fp8" (+ FP8 GEMMs)
    gguf_mode: str | None = None  # ondemand | bf16 | fp8 | auto: how a GGUF transformer computes
    loras: tuple = ()  # ((path.safetensors, scale), ...): LoRAs merged into the transformer, in any order
    # False: keep the LoRAs as adapters beside the weights (what a GGUF transformer and the server's per-request
    # LoRAs run); each pass adds their low-rank matmuls. `generate --from` uses it to reproduce such an image
    # bit for bit (a merge rounds the weights differently)
    fuse_loras: bool = True
    fp8_budget: float | str | None = None  # with fast="fp8": mean FP8 error allowed (None: the default), or "all"
    controlnet: str | None = None  # a Fun-Controlnet-Union .safetensors file ("tiny" with the tiny model)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("model", str(self.model or defaults.MODEL_ID))
        if self.gguf is not None:
            set_("gguf", os.fspath(self.gguf))
        if self.quant is not None and self.quant not in defaults.QUANTS:
            raise InvalidParams(f"quant must be one of {', '.join(defaults.QUANTS)}, got {self.quant!r}")
        if self.memory not in defaults.MEMORY_CHOICES:
            raise InvalidParams(f"memory must be one of {', '.join(defaults.MEMORY_CHOICES)}, got {self.memory!r}")
        if self.gguf_mode is not None and self.gguf_mode not in defaults.GGUF_MODES:
            raise InvalidParams(f"gguf mode must be one of {', '.join(defaults.GGUF_MODES)}, got {self.gguf_mode!r}")
        if self.fast is True or self.fast is False:  # Engine.load(fast=True): the lossless tier
            set_("fast", "lossless" if self.fast else None)
        if self.fast is not None and self.fast not in defaults.FAST_TIERS:
            raise InvalidParams(f"fast must be one of {', '.join(defaults.FAST_TIERS)} (or None), got {self.fast!r}")
        if self.fp8_budget is not None:
            if self.fast != "fp8":
                raise InvalidParams("--fp8-budget goes with --fp8 (it says how much FP8 error the calibrated "
                                    "policy may keep): add --fp8, or drop --fp8-budget")
            set_("fp8_budget", parse_fp8_budget(self.fp8_budget))
        budget = self.vram_budget_gb
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                                   or not budget > 0 or budget == float("inf")):
            raise InvalidParams(f"--vram-budget must be a positive number of GB, got {budget!r}")
        if self.dtype is not None:
            name = str(self.dtype).removeprefix("torch.")  # a torch.dtype or its name
            if name not in DTYPES:
                raise InvalidParams(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}"
                                    + (" (float16 gives NaN / black images with this model)" if "16" in name else ""))
            set_("dtype", name)
        from .lora import normalize

        set_("loras", normalize(self.loras))
        if self.controlnet is not None:
            from .controlnet import check_file

            set_("controlnet", os.fspath(self.controlnet))
            check_file(self.controlnet)
            if self.controlnet == defaults.TINY_MODEL and not self.is_tiny:
                raise InvalidParams("--controlnet tiny is the tiny model's ControlNet: give --model tiny too, or a "
                                    "Fun-Controlnet-Union .safetensors file")
        if self.loras and (self.gguf or self.quant in defaults.GGUF_FILES) and self.speeds_up_gguf:
            raise InvalidParams(GGUF_SPEED_WITH_LORA)
        if self.loras and not self.fuse_loras and self.fast:
            raise InvalidParams("--unfused-loras cannot run with --fast, which rewrites and compiles the layers the "
                                "adapters wrap: drop one of them (--fast merges the LoRAs)")

    @property
    def speeds_up_gguf(self) -> bool:
        """--fast or --gguf-mode would rewrite a GGUF transformer's weights (which a LoRA's adapters wrap)."""
        return bool(self.fast) or self.gguf_mode not in (None, "ondemand")

    @property
    def is_tiny(self) -> bool:
        return self.model == defaults.TINY_MODEL

    def with_quant(self, quant: str) -> LoadOptions:
        """The same options for another precision ("gguf": this options' --gguf file), as a sweep loads them."""
        if quant == "gguf":
            return dataclasses.replace(self, quant=None)
        if quant in defaults.SWEEP_FP8_TIERS:  # bf16 weights, FP8 GEMMs: calibrated, or all of them ("fp8-all")
            budget = "all" if quant == "fp8-all" else self.fp8_budget if self.fast == "fp8" else None
            return dataclasses.replace(self, quant="bf16", gguf=None, fast="fp8", fp8_budget=budget)
        return dataclasses.replace(self, quant=quant, gguf=None)

    def describe(self) -> str:
        loras = "".join(f" + LoRA {os.path.basename(p)}:{s:g}" for p, s in self.loras)
        control = f" + ControlNet {os.path.basename(self.controlnet)}" if self.controlnet else ""
        return (self.model + (f" + {self.gguf}" if self.gguf else f" ({self.quant or 'precision: auto'})") + loras
                + control)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load(options: LoadOptions | None = None, **fields: Any):
    """Load the pipeline once and return a ready Engine. `fields` are LoadOptions fields (or changes to
    `options`). `engine.memory.plan.reason` says what memory auto chose; `engine.speed` lists --fast's features."""
    import torch

    from .engine import Engine, quiet_libraries
    from .machine import resolve_device
    from .memory import Placement, cap_allocator, choose, free_gb, next_lower, next_option_hint
    from .memory.probe import available_quants
    from .models.loader import load_pipeline

    options = dataclasses.replace(options, **fields) if options is not None else LoadOptions(**fields)
    quiet_libraries()

    # 1. device
    device = resolve_device(options.device)

    # 2. memory plan: what is free now (a --vram-budget caps torch's allocator for the whole run first)
    if options.vram_budget_gb is not None:
        cap_allocator(device, options.vram_budget_gb)
    budget = free_gb(device, options.vram_budget_gb)
    capped = options.vram_budget_gb is not None
    # a --controlnet file holds bf16 weights, read in the compute dtype (float32: twice the bytes)
    controlnet_gb = 0.0
    if options.controlnet and not options.is_tiny:
        controlnet_gb = os.path.getsize(options.controlnet) / 1e9 * (2 if options.dtype == "float32" else 1)
    if budget is not None and options.is_tiny:
        from .memory import tiny_plan

        plan = tiny_plan(budget, options.memory, options.quant)
    else:
        quant = "gguf" if options.gguf else options.quant
        fp8 = False
        if options.fast == "fp8" and budget is not None and options.dtype in (None, "bfloat16"):
            from .speed.gguf_mode import _fp8_why_not

            fp8 = _fp8_why_not(device) is None  # may place the transformer as FP8 where bf16 does not fit
        plan = choose(budget, defaults.PLAN_MEGAPIXELS, options.memory, quant, available_quants(options.model),
                      capped=capped, fp8=fp8, controlnet_gb=controlnet_gb)

    # 3. pipeline, on the CPU when a GPU is the target (from_pretrained puts weights there anyway), so that
    #    nothing larger than the plan lands on the GPU
    quant = "bf16" if (options.gguf or plan.quant in ("gguf", "fp8")) else plan.quant
    dtype = getattr(torch, options.dtype) if options.dtype else None
    loaded = load_pipeline(model=options.model, quant=quant, gguf=options.gguf,
                           device="cpu" if device.type == "cuda" else device, dtype=dtype)

    # 4. LoRAs, merged into the weights on the CPU before placement, so that offloading and --fast's block
    #    rewrites, compile and FP8 all see plain weights; a GGUF transformer's quantised weights cannot take a
    #    merge, so there the adapters stay unfused (their matmuls run on every pass)
    loras = []
    if options.loras:
        from .lora import apply_loras
        from .speed.gguf_mode import is_gguf

        gguf = is_gguf(loaded.pipe.transformer)
        if gguf and options.speeds_up_gguf:
            raise InvalidParams(GGUF_SPEED_WITH_LORA)
        loras = apply_loras(loaded.pipe, options.loras, fuse=options.fuse_loras and not gguf)

    # 5. ControlNet: read on the CPU like the rest, in the transformer's dtype; placed with it below (its own blocks
    #    only, per memory mode: memory/controlnet.py)
    controlnet = record = None
    if options.controlnet:
        from .controlnet import load_controlnet

        controlnet, record = load_controlnet(options.controlnet, loaded.pipe.transformer,
                                             getattr(torch, loaded.info.dtype))

    # 6. placement: the plan carried out; one step lower if the GPU runs out while placing
    placement = Placement(loaded.pipe, device, plan, options.memory, capped=capped, replan=not options.is_tiny,
                          controlnet=controlnet)
    policy = None
    if plan.quant == "fp8":  # bf16 does not fit resident: calibrate with it streamed, then place it as FP8
        from .speed.fp8_policy import place_fp8

        engine = Engine(loaded, placement, options)
        engine.loras = loras
        policy = place_fp8(engine, placement, options.fp8_budget)
    elif device.type == "cuda" and not placement.try_apply():
        lower = next_lower(placement.plan)
        if lower is None or not placement.try_apply(lower):
            from .errors import OutOfMemory

            raise OutOfMemory(f"out of GPU memory while placing the model in {plan.label}; "
                              f"try {next_option_hint(lower or plan)}, or free GPU memory")
        placement.plan = dataclasses.replace(lower, reason=f"{lower.label}: {plan.label} ran out of memory "
                                                           f"while loading ({plan.reason})")
    log.info("memory: %s", placement.plan.reason)
    if controlnet is not None:
        if device.type != "cuda":  # no placement ran: it goes where the pipeline was loaded
            controlnet.to(device)
        from .memory.controlnet import PLACES

        log.info("ControlNet: %s", PLACES[placement.plan.mode] if placement.on_gpu else f"on the {device.type}")
    if policy is None:
        engine = Engine(loaded, placement, options)
        engine.loras = loras
    if controlnet is not None:
        engine.controlnet, engine.controlnet_record = controlnet, record

    # 7. speed features
    if options.fast or options.gguf_mode:
        from .speed import apply_fast

        offload = placement.plan.mode if placement.on_gpu and placement.plan.mode != "full" else None
        if options.fast == "fp8" and policy is None:  # one bf16 calibration generation (or its cache) first
            from .speed.fp8_policy import for_engine

            policy = for_engine(engine, options.fp8_budget, offload)
        engine.speed = apply_fast(engine.pipe, options.fast, gguf_mode=options.gguf_mode, offload=offload,
                                  fp8_policy=policy, controlnet=engine.controlnet)
        if any(f.name == "fp8" and f.on for f in engine.speed):
            engine.fp8_policy = policy
    return engine
