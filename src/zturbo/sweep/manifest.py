"""A sweep folder on disk: plan.json, the append-only manifest(s), and reading them back.

    DIR/plan.json               what the sweep makes (written atomically before the first image)
    DIR/manifest.jsonl          one JSON record per finished image, appended after the PNG is on disk
    DIR/manifest.rank<N>.jsonl  the same, per process, when a sweep is sharded (merged into manifest.jsonl)

The last record for an id wins (records are ordered by `finished_at` across files). `load_sweep(DIR)`
is the one reader; the report and the runner both use it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from ..atomic import write_text_atomic
from ..errors import InvalidParams

PLAN_FILE = "plan.json"
MANIFEST_FILE = "manifest.jsonl"
PLAN_VERSION = 1
_SHARD_RE = re.compile(r"^manifest\.rank(\d+)\.jsonl$")


def shard_name(rank: int | None) -> str:
    return MANIFEST_FILE if rank is None else f"manifest.rank{rank}.jsonl"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# -- plan.json -----------------------------------------------------------------------------------
def read_plan(folder: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(folder) / PLAN_FILE
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidParams(f"{path} is damaged ({exc}); delete it and re-run the sweep command") from None
    if plan.get("version") != PLAN_VERSION:
        raise InvalidParams(f"{path} has plan version {plan.get('version')!r}; this zturbo reads {PLAN_VERSION}")
    return plan


def write_plan(folder: str | os.PathLike, plan: dict[str, Any]) -> Path:
    return write_text_atomic(Path(folder) / PLAN_FILE, json.dumps(plan, indent=1, ensure_ascii=False) + "\n")


# -- the manifest ---------------------------------------------------------------------------------
def _parse_lines(data: bytes) -> list[dict[str, Any]]:
    out = []
    for line in data.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: its image is simply redone
        if isinstance(rec, dict) and "id" in rec:
            out.append(rec)
    return out


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every readable record of one manifest file, in file order ([] when there is none)."""
    try:
        return _parse_lines(Path(path).read_bytes())
    except FileNotFoundError:
        return []


def manifest_files(folder: str | os.PathLike) -> list[Path]:
    """manifest.jsonl first, then the rank shards by rank."""
    folder = Path(folder)
    shards = sorted(
        (int(m.group(1)), p) for p in folder.glob("manifest.rank*.jsonl") if (m := _SHARD_RE.match(p.name))
    )
    main = folder / MANIFEST_FILE
    return ([main] if main.exists() else []) + [p for _, p in shards]


def latest_records(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """id -> its last record: ordered by finished_at (stable), so the newest attempt wins."""
    ordered = sorted(records, key=lambda r: r.get("finished_at") or "")
    return {r["id"]: r for r in ordered}


def merged_records(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """id -> last record, over manifest.jsonl and every rank shard."""
    every: list[dict[str, Any]] = []
    for path in manifest_files(folder):
        every.extend(read_records(path))
    return latest_records(every)


class ManifestWriter:
    """Appends one record per line to a manifest file, durably.

    Each record goes out in one write on an O_APPEND descriptor and is fsync'ed; a write that fails
    (a full disk) is cut back off, so the file only ever holds whole lines. A line left half-written by a
    killed process is fenced off with a newline before the first append.
    """

    def __init__(self, folder: str | os.PathLike, rank: int | None = None):
        self.path = Path(folder) / shard_name(rank)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    self._write(b"\n")

    def _write(self, data: bytes) -> None:
        before = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, before)  # never leave half a record behind
            except OSError:
                pass
            raise

    def append(self, record: dict[str, Any]) -> None:
        self._write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge(folder: str | os.PathLike) -> Path:
    """Consolidate manifest.jsonl and the rank shards into manifest.jsonl: one line per id (the last
    record), in plan order. The shards stay (the merged file is a view of them), so a merge can never
    lose a record, and merging twice changes nothing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidParams(f"{folder} is not a sweep folder (no such directory)")
    lock_path = folder / ".merge.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two ranks merging at once write the same thing, one at a time
        records = merged_records(folder)
        plan = read_plan(folder) or {"items": {}}
        order = {item_id: i for i, item_id in enumerate(plan.get("items", {}))}
        ids = sorted(records, key=lambda i: (order.get(i, len(order)), i))
        text = "".join(json.dumps(records[i], ensure_ascii=False, sort_keys=True) + "\n" for i in ids)
        return write_text_atomic(folder / MANIFEST_FILE, text)


def record_is_valid(folder: str | os.PathLike, record: dict[str, Any] | None) -> bool:
    """An ok record whose PNG is still on disk with the recorded sha256."""
    if not record or record.get("status") != "ok" or not record.get("file") or not record.get("sha256"):
        return False
    path = Path(folder) / record["file"]
    try:
        return sha256_of(path) == record["sha256"]
    except OSError:
        return False


@dataclasses.dataclass
class Sweep:
    """A sweep folder read back: the plan and, per item id, its last record (None: not made yet)."""

    folder: Path
    plan: dict[str, Any]
    records: dict[str, dict[str, Any]]

    @property
    def experiments(self) -> list[dict[str, Any]]:
        return self.plan.get("experiments", [])

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return self.plan.get("items", {})

    def record(self, item_id: str) -> dict[str, Any] | None:
        return self.records.get(item_id)

    def image_path(self, item_id: str) -> Path | None:
        rec = self.records.get(item_id)
        if rec and rec.get("status") == "ok" and rec.get("file"):
            return self.folder / rec["file"]
        return None

    def status_counts(self) -> dict[str, int]:
        counts = {"ok": 0, "failed": 0, "pending": 0}
        for item_id in self.items:
            rec = self.records.get(item_id)
            counts[rec["status"] if rec and rec.get("status") in counts else "pending"] += 1
        return counts


def load_sweep(folder: str | os.PathLike) -> Sweep:
    """Read a sweep folder: `sweep.plan` (plan.json) and `sweep.records` (item id -> last record, merged
    over manifest.jsonl and any rank shards). Raises InvalidParams when DIR holds no sweep."""
    folder = Path(folder)
    plan = read_plan(folder)
    if plan is None:
        raise InvalidParams(f"{folder} holds no sweep ({PLAN_FILE} is missing): run `zturbo sweep ... --out {folder}` first")
    return Sweep(folder, plan, merged_records(folder))
