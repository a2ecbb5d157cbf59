"""The choice logic: (free GB, size, precisions on disk, request) -> Plan. Pure arithmetic on
defaults.py's estimates, so these pin the policy, not the hardware."""

import pytest

from zturbo import defaults
from zturbo.errors import InvalidParams
from zturbo.memory import choose, estimate_peak_gb, next_lower, next_option_hint

BF16 = ("bf16",)
ALL = ("bf16", "q8", "q4", "q2")


def test_no_gpu_is_a_noop_with_a_note():
    plan = choose(None)
    assert plan.mode == "full" and plan.peak_gb is None and "no GPU" in plan.reason


@pytest.mark.parametrize("free, available, want", [
    (80, BF16, ("full", "bf16", "gpu", False)),
    (24, BF16, ("full", "bf16", "gpu", True)),  # decode tiled so that the text encoder can stay
    (16, BF16, ("full", "bf16", "stream", True)),  # text encoder streamed, released after use
    (12, BF16, ("group-offload", "bf16", "stream", False)),
    (8, BF16, ("group-offload", "bf16", "stream", False)),
    (12, ALL, ("full", "q8", "stream", False)),  # a Q8 on disk runs resident on a 12 GB card
    (9, ALL, ("full", "q4", "stream", True)),  # on 8 GB the estimates leave Q4 0.1 GB short
    (8, ALL, ("group-offload", "bf16", "stream", False)),
    (3, BF16, ("sequential", "bf16", "sequential", True)),
])
def test_auto_picks_the_fastest_option_that_fits(free, available, want):
    plan = choose(free, 1.0, "auto", None, available)
    assert (plan.mode, plan.quant, plan.text_encoder, plan.vae_tiling) == want
    assert plan.fits and plan.peak_gb + defaults.MEMORY_HEADROOM_GB <= free
    assert plan.mode in plan.reason and f"{free:.1f} GB" in plan.reason


def test_every_budget_from_8_to_80_gb_has_a_plan_that_fits():
    for free in range(8, 81):
        for available in (BF16, ALL):
            assert choose(free - 0.5, 1.0, "auto", None, available).fits, free


def test_auto_never_picks_q2_and_only_quants_on_disk():
    for free in (4, 6, 8, 10, 12, 14):
        assert choose(free, 1.0, "auto", None, ALL).quant != "q2"
        assert choose(free, 1.0, "auto", None, BF16).quant == "bf16"


def test_auto_points_to_a_gguf_download_when_it_would_help():
    plan = choose(12, 1.0, "auto", None, BF16)
    assert "hf download" in plan.reason and defaults.GGUF_FILES["q8"] in plan.reason


def test_larger_images_need_lower_modes_and_tiling():
    small = choose(16, 1.0, "auto", None, BF16)
    large = choose(16, 4.0, "auto", None, BF16)
    modes = defaults.MEMORY_MODES
    assert modes.index(large.mode) > modes.index(small.mode)
    assert choose(8, 4.0, "auto", None, BF16).vae_tiling


def test_explicit_quant_and_mode_are_kept():
    plan = choose(80, 1.0, "auto", "q8", ALL)
    assert (plan.mode, plan.quant) == ("full", "q8")
    plan = choose(80, 1.0, "group-offload", None, ALL)
    assert (plan.mode, plan.quant) == ("group-offload", "bf16")
    plan = choose(6, 1.0, "full", "bf16", BF16)  # the user's word stands, with a warning
    assert plan.mode == "full" and not plan.fits and "may run out of memory" in plan.reason


def test_nothing_fits_says_so_and_what_to_try():
    plan = choose(1.0, 1.0, "auto", None, BF16)
    assert not plan.fits and plan.mode == "sequential" and "smaller image" in plan.reason


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(InvalidParams, match="--memory must be one of"):
        choose(16, memory="half")


def test_estimates_fall_down_the_ladder():
    peaks = [estimate_peak_gb(m, "bf16", te, m != "full", 1.0)
             for m, te in [("full", "gpu"), ("full", "stream"), ("group-offload", "stream"), ("sequential", "sequential")]]
    assert peaks == sorted(peaks, reverse=True)


