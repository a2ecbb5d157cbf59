"""The article's experiments: its values, sizes, seed, prompt and file names."""

import pytest

from zturbo import geometry
from zturbo.errors import InvalidParams
from zturbo.sweep import specs
from zturbo.sweep.plan import Plan, describe


def _by_name(names, **settings):
    return {e.name: e for e in specs.article_experiments(names, specs.ArticleSettings(**settings))}


def test_the_article_plan_has_its_values_sizes_and_file_names():
    exps = _by_name(["all"])
    assert list(exps) == ["steps", "guidance", "seeds", "aspect", "resolution", "quant"]
    steps = exps["steps"].items
    assert [i.params.steps for i in steps] == [1, 3, 6, 9, 12, 15]
    assert steps[3].file == "steps/P183_STEP9_SEED42_720x1280.png"
    assert {(i.params.width, i.params.height, i.params.seed, i.params.guidance) for i in steps} == {(720, 1280, 42, 0.0)}
    guidance = exps["guidance"].items
    assert [i.params.guidance for i in guidance] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert guidance[1].file == "guidance/P183_STEP9_SEED42_720x1280_G0.25.png"
    assert {i.params.steps for i in guidance} == {9}
    seeds = exps["seeds"].items
    assert [i.params.seed for i in seeds] == [0, 7, 42, 123, 777, 2024, 88888, 1234567] * 2
    assert {(i.row, i.params.width, i.params.height) for i in seeds} == {("portrait", 720, 1280), ("landscape", 1280, 720)}
    assert "seeds/SEED42_1280x720.png" in [i.file for i in seeds]
    aspect = exps["aspect"].items
    assert [i.axes["aspect"] for i in aspect] == ["21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21"]
    for item in aspect:
        w, h = item.params.width, item.params.height
        assert (w, h) == geometry.size_for_aspect(item.axes["aspect"], 1.0) and w % 16 == 0 and h % 16 == 0
        assert 0.9 < w * h / 2**20 < 1.1
    res = exps["resolution"].items
    assert [(i.params.width, i.params.height) for i in res if i.row == "landscape"] == [(256 * n, 144 * n) for n in range(3, 9)]
    assert [(i.params.width, i.params.height) for i in res if i.row == "portrait"] == [(144 * n, 256 * n) for n in range(3, 9)]
    assert "resolution/16x9_1280x720.png" in [i.file for i in res]
    assert {i.params.prompt for e in exps.values() for i in e.items} == {specs.ROBOT_PROMPT}
    assert specs.ROBOT_PROMPT.startswith("\nA sleek black helmeted robot") and "'Libel'" in specs.ROBOT_PROMPT


def test_quant_reruns_the_chosen_experiments_sharing_the_bf16_column():
    exps = _by_name(["steps", "quant"])
    assert list(exps) == ["steps", "quant"]
    quant = exps["quant"]
    assert len(quant.items) == 6 * 4
    base_ids = {i.id for i in exps["steps"].items}
    assert {i.id for i in quant.items if i.quant == "bf16"} == base_ids  # shared, not made twice
    assert "quant/q4/steps/P183_STEP9_SEED42_720x1280.png" in [i.file for i in quant.items]
    plan = Plan(list(exps.values()), specs.ROBOT_PROMPT, specs.step_mapping())
    assert len(plan.items) == 6 * 4
    # `quant` alone re-runs the whole suite, as the article does
    alone = _by_name(["quant"])
    assert list(alone) == ["steps", "guidance", "seeds", "aspect", "resolution", "quant"]
    assert len(alone["quant"].items) == 50 * 4


def test_sizes_can_be_scaled_down_while_names_and_values_stay_the_articles():
    exps = _by_name(["seeds", "resolution"], size=(32, 64), ladder_base=(32, 16))
    assert "seeds/SEED42_64x32.png" in [i.file for i in exps["seeds"].items]
    assert "resolution/2x1_256x128.png" in [i.file for i in exps["resolution"].items]
    assert "resolution/1x2_48x96.png" in [i.file for i in exps["resolution"].items]


def test_a_custom_prompt_gets_its_own_file_prefix():
    exps = _by_name(["steps"], prompt="a red fox")
    assert not exps["steps"].items[0].file.startswith("steps/P183_")


def test_step_mapping_states_passes_for_the_installed_and_older_diffusers():
    assert "STEP9 runs 9 passes" in specs.step_mapping("0.42.1")
    assert "STEP9 = 8 passes" in specs.step_mapping("0.35.0")


def test_unknown_experiment_says_what_to_choose():
    with pytest.raises(InvalidParams, match="steps, guidance, seeds, aspect, resolution, quant"):
        specs.article_experiments(["stepz"])


def test_dry_run_text_counts_images_shapes_time_and_disk():
    exps = specs.article_experiments(["all"])
    text = describe(Plan(exps, specs.ROBOT_PROMPT, specs.step_mapping()))
    assert "200 images" in text and "23 distinct shapes" in text
    assert "estimated time" in text and "estimated disk" in text and "passes" in text
    assert "30 s a model load" in text  # the time counts each load: a tiny grid is not "30 s of images"


def test_a_square_size_for_the_seeds_experiment_says_what_to_give():
    import pytest

    from zturbo.errors import InvalidParams
    from zturbo.sweep.specs import ArticleSettings, article_experiments

    with pytest.raises(InvalidParams, match=r"portrait \(64x64\) with landscape \(64x64\).*such as 64x128"):
        article_experiments(["seeds"], ArticleSettings(size=(64, 64)))
