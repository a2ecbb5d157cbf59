"""The `zturbo` command: one thin module per subcommand, each with add_parser() and run()."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from pathlib import Path

from ..errors import ZTurboError

# subcommand -> module in this package; each module defines HELP, add_arguments(p) and run(args) -> int
COMMANDS = {
    "generate": "generate",
    "bench": "bench",
    "trace": "trace",
    "verify": "verify",
    "inspect": "inspect",
    "sweep": "sweep",
    "report": "report",
    "upscale": "upscale",
    "serve": "serve",
    "doctor": "doctor",
}


class _Parser(argparse.ArgumentParser):
    """A usage error in one line, like zturbo's own errors (the full usage is in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="zturbo",
        description="Run Z-Image-Turbo on your own GPU, and find out what every knob does.",
        epilog="exit status (every command): 0 done, 2 bad input (a refused value or option, a missing input image or folder, "
               "an existing -o file), 1 a failure (weights missing or damaged, out of memory, a failed "
               "generation or write), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"zturbo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f".{module_name}", __name__)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # a mistyped option of a subcommand: point at that subcommand's --help, not zturbo's
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except ZTurboError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left behind", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout was closed early (`zturbo ... | head`): stop quietly, and keep Python's exit flush quiet too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a piped command cut short
    except OSError as exc:
        if exc.filename is None:
            raise
        # an output path that cannot be written (a file where a folder goes, no permission, ...): one line
        name = Path(exc.filename)
        if name.name.startswith(".") and name.name.endswith(".part"):  # an atomic write's .NAME.XXXX.part: NAME
            name = name.with_name(name.name[1:].rsplit(".", 2)[0])
        hint = ": a file stands where a folder is needed" if exc.errno in (errno.EEXIST, errno.ENOTDIR) else ""
        print(f"error: cannot write {name} ({exc.strerror}){hint}; nothing half-written was left behind",
              file=sys.stderr)
        return 1
