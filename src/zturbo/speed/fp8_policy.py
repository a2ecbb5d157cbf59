"""--fp8's calibrated layer policy: which block GEMMs go to FP8, measured on the user's own weights.

FP8 is not equally safe everywhere in this model (published work on Z-Image-Turbo: attention more sensitive
than feed-forward, the last blocks matter most). So before --fp8 quantises anything, one bf16 generation
(fixed prompt, seed and size: defaults.FP8_CALIBRATION_*) runs with a forward hook on every FP8-eligible
Linear. Each hook takes a bounded sample of its input rows and computes, right there, the output torchao's
row-wise FP8 would give (emulated in float32: `fake_fp8`) against the exact one. Nothing is stored but two
sums per layer, so memory stays flat.

The unit of decision is the GEMM --fast runs: q/k/v are one fused matrix (`to_qkv`), w1/w3 one (`w13`);
with row-wise scales the fused product is the same arithmetic as the separate ones, so their errors combine
exactly. Units are ranked by relative error and the most sensitive stay bf16 until the budget holds: the
mean relative error over all units (a bf16 unit counting 0) at most `budget` (defaults.FP8_BUDGET).

The measured errors are cached by the transformer weights' identity (file hashes, LoRAs, dtype) and the
calibration's settings; a budget change re-ranks without re-measuring.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from pathlib import Path

import torch

from .. import defaults
from ..atomic import write_text_atomic
from ..loading import parse_fp8_budget
from ..paths import cache_dir
from . import fp8

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448
_FUSED = {"to_q": "to_qkv", "to_k": "to_qkv", "to_v": "to_qkv", "w1": "w13", "w3": "w13"}


def unit_of(fqn: str) -> str:
    """The GEMM --fast runs for a Linear: layers.3.attention.to_k -> layers.3.attention.to_qkv."""
    head, _, last = fqn.rpartition(".")
    return f"{head}.{_FUSED.get(last, last)}"


# -- the emulation ---------------------------------------------------------------------------------------
def fake_fp8(t: torch.Tensor, amax_floor: float = 0.0) -> torch.Tensor:
    """`t` through torchao's row-wise float8 and back, in float32: one scale per row (absmax / 448, the
    absmax floored at `amax_floor`), values divided by it, clamped, cast to float8_e4m3fn, multiplied back."""
    t = t.float()
    scale = t.abs().amax(dim=-1, keepdim=True).clamp(min=amax_floor) / FP8_MAX
    scale = scale.clamp(min=torch.finfo(torch.float32).tiny)  # an all-zero weight row: 0, not 0/0
    return (t / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8).float() * scale


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """What torchao's dynamic row-wise FP8 Linear computes (activation rows and weight rows scaled on their
    own; torchao floors the activation's absmax), as a float32 matmul."""
    y = fake_fp8(x, defaults.FP8_ACTIVATION_AMAX_FLOOR) @ fake_fp8(weight).T
    return y if bias is None else y + bias.float()


