"""zturbo trace with a ControlNet: the control branch is a stage of its own, read from the running ControlNet."""

import json

from zturbo.cli import main


def test_trace_shows_the_control_branch(tmp_path, capsys, control):
    out = tmp_path / "t"
    assert main(["trace", "x", "--model", "tiny", "--device", "cpu", "--rng", "cpu", "--steps", "2", "--quiet",
                 "--controlnet", "tiny", "--control", str(control), "--control-scale", "0.5", "--out", str(out),
                 "--json"]) == 0
    trace = json.loads(capsys.readouterr().out)
    titles = [s["title"] for s in trace["stages"]]
    assert titles.index("ControlNet branch") == titles.index("Denoising") - 1
    facts = next(s["facts"] for s in trace["stages"] if s["stage"] == "7c")
    assert facts["control image -> VAE latents (ControlNet input)"] == [1, 33, 1, 6, 8]  # 64x48 / 8, 16 + 17 ch
    assert facts["conditioning scale"] == 0.5 and facts["ControlNet runs (one per pass)"] == 2
    assert len(facts["mean |hint| per pass (after the scale)"]) == 2 and facts["hints added at DiT layers"] == [0, 1]
    assert "ControlNet branch" in (out / "trace.html").read_text()


def test_trace_without_a_controlnet_has_no_control_stage(tmp_path, capsys):
    assert main(["trace", "x", "--model", "tiny", "--device", "cpu", "--rng", "cpu", "--steps", "1", "--quiet",
                 "--size", "32x32", "--json"]) == 0
    assert "ControlNet branch" not in capsys.readouterr().out


def test_trace_control_without_controlnet_is_exit_2(capsys, control):
    assert main(["trace", "x", "--model", "tiny", "--control", str(control), "--quiet"]) == 2
    assert "--control needs a ControlNet" in capsys.readouterr().err
