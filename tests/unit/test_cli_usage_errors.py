"""argparse's usage errors are one line, like zturbo's own (README: bad input gets one line)."""

import pytest

from zturbo.cli import main


@pytest.mark.parametrize("argv,msg", [
    (["generate", "x", "--rng", "gpu"], "zturbo generate: error: argument --rng: invalid choice: 'gpu'"),
    (["upscale", "fox.png"], "zturbo upscale: error: the following arguments are required: --model"),
    (["nosuch"], "zturbo: error: argument COMMAND: invalid choice: 'nosuch'"),
])
def test_usage_error_is_one_line_pointing_at_help(capsys, argv, msg):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and err.startswith(msg) and err.rstrip().endswith("--help)")