def test_next_lower_steps_down_once_per_call_with_tiling():
    plan = choose(80, 1.0, "auto", None, BF16)
    seen = [plan.label]
    while (plan := next_lower(plan)) is not None:
        assert plan.vae_tiling
        seen.append(plan.label)
    assert seen[0].startswith("full (bf16)") and seen[-1].startswith("sequential")
    assert len(seen) == len(set(seen))


def test_next_option_hint_names_a_flag():
    assert next_option_hint(choose(80, 1.0, "full", "bf16", BF16)).startswith("--memory")
    bottom = choose(1.0, 1.0, "auto", None, BF16)
    assert "--quant q4" in next_option_hint(bottom)


def test_next_lower_tiles_the_vae_first_when_that_is_enough():
    plan = choose(17.0, 1.0, "auto", None, BF16)  # full, text encoder streamed, untiled decode
    assert (plan.mode, plan.text_encoder, plan.vae_tiling) == ("full", "stream", False)
    lower = next_lower(plan)
    assert (lower.mode, lower.text_encoder, lower.vae_tiling) == ("full", "stream", True)


def test_a_retry_skips_steps_that_cannot_fit():
    # everything resident, forced on a 16 GB card: tiling alone leaves the weights too big
    plan = choose(80, 1.0, "full", "bf16", BF16)
    plan = type(plan)(**{**plan.to_dict(), "budget_gb": 16.0})
    lower = next_lower(plan)
    assert (lower.mode, lower.text_encoder, lower.vae_tiling) == ("full", "stream", True)


@pytest.mark.parametrize("free, available, want", [
    (14, BF16, ("full", "fp8", "stream", False)),  # bf16 would be group-offloaded here
    (12, BF16, ("full", "fp8", "stream", False)),
    (12, ALL, ("full", "fp8", "stream", False)),  # the user's own bf16 weights in FP8 before a Q8 file
    (24, BF16, ("full", "bf16", "gpu", True)),  # bf16 fits resident: --fp8 converts it in place, as before
    (9, BF16, ("group-offload", "bf16", "stream", False)),  # even FP8 does not fit
])
def test_auto_with_fp8_keeps_an_fp8_transformer_resident_on_12_to_16_gb(free, available, want):
    plan = choose(free, 1.0, "auto", None, available, fp8=True)
    assert (plan.mode, plan.quant, plan.text_encoder, plan.vae_tiling) == want
    assert plan.fits and plan.peak_gb + defaults.MEMORY_HEADROOM_GB <= free
    if plan.quant == "fp8":
        assert "FP8 block GEMMs while placing (6.3 GB instead of 12.3 GB bf16" in plan.reason
    # without --fp8 nothing changes
    assert choose(free, 1.0, "auto", None, available).quant != "fp8"


def test_fp8_only_where_auto_picks_and_the_weights_are_bf16():
    assert choose(14, 1.0, "group-offload", None, BF16, fp8=True).quant == "bf16"  # a typed mode is kept
    assert choose(14, 1.0, "auto", "q8", ALL, fp8=True).quant == "q8"  # a typed GGUF is kept
    assert choose(14, 1.0, "auto", "bf16", BF16, fp8=True).quant == "fp8"


def test_fp8_transformer_size_is_the_models_own_count():
    torch = pytest.importorskip("torch")
    from diffusers import ZImageTransformer2DModel

    from zturbo.models import published
    from zturbo.speed.fp8 import is_fp8_linear

    with torch.device("meta"):
        model = ZImageTransformer2DModel.from_config(published.TRANSFORMER)
    gemms = {n: m for n, m in model.named_modules() if is_fp8_linear(m, n)}
    in_fp8 = {id(m.weight) for m in gemms.values()}
    fp8_bytes = sum(m.weight.numel() + 4 * m.out_features for m in gemms.values())
    bf16_bytes = sum(2 * p.numel() for p in model.parameters() if id(p) not in in_fp8)
    assert (fp8_bytes + bf16_bytes) / 1e9 == pytest.approx(defaults.FP8_TRANSFORMER_GB, abs=0.01)
