"""The journal: every paid request, recorded before it is sent, so nothing is paid twice or lost.

One SQLite row per create: content hash -> client_ref -> run id -> status -> saved files. A
re-run reads it to resume instead of paying again, and `runs wait` reads it to name outputs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from runflow_bg.errors import RunflowBgError

CREATING = "creating"
SUBMITTED = "submitted"
SUCCEEDED = "succeeded"
FAILED = "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    client_ref    TEXT PRIMARY KEY,
    content_hash  TEXT NOT NULL,
    job           TEXT,
    item          TEXT,
    photo         TEXT,
    scene         TEXT,
    prompt        TEXT,
    out_dir       TEXT,
    name_template TEXT,
    run_id        TEXT,
    status        TEXT NOT NULL,
    outputs       TEXT NOT NULL DEFAULT '[]',
    error         TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_hash ON requests (content_hash, status);
CREATE INDEX IF NOT EXISTS requests_by_item ON requests (job, item);
CREATE INDEX IF NOT EXISTS requests_by_run ON requests (run_id);
"""


@dataclass(frozen=True)
class Entry:
    """One recorded request."""

    client_ref: str
    content_hash: str
    job: str | None
    item: str | None
    photo: str | None
    scene: str | None
    prompt: str | None
    out_dir: str | None
    name_template: str | None
    run_id: str | None
    status: str
    outputs: tuple[str, ...]
    error: str | None
    created_at: float
    updated_at: float


class JournalError(RunflowBgError):
    """The journal cannot be opened or written."""


class Journal:
    """A thread-safe handle on the journal database (autocommit: every write is durable)."""

    def __init__(self, path: Path | str) -> None:
        try:
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise JournalError(f"Cannot open the journal {path}: {exc}.",
                               hint="Check RUNFLOW_BG_HOME and the disk.") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple) -> None:
        try:
            with self._lock:
                self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise JournalError(f"Cannot write the journal: {exc}.") from None

    def _rows(self, sql: str, args: tuple) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(Entry.__dataclass_fields__)} FROM requests "
                                    + sql, args).fetchall()
        return [Entry(*row[:11], tuple(json.loads(row[11])), *row[12:]) for row in rows]

    def record_request(self, *, client_ref: str, content_hash: str, photo: str | None,
                       scene: str | None, prompt: str | None, out_dir: str | None,
                       name_template: str | None, job: str | None = None,
                       item: str | None = None) -> None:
        """Record a request before its create is sent."""
        now = time.time()
        self._write(
            "INSERT INTO requests (client_ref, content_hash, job, item, photo, scene, prompt, "
            "out_dir, name_template, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (client_ref, content_hash, job, item, photo, scene, prompt, out_dir, name_template,
             CREATING, now, now))

    def record_run(self, client_ref: str, run_id: str) -> None:
        self._write("UPDATE requests SET run_id = ?, status = ?, updated_at = ? WHERE client_ref = ?",
                    (run_id, SUBMITTED, time.time(), client_ref))

    def record_finish(self, client_ref: str, status: str, outputs: list[str] | tuple[str, ...] = (),
                      error: str | None = None) -> None:
        self._write("UPDATE requests SET status = ?, outputs = ?, error = ?, updated_at = ? "
                    "WHERE client_ref = ?",
                    (status, json.dumps(list(outputs)), error, time.time(), client_ref))

    def by_run_id(self, run_id: str) -> Entry | None:
        rows = self._rows("WHERE run_id = ? ORDER BY created_at DESC LIMIT 1", (run_id,))
        return rows[0] if rows else None

    def latest_for_item(self, job: str, item: str) -> Entry | None:
        rows = self._rows("WHERE job = ? AND item = ? ORDER BY created_at DESC LIMIT 1", (job, item))
        return rows[0] if rows else None

    def succeeded_with_hash(self, content_hash: str) -> Entry | None:
        """The latest request with the same content whose outputs were saved."""
        rows = self._rows("WHERE content_hash = ? AND status = ? ORDER BY updated_at DESC LIMIT 1",
                          (content_hash, SUCCEEDED))
        return rows[0] if rows else None
