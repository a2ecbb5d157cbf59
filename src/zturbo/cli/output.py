"""The one overwrite rule of `generate` and `upscale`: an -o file that exists is replaced only with
--overwrite, checked before anything slow (nothing is generated and then thrown away)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidParams

OVERWRITE_HELP = "replace an existing -o file (without it an existing file is an error; folders always get new names)"


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    taken = [str(p) for p in paths if p.exists()]
    if taken and not overwrite:
        names = ", ".join(taken[:3]) + (f" and {len(taken) - 3} more" if len(taken) > 3 else "")
        one = len(taken) == 1
        raise InvalidParams(f"{names} already exist{'s' if one else ''}: pass --overwrite to replace "
                            f"{'it' if one else 'them'}, or give another -o")