def error_terms(x, weight, bias=None, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(||y_fp8 - y||^2, ||y||^2) for input rows `x`, y being the exact (float32) output of the bf16 layer.
    `chunk` output rows at a time: a float32 copy of a whole 3840x10240 weight would add ~0.5 GB of peak
    memory to a card that holds the bf16 model resident; row-wise scales make the chunks independent."""
    e2 = r2 = 0.0
    for lo in range(0, weight.shape[0], chunk):
        w, b = weight[lo:lo + chunk], None if bias is None else bias[lo:lo + chunk]
        ref = torch.nn.functional.linear(x.float(), w.float(), None if b is None else b.float())
        e2 = e2 + (fp8_linear(x, w, b) - ref).square().sum()
        r2 = r2 + ref.square().sum()
    return e2, r2


# -- the calibration -------------------------------------------------------------------------------------
def calibration_settings(engine) -> dict:
    w, h = defaults.FP8_CALIBRATION_SIZE_TINY if engine.info.is_tiny else defaults.FP8_CALIBRATION_SIZE
    return {"prompt": defaults.FP8_CALIBRATION_PROMPT, "seed": defaults.FP8_CALIBRATION_SEED, "width": w,
            "height": h, "steps": defaults.STEPS, "rows_per_pass": defaults.FP8_CALIBRATION_ROWS, "rng": "cpu"}


@torch.no_grad()
def measure(engine, settings: dict | None = None) -> dict[str, float]:
    """One generation with `engine` (as loaded: bf16, eager) -> {GEMM unit: relative FP8 output error}."""
    from ..params import GenerationParams

    s = settings or calibration_settings(engine)
    rows = s["rows_per_pass"]
    sums: dict[str, list] = {}
    # which rows are sampled: the same on every run. Drawn on the activations' device: indices drawn on the
    # CPU and copied over would make each of the ~1,900 hook calls wait for the GPU (torch's blocking copy
    # from the CPU synchronises the stream), so the GPU would idle while Python launches the next kernels
    picks: dict[torch.device, torch.Generator] = {}

    def hook(name):
        def record(module, args, _out):
            x = args[0].reshape(-1, module.in_features)
            if x.shape[0] > rows:
                pick = picks.get(x.device) or picks.setdefault(x.device, torch.Generator(x.device).manual_seed(0))
                x = x[torch.randperm(x.shape[0], generator=pick, device=x.device)[:rows]]
            e2, r2 = error_terms(x, module.weight, module.bias)
            acc = sums.setdefault(unit_of(name), [0.0, 0.0])
            acc[0], acc[1] = acc[0] + e2, acc[1] + r2  # tensors on the device: no sync per call
        return record

    tr = engine.pipe.transformer
    handles = [m.register_forward_hook(hook(n)) for n, m in tr.named_modules() if fp8.is_fp8_linear(m, n)]
    # text-to-image even with a ControlNet loaded: the policy belongs to the transformer's weights (its cache key)
    controlnet, engine.controlnet = getattr(engine, "controlnet", None), None
    try:
        engine.generate(GenerationParams(prompt=s["prompt"], seed=s["seed"], width=s["width"], height=s["height"],
                                         steps=s["steps"], rng=s["rng"]))
    finally:
        engine.controlnet = controlnet
        for h in handles:
            h.remove()
    return {u: float((e2 / r2).sqrt()) if float(r2) > 0 else 0.0 for u, (e2, r2) in sums.items()}


def choose(errors: dict[str, float], budget: float) -> tuple[str, ...]:
    """The units kept in bf16: the largest errors first, until the mean over all units (kept ones 0) <= budget."""
    order = sorted(errors, key=lambda u: (-errors[u], u))
    n = len(errors)
    for k in range(n + 1):
        if math.fsum(errors[u] for u in order[k:]) <= budget * n:
            return tuple(order[:k])
    return tuple(order)


# -- the weights' identity and the cache ---------------------------------------------------------------
def _files_hash(engine) -> str:
    """sha256 of the transformer's weight files: a hub blob's name is its sha256 (free), else hashed once."""
    from ..hashing import cached_sha256_many
    from ..models.loader import _snapshot

    info = engine.info
    root = Path(info.model) if info.source == "local" else _snapshot(info.model)
    files = sorted((root / "transformer").glob("*.safetensors")) if root else []
    if not files:  # not a diffusers folder we can see: hash the weights themselves (slow, but right)
        from ..models.loader import _state_hash

        return _state_hash(engine.pipe.transformer)
    blobs = {f: f.resolve().name for f in files}
    named = {f: b for f, b in blobs.items() if re.fullmatch("[0-9a-f]{64}", b)}
    rest = [f for f in files if f not in named]
    named.update(zip(rest, cached_sha256_many(rest)))  # a local folder's shards, hashed side by side
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}={named[f]};".encode())
    return h.hexdigest()


def weights_key(engine) -> str:
    """What the measured errors depend on: the transformer's weights (+ merged LoRAs), dtype, the settings."""
    info = engine.info
    ident = {"weights": info.weights_sha256 or _files_hash(engine), "dtype": info.dtype,
             "loras": [(r.get("sha256"), r.get("scale")) for r in engine.loras],
             "calibration": calibration_settings(engine)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def cache_path(key: str) -> Path:
    return cache_dir() / defaults.FP8_POLICY_DIR / f"{key[:32]}.json"


@dataclasses.dataclass(frozen=True)
class Fp8Policy:
    """Which block GEMMs run in FP8. `budget` None: uncalibrated, every one (--fp8-budget all)."""

    budget: float | None
    errors: dict = dataclasses.field(default_factory=dict)  # unit -> relative FP8 error (calibrated)
    weights_key: str | None = None
    path: str | None = None  # the cached calibration
    seconds: float | None = None  # what the calibration took in this process; None: read from the cache
    kept: tuple = ()

    @classmethod
    def calibrated(cls, errors: dict, budget: float, **kw) -> Fp8Policy:
        return cls(budget, dict(errors), kept=choose(errors, budget), **kw)

    def is_fp8(self, fqn: str) -> bool:
        return unit_of(fqn) not in self.kept

    @property
    def mean_error(self) -> float | None:
        if not self.errors:
            return None
        return math.fsum(e for u, e in self.errors.items() if u not in self.kept) / len(self.errors)

    @property
    def sha256(self) -> str:
        body = {"budget": self.budget, "kept_bf16": sorted(self.kept), "weights_key": self.weights_key}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def ranked(self) -> list[tuple[str, float]]:
        return sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0]))

    def summary(self) -> str:
        if self.budget is None:
            return "FP8 policy: every block GEMM in FP8, uncalibrated (--fp8-budget all)"
        n, k = len(self.errors), len(self.kept)
        shown = ", ".join(f"{u} {self.errors[u]:.1%}" for u in self.kept[: defaults.FP8_POLICY_SHOWN])
        top = f" (most sensitive: {shown}{', ...' if k > defaults.FP8_POLICY_SHOWN else ''})" if k else ""
        where = (f"calibrated in {self.seconds:.1f} s, cached {self.path}" if self.seconds is not None
                 else f"cached {self.path}")
        return (f"FP8 policy: {n - k} of {n} block GEMMs FP8, {k} kept bf16{top}; mean relative error "
                f"{self.mean_error:.2%} <= budget {self.budget:.2%} (all FP8: {sum(self.errors.values()) / n:.2%}) "
                f"- {where}")

    def recipe(self) -> dict:
        """What an image's recipe keeps: enough to name the policy and to load it again (--from)."""
        return {"summary": self.summary(), "sha256": self.sha256, "budget": self.budget if self.budget else "all",
                "kept_bf16": list(self.kept), "weights_key": self.weights_key}


