"""Fixtures for the report tests: a tiny sweep folder (report_sweep.py) and its report, made once."""

from pathlib import Path

import pytest

from report_sweep import make_tiny_sweep


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, tiny_engine) -> Path:
    return make_tiny_sweep(tmp_path_factory.mktemp("sweep") / "robot", tiny_engine)


@pytest.fixture(scope="session")
def built_report(tiny_sweep) -> Path:
    from zturbo.report import build_report

    return build_report(tiny_sweep)
