"""`generate -n N --seed S`: the seeds S..S+N-1 never wrap past 2^64-1."""

from zturbo import defaults
from zturbo.cli import main
from zturbo.metadata import read_recipe

TINY = ["--model", "tiny", "--device", "cpu", "--quiet", "--size", "32x32", "--steps", "1"]


def test_seeds_past_the_largest_are_a_clear_error_and_nothing_is_written(tmp_path, capsys):
    code = main(["generate", "x", "--seed", str(defaults.MAX_SEED - 1), "-n", "3", "-o", str(tmp_path), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "past the largest seed 2^64-1" in err and f"start at {defaults.MAX_SEED - 2} or lower" in err
    assert err.startswith("error: --seed/--num-images: seed ")
    assert list(tmp_path.iterdir()) == []


def test_the_last_seed_itself_is_allowed(tmp_path):
    assert main(["generate", "x", "--seed", str(defaults.MAX_SEED - 1), "-n", "2", "-o", str(tmp_path), *TINY]) == 0
    seeds = sorted(read_recipe(p)["params"]["seed"] for p in tmp_path.glob("*.png"))
    assert seeds == [defaults.MAX_SEED - 1, defaults.MAX_SEED]
