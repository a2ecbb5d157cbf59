"""Ctrl-C during `zturbo sweep`: the summary of what was done, how to resume, exit 130, the manifest whole."""

from zturbo.cli import main
from zturbo.cli import sweep as sweep_cli
from zturbo.sweep import load_sweep

GRID = ["sweep", "--prompt", "a robot", "--vary", "seed=1-6", "--size", "32x32", "--steps", "1",
        "--rng", "cpu", "--model", "tiny", "--device", "cpu", "-q"]


class CtrlCAfter:
    """The tiny engine, with Ctrl-C pressed while it makes image number `n` + 1."""

    def __init__(self, engine, n):
        self._engine, self._left = engine, n

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, params, **kw):
        if self._left == 0:
            raise KeyboardInterrupt
        self._left -= 1
        return self._engine.generate(params, **kw)


def test_ctrl_c_prints_the_summary_and_how_to_resume(tmp_path, tiny_engine, monkeypatch, capsys):
    monkeypatch.setattr(sweep_cli, "load_engine", lambda *a, **k: CtrlCAfter(tiny_engine, 2))
    assert main([*GRID, "--out", str(tmp_path)]) == 130
    out, err = capsys.readouterr()
    [row] = [line.split() for line in out.splitlines() if line.startswith("grid ")]
    assert row[1:5] == ["6", "2", "0", "4"]  # images, ok, failed, pending
    assert "interrupted: 2 of 6 images done" in err and "run the same command again to resume" in err
    assert load_sweep(tmp_path).status_counts() == {"ok": 2, "failed": 0, "pending": 4}

    monkeypatch.undo()
    assert main([*GRID, "--out", str(tmp_path)]) == 0  # the same command finishes the rest
    assert load_sweep(tmp_path).status_counts() == {"ok": 6, "failed": 0, "pending": 0}
