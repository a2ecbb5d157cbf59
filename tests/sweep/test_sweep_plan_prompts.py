"""plan.json records the prompts a sweep's images actually use, also when an experiment file names them."""

import json

from zturbo.cli import main

TINY = ["--model", "tiny", "--device", "cpu", "-q"]


def _toml(path, head):
    path.write_text(head + '\n[params]\nsize = "32x32"\nsteps = 1\nrng = "cpu"\n[axes]\nseed = [1]\n')
    return path


def test_a_toml_files_prompts_are_recorded_not_the_articles(tmp_path):
    owl = _toml(tmp_path / "owl.toml", 'prompt = "a green owl"')
    assert main(["sweep", "--file", str(owl), "--out", str(tmp_path / "a"), *TINY]) == 0
    plan = json.loads((tmp_path / "a" / "plan.json").read_text())
    assert plan["prompt_default"] == "a green owl" and plan["prompts"] == ["a green owl"]

    foxes = _toml(tmp_path / "fox.toml", 'prompts = ["a red fox", "a blue fox"]')
    assert main(["sweep", "--file", str(foxes), "--out", str(tmp_path / "b"), *TINY]) == 0
    plan = json.loads((tmp_path / "b" / "plan.json").read_text())
    assert plan["prompt_default"] == "a red fox" and plan["prompts"] == ["a red fox", "a blue fox"]
    assert "robot" not in json.dumps(plan)
