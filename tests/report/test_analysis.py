"""Experiment-level measurements on synthetic frames: the right reference, groups and flags."""

import numpy as np
from PIL import Image

from zturbo.report.analysis import analyze, label
from zturbo.report.sweepdir import Experiment, Item

rng = np.random.default_rng(3)


def frame(a):
    return Image.fromarray(np.asarray(a, dtype=np.uint8))


def item(id_, q="bf16", **axes):
    return Item(id=id_, experiment="x", file=f"{id_}.png", params={"width": 48, "height": 32}, quant=q,
                axes=axes, row=None, status="ok")


def test_quant_frames_are_compared_with_the_bf16_frame_of_their_own_recipe():
    scene = np.full((32, 48, 3), 40)
    scene[4:20, 4:20] = 230
    a, b = frame(scene), frame(rng.integers(0, 256, (32, 48, 3)))
    items = [item("s/A", steps=1), item("q/q8/A", "q8", source="s/A", quant="q8"),
             item("q/q2/A", "q2", source="s/A", quant="q2"),
             item("s/B", steps=3), item("q/q8/B", "q8", source="s/B", quant="q8")]
    images = {"s/A": a, "q/q8/A": a, "q/q2/A": frame(scene[:, ::-1]), "s/B": b, "q/q8/B": b}
    exp = Experiment("quant", "precision", "quant", "quant", [{"key": "quant", "values": ["bf16", "q8", "q2"]}], items)
    res = analyze(exp, images)
    assert res.values["q/q8/B"]["ssim"] > 0.999  # against s/B, not against s/A
    assert res.values["q/q2/A"]["drift"] > 0.2 and res.values["q/q8/A"]["drift"] == 0
    assert res.captions["s/A"] == "reference" and "drift" in res.captions["q/q2/A"]
    assert res.groups["q/q8/B"] == "x: 3 steps"
    assert [label(exp, it) for it in items[:3]] == ["bf16", "Q8", "Q2"]
    assert "Most drift: Q2" in res.summary


def test_resolution_flags_a_duplicated_subject_and_steps_measure_against_the_last():
    tile = rng.integers(0, 256, (32, 32, 3))
    twice = frame(np.concatenate([tile, tile], axis=1))
    single = np.full((32, 64, 3), 128)
    single[8:24, 20:44] = rng.integers(0, 256, (16, 24, 3))
    items = [item("r1", size="64x32"), item("r2", size="64x32")]
    exp = Experiment("resolution", "res", "size", "resolution", [{"key": "size", "values": ["64x32"]}], items)
    res = analyze(exp, {"r1": frame(single), "r2": twice})
    assert "r2" in res.flags and "r1" not in res.flags
    steps = [item(f"s{n}", steps=n) for n in (1, 2, 3)]
    last = frame(rng.integers(0, 256, (32, 48, 3)))
    exp = Experiment("steps", "steps", "steps", "row", [{"key": "steps", "values": [1, 2, 3]}], steps)
    res = analyze(exp, {"s1": frame(rng.integers(0, 256, (32, 48, 3))), "s2": last, "s3": last})
    assert res.values["s2"]["ssim"] == 1.0 and res.values["s1"]["ssim"] < 0.2
    assert "First frame within SSIM 0.95 of it: 2 steps" in res.summary
    assert label(exp, steps[0]) == "1 step"
