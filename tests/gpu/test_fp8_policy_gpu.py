"""--fp8's calibrated policy against torchao's real FP8 GEMMs (device machine only: pytest -m gpu tests/gpu)."""

import copy

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
                       reason="needs a CUDA GPU with FP8 tensor cores (sm_89+)"),
]


def _engine(**kw):
    from zturbo import Engine

    return Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, **kw)


def _torchao_linear(linear: torch.nn.Linear) -> torch.nn.Module:
    """A copy of `linear` through the same torchao config --fp8 uses (speed/fp8.quantize_fp8)."""
    from zturbo.speed.fp8 import quantize_fp8

    holder = torch.nn.Module()
    holder.layers = torch.nn.ModuleList([torch.nn.Module()])
    holder.layers[0].attention = torch.nn.Module()
    holder.layers[0].attention.to_out = copy.deepcopy(linear)  # a name quantize_fp8 takes as a block GEMM
    assert quantize_fp8(holder) == 1
    return holder.layers[0].attention.to_out


@torch.no_grad()
def test_emulated_error_predicts_torchaos_real_fp8_error():
    from zturbo import GenerationParams, defaults
    from zturbo.speed import fp8_policy as P

    engine = _engine()
    policy = P.calibrate(engine, defaults.FP8_BUDGET)
    inputs = {}
    tr = engine.pipe.transformer
    eligible = {n: m for n, m in tr.named_modules() if P.fp8.is_fp8_linear(m, n)}
    def keep_input(name):
        def hook(mod, args, _out):  # returns None: a forward hook's return value would replace the output
            inputs.setdefault(name, args[0].reshape(-1, mod.in_features)[:512])
        return hook

    hooks = [m.register_forward_hook(keep_input(n)) for n, m in eligible.items()]
    engine.generate(GenerationParams(prompt="a red fox in the snow", seed=3, width=64, height=64, rng="cpu"))
    for h in hooks:
        h.remove()
    real, emu = {}, {}
    for n, m in eligible.items():
        x = inputs[n]
        exact = torch.nn.functional.linear(x.float(), m.weight.float(), None if m.bias is None else m.bias.float())
        y_ao = _torchao_linear(m)(x).float()
        y_emu = P.fp8_linear(x, m.weight, m.bias)
        # the emulation rounds as torchao does: two independent FP8 roundings would differ by ~1.4x FP8's own
        # error; these differ by 0.42x on an H200 (bf16 output rounding and cuBLAS's accumulation order)
        assert (y_ao - y_emu).norm() < 0.6 * (y_ao - exact).norm(), n
        for d, y in ((real, y_ao), (emu, y_emu)):
            acc = d.setdefault(P.unit_of(n), [0.0, 0.0])
            acc[0] += (y - exact).square().sum().item()
            acc[1] += exact.square().sum().item()
    for unit, (e2, r2) in real.items():
        measured = (e2 / r2) ** 0.5
        assert 0.5 < ((emu[unit][0] / emu[unit][1]) ** 0.5) / measured < 2, unit
        # the cached calibration (another prompt, every pass) predicts it within a factor too
        assert 1 / 3 < policy.errors[unit] / measured < 3, unit


def test_kept_gemms_are_really_bf16_after_apply_fast():
    from zturbo import GenerationParams

    engine = _engine(fast="fp8", fp8_budget=0.03)  # below the tiny model's all-FP8 mean: some stay bf16
    on = {f.name: f for f in engine.speed}
    assert on["fp8"].on and "FP8 policy:" in on["fp8"].detail
    policy = engine.fp8_policy
    assert policy is not None and policy.kept and policy.mean_error <= 0.03
    from zturbo.speed.fp8 import is_fp8_linear

    seen = set()
    for n, m in engine.pipe.transformer.named_modules():
        if is_fp8_linear(m, n):
            seen.add(n)
            is_plain = type(m.weight) is torch.nn.Parameter
            assert is_plain == (not policy.is_fp8(n)), n
            if is_plain:
                assert m.weight.dtype == torch.bfloat16
    assert any(n.endswith("to_qkv") for n in seen)  # the policy acted on the fused GEMMs --fast runs
    result = engine.generate(GenerationParams(prompt="a robot", seed=1, width=64, height=64, rng="cpu"))
    assert not result.recipes[0]["nan"]
    assert result.recipes[0]["fp8_policy"]["sha256"] == policy.sha256


def test_memory_autos_fp8_resident_placement_converts_block_by_block():
    """What --memory auto does on a 12-16 GB card with --fp8 (the tiny model always plans "full", so the
    FP8-resident plan is handed to the placement here)."""
    import dataclasses

    from zturbo import GenerationParams
    from zturbo.speed.fp8 import is_fp8_linear
    from zturbo.speed.fp8_policy import place_fp8

    engine = _engine()
    placement = engine.memory
    placement.plan = dataclasses.replace(placement.plan, quant="fp8", text_encoder="stream")
    policy = place_fp8(engine, placement, 0.03)
    assert policy.kept and placement.plan.quant == "fp8" and placement.plan.mode == "full"
    tr = engine.pipe.transformer
    assert all(p.device.type == "cuda" for p in tr.parameters())
    for n, m in tr.named_modules():
        if is_fp8_linear(m, n):
            assert (type(m.weight) is torch.nn.Parameter) == (not policy.is_fp8(n)), n
    result = engine.generate(GenerationParams(prompt="a robot", seed=1, width=64, height=64, rng="cpu"))
    assert not result.recipes[0]["nan"]