def calibrate(engine, budget: float) -> Fp8Policy:
    """The policy for `engine`'s weights at `budget`: the cached calibration, else one measured now."""
    key = weights_key(engine)
    path = cache_path(key)
    try:
        stored = json.loads(path.read_text())
        if stored.get("weights_key") == key:
            return Fp8Policy.calibrated(stored["errors"], budget, weights_key=key, path=str(path))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or unreadable: measure again
    settings = calibration_settings(engine)
    t0 = time.perf_counter()
    errors = measure(engine, settings)
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"weights_key": key, "model": engine.info.model, "device": engine.device_name,
                                        "calibration": settings, "seconds": round(seconds, 2),
                                        "errors": errors}, indent=1))
    return Fp8Policy.calibrated(errors, budget, weights_key=key, path=str(path), seconds=seconds)


def for_engine(engine, budget, offload: str | None = None) -> Fp8Policy | None:
    """The policy --fp8 applies to `engine`, or None where FP8 cannot run (apply_fast says why)."""
    from .fast import fp8_blocker

    if fp8_blocker(engine.pipe, offload) is not None:
        return None
    budget = defaults.FP8_BUDGET if budget is None else parse_fp8_budget(budget)
    if budget == "all":
        return Fp8Policy(None)
    return calibrate(engine, budget)


def require_fp8(options, load):
    """`load()` (an Engine for `options`), or a one-line ZTurboError where its FP8 GEMMs cannot run: a sweep's
    fp8 tiers must never be bf16 images under an FP8 label. Checked before loading where the device says so."""
    from ..errors import ZTurboError
    from ..machine import resolve_device
    from .gguf_mode import _fp8_why_not

    why = _fp8_why_not(resolve_device(options.device))
    if why is None:
        engine = load()
        off = next((f for f in engine.speed if f.name == "fp8" and not f.on), None)
        if off is None:
            return engine
        del engine
        why = off.detail
    raise ZTurboError(f"FP8 GEMMs cannot run here: {why}")


def place_fp8(engine, placement, budget) -> Fp8Policy:
    """--memory auto's FP8-resident plan (a 12-16 GB card: bf16 does not fit resident, FP8 does). The
    calibration runs with the bf16 transformer streamed by group offload; then the transformer goes to the
    GPU block by block, each block fused and its GEMMs put in FP8 as the policy says (one bf16 block in
    flight), and the rest is placed as the plan says."""
    from ..memory.place import apply, reset
    from .fused import fuse_block

    plan, device = placement.plan, placement.device
    placement.apply(dataclasses.replace(plan, mode="group-offload", quant="bf16", text_encoder="stream"))
    budget = defaults.FP8_BUDGET if budget is None else parse_fp8_budget(budget)
    policy = Fp8Policy(None) if budget == "all" else calibrate(engine, budget)
    reset(engine.pipe)  # everything back on the CPU, offload hooks removed
    tr = engine.pipe.transformer
    for name in fp8.BLOCK_LISTS:
        for i, block in enumerate(getattr(tr, name, [])):
            block.to(device)
            fuse_block(block)  # one QKV and one gate+up GEMM, as --fast runs them
            fp8.quantize_fp8(block, prefix=f"{name}.{i}.", policy=policy)
    placement.plan = plan
    apply(engine.pipe, plan, device)  # the embedders, final layer, VAE and text encoder as planned
    return policy
