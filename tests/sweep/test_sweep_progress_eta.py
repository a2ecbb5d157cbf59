"""The sweep's progress bar never shows a negative ETA, whatever order images finish in."""

import random
from types import SimpleNamespace

import pytest

from zturbo.sweep.runner import _Progress

# costs whose float sum depends on the order: 0.3 + 0.2 + 0.1 = 0.6, 0.1 + 0.2 + 0.3 = 0.6000000000000001
DRIFT = [0.3, 0.2, 0.1]
MANY = DRIFT + [random.Random(k).uniform(0.01, 3.0) for k in range(40)]


@pytest.mark.parametrize("costs", [DRIFT, MANY], ids=["drift", "many"])
def test_eta_is_never_negative_and_the_bar_ends_full(costs):
    items = [SimpleNamespace(cost=c) for c in costs]
    bar = _Progress(items, "sweep", disable=False)
    bar.loaded()
    done_order = items[2::-1] + random.Random(7).sample(items[3:], len(items) - 3)  # not the plan's order
    for n, item in enumerate(done_order, 1):
        bar.finished(item)
        text = str(bar.bar)
        assert "<-" not in text, text  # tqdm writes a negative remaining time as -MM:SS
        assert f"sweep {n}/{len(items)} images" in text
    assert bar.bar.n == bar.bar.total and "100%" in str(bar.bar)
    bar.finished(SimpleNamespace(cost=5.0))  # one more than planned still cannot pass the total
    assert bar.bar.n == bar.bar.total and "<-" not in str(bar.bar)
    bar.close()
