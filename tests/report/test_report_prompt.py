"""The report's Prompt box shows the prompts the sweep's images used: a TOML file's `prompts` grid used
to show the article's robot prompt (plan.json's default) above pictures of foxes."""

import json

from zturbo.report import sweepdir

ROBOT = "A sleek black helmeted robot"


def _folder(tmp_path, prompts):
    items = {}
    for i, prompt in enumerate(prompts):
        params = {"prompt": prompt, "seed": 7, "width": 64, "height": 64, "steps": 2, "guidance": 0.0}
        items[f"fox/STEP2_P{i + 1}"] = {"experiment": "fox", "file": f"fox/STEP2_P{i + 1}.png", "params": params,
                                        "quant": "bf16", "axes": {"prompt": prompt}, "row": None}
    plan = {"version": 1, "prompt_default": ROBOT, "step_mapping": "", "items": items,
            "experiments": [{"name": "fox", "title": "Grid", "knob": "prompt", "layout": "grid",
                             "axes": [{"key": "prompt", "values": prompts}], "items": list(items)}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "manifest.jsonl").write_text("")
    return tmp_path


def test_prompt_box_shows_the_prompts_used(tmp_path):
    sweep = sweepdir.load(_folder(tmp_path, ["a red fox", "a blue fox"]))
    assert ROBOT not in sweep.prompt
    assert "a red fox" in sweep.prompt and "a blue fox" in sweep.prompt
    assert sweep.prompt.index("a red fox") < sweep.prompt.index("a blue fox")


def test_one_prompt_is_shown_as_it_is(tmp_path):
    assert sweepdir.load(_folder(tmp_path, ["a red fox"])).prompt == "a red fox"
