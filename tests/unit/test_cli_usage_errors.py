"""argparse's usage errors are one line, like zturbo's own (README: bad input gets one line), and point
at the --help of the command that was typed."""

import pytest

from zturbo.cli import main


@pytest.mark.parametrize("argv,msg", [
    (["generate", "x", "--rng", "gpu"], "zturbo generate: error: argument --rng: invalid choice: 'gpu'"),
    (["upscale", "fox.png"], "zturbo upscale: error: the following arguments are required: --model"),
    (["generate", "x", "--stesp", "3"], "zturbo generate: error: unrecognized arguments: --stesp 3"),
    (["doctor", "--jsno"], "zturbo doctor: error: unrecognized arguments: --jsno"),
    (["nosuch"], "zturbo: error: argument COMMAND: invalid choice: 'nosuch'"),
    (["--bogus"], "zturbo: error: unrecognized arguments: --bogus"),
])
def test_usage_error_is_one_line_pointing_at_help(capsys, argv, msg):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    prog = msg.split(": error:")[0]
    assert err.count("\n") == 1 and err.startswith(msg) and err.rstrip().endswith(f"(see {prog} --help)")
