"""One exception hierarchy. The CLI turns any of these into a one-line message and an exit code.

    ZTurboError                 (exit 1)
    ├── InvalidParams           bad user input: size, steps, seed, guidance... (exit 2)
    ├── WeightsNotFound         weights not on disk and no network to fetch them
    ├── CorruptWeights          a weights file that cannot be read (truncated, wrong format)
    ├── OutOfMemory             the device ran out of memory
    ├── GenerationFailed        anything else that went wrong while generating
    ├── DiskFull                no room left for the output (a sweep stops cleanly; re-run to resume)
    └── Cancelled               stopped by the caller; nothing is written (exit 130)
"""

from __future__ import annotations


class ZTurboError(Exception):
    exit_code = 1


class InvalidParams(ZTurboError, ValueError):
    exit_code = 2


class WeightsNotFound(ZTurboError, FileNotFoundError):
    pass


class CorruptWeights(ZTurboError):
    pass


class OutOfMemory(ZTurboError, MemoryError):
    pass


class GenerationFailed(ZTurboError, RuntimeError):
    pass


class DiskFull(ZTurboError, OSError):
    pass


class Cancelled(ZTurboError):
    """A generation stopped by its caller (server cancel, Ctrl-C); its partial output is dropped."""

    exit_code = 130
