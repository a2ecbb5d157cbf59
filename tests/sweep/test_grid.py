"""Any grid: --vary with A1111 ranges, and TOML experiment files."""

import pytest

from zturbo.errors import InvalidParams
from zturbo.sweep.grid import build_grid, load_toml, parse_vary


@pytest.mark.parametrize("text, expected", [
    ("steps=1-15 (+2)", ("steps", [1, 3, 5, 7, 9, 11, 13, 15])),
    ("steps=10-4 (-3)", ("steps", [10, 7, 4])),
    ("steps=1-3, 8", ("steps", [1, 2, 3, 8])),
    ("guidance=0-1 [5]", ("guidance", [0.0, 0.25, 0.5, 0.75, 1.0])),
    ("cfg=0-1 (+0.5)", ("guidance", [0.0, 0.5, 1.0])),
    ("seed=1,7,42", ("seed", [1, 7, 42])),
    ("size=512x512, 768x512", ("size", ["512x512", "768x512"])),
    ('prompt=a cat, "a dog, sitting"', ("prompt", ["a cat", "a dog, sitting"])),
    ("quant=bf16,q8", ("quant", ["bf16", "q8"])),
])
def test_vary_values_and_a1111_ranges(text, expected):
    assert parse_vary(text) == expected


@pytest.mark.parametrize("text, message", [
    ("steps", "KEY=V1,V2"),
    ("sampler=euler", "cannot vary 'sampler'"),
    ("steps=1.5", "not a whole number"),
    ("steps=4,4", "listed twice"),
    ("steps=1-5 (-1)", "never reaches"),
    ("quant=q3", "not one of"),
    ("size=100", "WIDTHxHEIGHT"),
])
def test_bad_vary_says_what_is_wrong(text, message):
    with pytest.raises(InvalidParams, match=message):
        parse_vary(text)


def test_grid_varies_x_fastest_and_names_files_by_their_axes():
    exp = build_grid("fox", ["a red fox"], {"size": "64x64"}, [parse_vary("steps=1-2"), parse_vary("guidance=0,1")])
    assert [(i.params.steps, i.params.guidance) for i in exp.items] == [(1, 0.0), (2, 0.0), (1, 1.0), (2, 1.0)]
    assert exp.items[1].file == "fox/STEP2_G0.0.png"
    assert {i.params.seed for i in exp.items} == {42}  # never a random seed in a sweep
    assert exp.axes == [("steps", [1, 2]), ("guidance", [0.0, 1.0])]


def test_a_size_that_breaks_the_16_grid_is_refused_at_plan_time():
    with pytest.raises(InvalidParams, match="multiple of 16"):
        build_grid("g", ["x"], {}, [parse_vary("size=64x64,100x64")])


def test_toml_file_with_prompts_params_and_ordered_axes(tmp_path):
    f = tmp_path / "fox.toml"
    f.write_text('''
title = "Fox"
prompts = ["a red fox", "a blue fox"]
[params]
seed = 7
size = "32x32"
quant = "q8"
[axes]
guidance = "0-1 [2]"
steps = [2, 4]
''')
    exp = load_toml(f)
    assert exp.name == "fox" and exp.title == "Fox"
    assert [k for k, _ in exp.axes] == ["guidance", "steps", "prompt"]
    assert len(exp.items) == 2 * 2 * 2
    assert {i.quant for i in exp.items} == {"q8"}
    assert exp.items[-1].file == "fox/G1.0_STEP4_P2.png" and exp.items[-1].params.prompt == "a blue fox"


def test_toml_errors_name_the_file_and_the_problem(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("prompt = 'x'\n[axes]\nsteps = [1, 2]\nwhatever = 3\n")
    with pytest.raises(InvalidParams, match="cannot vary 'whatever'"):
        load_toml(f)
    f.write_text("prompt = 'x\n")
    with pytest.raises(InvalidParams, match="not valid TOML"):
        load_toml(f)
    with pytest.raises(InvalidParams, match="does not exist"):
        load_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("key,fixed,axis", [("steps", 4, "1,2"), ("seed", 7, "1-3"), ("guidance", 0.5, "0,1")])
def test_a_typed_value_and_an_axis_of_the_same_key_is_an_error_not_a_silent_override(key, fixed, axis):
    from zturbo.errors import InvalidParams

    with pytest.raises(InvalidParams, match=f"{key} is both fixed .* and an axis: give either --{key}"):
        build_grid("g", ["a fox"], {key: fixed, "size": "32x32"}, [parse_vary(f"{key}={axis}")])
