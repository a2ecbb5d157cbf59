"""The image history: one SQLite file in the output folder, so it survives a restart.

The PNGs stay the source of truth (each carries its recipe); the table is an index over them
for paging. One connection shared under a lock: the worker writes, request handlers read.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import InvalidParams

MAX_OFFSET = 2**63 - 1  # SQLite's largest integer: a larger OFFSET is an OverflowError, not an empty page

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,
    created REAL NOT NULL,
    recipe TEXT NOT NULL
)
"""


class History:
    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / defaults.SERVER_HISTORY_DB
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise InvalidParams(f"{self.path} is not a usable history database ({exc}): move it away, "
                                "or serve another --out folder") from None

    def add(self, name: str, job_id: str, recipe: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO images (name, job_id, created, recipe) VALUES (?, ?, ?, ?)",
                (name, job_id, time.time(), json.dumps(recipe, sort_keys=True)),
            )

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, job_id, created, recipe FROM images ORDER BY id DESC LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [
            {"id": r[0], "name": r[1], "job_id": r[2], "created": r[3], "recipe": json.loads(r[4])}
            for r in rows
        ]

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            r = self._db.execute(
                "SELECT id, name, job_id, created, recipe FROM images WHERE name = ?", (name,)
            ).fetchone()
        if r is None:
            return None
        return {"id": r[0], "name": r[1], "job_id": r[2], "created": r[3], "recipe": json.loads(r[4])}

    def close(self) -> None:
        with self._lock:
            self._db.close()
