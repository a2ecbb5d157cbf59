"""The sweep folder format: whole lines only, last record wins, merge loses nothing."""

import json

import pytest

from zturbo.errors import InvalidParams
from zturbo.sweep import load_sweep, merge
from zturbo.sweep.manifest import ManifestWriter, read_records, write_plan


def _plan(ids):
    return {"version": 1, "prompt_default": "p", "step_mapping": "", "experiments": [],
            "items": {i: {"experiment": "grid", "file": f"grid/{i}.png"} for i in ids}}


def test_half_written_line_is_fenced_off_and_ignored(tmp_path):
    (tmp_path / "manifest.jsonl").write_bytes(b'{"id": "a", "status": "ok", "finished_at": "1"}\n{"id": "b", "sta')
    with ManifestWriter(tmp_path) as w:
        w.append({"id": "c", "status": "ok", "finished_at": "2"})
    assert [r["id"] for r in read_records(tmp_path / "manifest.jsonl")] == ["a", "c"]


def test_failed_append_leaves_the_file_whole(tmp_path, monkeypatch):
    import errno
    import os

    w = ManifestWriter(tmp_path)
    w.append({"id": "a", "status": "ok", "finished_at": "1"})
    real_write = os.write

    def short_then_full(fd, data):
        real_write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(OSError):
        w.append({"id": "b", "status": "ok", "finished_at": "2"})
    monkeypatch.undo()
    w.close()
    assert (tmp_path / "manifest.jsonl").read_bytes().endswith(b"}\n")
    assert [r["id"] for r in read_records(tmp_path / "manifest.jsonl")] == ["a"]


def test_last_record_wins_across_shards_and_merge_is_idempotent(tmp_path):
    write_plan(tmp_path, _plan(["x", "y", "z"]))
    with ManifestWriter(tmp_path, rank=1) as w:
        w.append({"id": "y", "status": "failed", "finished_at": "2026-01-01T00:00:01"})
        w.append({"id": "z", "status": "ok", "finished_at": "2026-01-01T00:00:02"})
    with ManifestWriter(tmp_path, rank=0) as w:
        w.append({"id": "x", "status": "ok", "finished_at": "2026-01-01T00:00:00"})
        w.append({"id": "y", "status": "ok", "finished_at": "2026-01-01T00:00:03"})
    merge(tmp_path)
    merged = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in merged] == [("x", "ok"), ("y", "ok"), ("z", "ok")]
    first = (tmp_path / "manifest.jsonl").read_bytes()
    merge(tmp_path)
    assert (tmp_path / "manifest.jsonl").read_bytes() == first
    sweep = load_sweep(tmp_path)
    assert sweep.status_counts() == {"ok": 3, "failed": 0, "pending": 0}


def test_load_sweep_on_a_folder_without_a_plan_says_what_to_do(tmp_path):
    with pytest.raises(InvalidParams, match="zturbo sweep"):
        load_sweep(tmp_path)
