import math

import pytest

from zturbo import GenerationParams, InvalidParams, defaults, geometry


def make(**kw):
    base = dict(prompt="p", seed=1, width=64, height=64)
    base.update(kw)
    return GenerationParams(**base)


def test_defaults_are_the_distilled_schedule():
    p = GenerationParams(prompt="x")
    assert (p.steps, p.guidance, p.width, p.height) == (8, 0.0, 1024, 1024)
    assert 0 <= p.seed < 2**32  # a random seed is drawn and recorded


@pytest.mark.parametrize("w,msg", [(1000, "use 992 or 1008"), (1030, "use 1024 or 1040"), (8, "use 16 or 16")])
def test_size_not_multiple_of_16_names_nearest_values(w, msg):
    with pytest.raises(InvalidParams, match=msg):
        make(width=w)


@pytest.mark.parametrize("w,h", [(0, 64), (-16, 64), (64, 0)])
def test_zero_or_negative_size(w, h):
    with pytest.raises(InvalidParams, match="positive"):
        make(width=w, height=h)


def test_pixel_cap_and_raising_it():
    with pytest.raises(InvalidParams, match="--max-megapixels 5"):
        make(width=2304, height=2048)
    assert make(width=2304, height=2048, max_megapixels=5).width == 2304
    assert make(width=2048, height=2048).height == 2048  # exactly 4 MP is allowed


@pytest.mark.parametrize("w,h", [(16, 9216), (8208, 16), (8208, 8208)])
def test_a_side_past_the_models_position_table_is_refused_before_loading(w, h):
    # under the pixel cap, but 9216 px = 576 patches: the RoPE table holds 512 (an IndexError in the model)
    with pytest.raises(InvalidParams, match="8192 px per side"):
        make(width=w, height=h, max_megapixels=100)
    assert make(width=16, height=8192).height == 8192


@pytest.mark.parametrize("steps", [0, -1, 101])
def test_steps_range(steps):
    with pytest.raises(InvalidParams, match=r"1\.\.100"):
        make(steps=steps)


@pytest.mark.parametrize("g", [math.nan, math.inf, -math.inf])
def test_non_finite_guidance(g):
    with pytest.raises(InvalidParams, match="finite"):
        make(guidance=g)


def test_negative_guidance():
    with pytest.raises(InvalidParams, match=">= 0"):
        make(guidance=-0.5)


def test_a_guidance_large_enough_to_overflow_is_refused_and_the_limit_itself_is_taken():
    with pytest.raises(InvalidParams, match="guidance must be <= 30, got 1e\\+308"):
        make(guidance=1e308)
    assert make(guidance=30).guidance == 30.0


def test_the_cli_refuses_an_overflowing_guidance_in_one_line(capsys, tmp_path):
    from zturbo.cli import main

    assert main(["generate", "a fox", "--model", "tiny", "--guidance", "1e308", "--out", str(tmp_path)]) == 2
    assert "guidance must be <= 30" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("seed", [-1, 2**64, "abc", 1.5])
def test_bad_seeds(seed):
    with pytest.raises(InvalidParams, match="seed"):
        make(seed=seed)


def test_seed_extremes_and_strings():
    assert make(seed=0).seed == 0
    assert make(seed=2**64 - 1).seed == 2**64 - 1
    assert make(seed=str(2**60 + 3)).seed == 2**60 + 3  # JSON clients send big seeds as strings


def test_notes_warn_but_never_change_values():
    p = make(guidance=0.5)
    assert any("contrast knob" in n and "doubles the cost" in n for n in p.notes())
    assert p.guidance == 0.5
    q = make(negative_prompt="blurry")
    assert any("only acts with guidance > 0" in n for n in q.notes())
    assert any("unconditional" in n for n in make(prompt="").notes())
    assert make().notes() == []


def test_roundtrip_dict():
    p = make(guidance=0.25, negative_prompt="x", rng="cpu")
    assert GenerationParams.from_dict(p.to_dict() | {"unknown": 1}) == p


def test_rng_choices():
    with pytest.raises(InvalidParams, match="rng"):
        make(rng="tpu")


def test_parse_size_and_aspect():
    assert geometry.parse_size("720x1280") == (720, 1280)
    assert geometry.parse_size(" 1024 X 768 ") == (1024, 768)
    with pytest.raises(InvalidParams, match="WIDTHxHEIGHT"):
        geometry.parse_size("big")
    assert geometry.size_for_aspect("1:1") == (1024, 1024)
    w, h = geometry.size_for_aspect("16:9", 1.0)
    assert (w % 16, h % 16) == (0, 0) and abs(w / h - 16 / 9) < 0.02
    assert abs(w * h / defaults.MEGAPIXEL - 1) < 0.03
    assert geometry.size_for_aspect("9:16") == geometry.size_for_aspect("16:9")[::-1]
    with pytest.raises(InvalidParams):
        geometry.parse_aspect("16:0")
