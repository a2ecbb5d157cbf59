"""An output path that cannot be written is one line naming it, not a traceback."""

import zturbo.atomic as atomic
from zturbo.cli import main

TINY = ["--model", "tiny", "--device", "cpu", "--quiet", "--size", "32x32", "--steps", "1"]


def test_a_file_where_the_output_folder_goes_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "fox.toml"
    blocker.write_text("x")
    assert main(["generate", "x", *TINY, "-o", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: cannot write {blocker} (File exists): a file stands where a folder is needed" in err
    assert blocker.read_text() == "x"


def test_an_atomic_write_that_fails_names_the_target_not_its_temp_file(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "gone"
    target = missing / "x.png"

    def no_folder(target, write):  # the folder vanishes between mkdir and the temp file
        raise FileNotFoundError(2, "No such file or directory", str(missing / ".x.png.abc123.part"))

    monkeypatch.setattr(atomic, "write_with", no_folder)
    assert main(["generate", "x", *TINY, "-o", str(target)]) == 1
    assert f"error: cannot write {target} (No such file or directory)" in capsys.readouterr().err
