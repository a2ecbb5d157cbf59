"""Atomic writes give the file the mode a plain open() would (0666 minus the umask), not mkstemp's 0600."""

import os
import stat

import pytest

from zturbo.atomic import write_bytes_atomic, write_text_atomic


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_respects_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        a = write_bytes_atomic(tmp_path / "a.png", b"x")
        b = write_text_atomic(tmp_path / "b.html", "x")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    expected = stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert expected == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(a).st_mode) == expected
    assert stat.S_IMODE(os.stat(b).st_mode) == expected
