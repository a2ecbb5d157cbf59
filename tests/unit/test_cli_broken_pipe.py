"""`zturbo ... | head` ends quietly: a closed stdout is not a traceback."""

import subprocess
import sys

SCRIPT = """
import zturbo.cli.inspect as cmd
from zturbo.cli import main
def run(args):
    for i in range(200000):
        print("tensor", i)
    return 0
cmd.run = run
raise SystemExit(main(["inspect", "x.gguf"]))
"""


def test_closed_stdout_is_not_a_traceback():
    p = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().startswith(b"tensor")
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert p.returncode != 0
