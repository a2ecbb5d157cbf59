"""`zturbo report` reads PNGs and a manifest: it must start (and finish) without importing torch."""

import subprocess
import sys


def test_report_runs_without_importing_torch(tiny_sweep, tmp_path):
    code = ("import sys; from zturbo.cli import main; rc = main(['report', sys.argv[1], '-o', sys.argv[2]]); "
            "print('torch' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_sweep), str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False 0"
    assert (tmp_path / "r" / "index.html").is_file()
