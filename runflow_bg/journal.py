"""The journal: every paid request, claimed and recorded before it is sent, so none is paid twice.

One SQLite row per request: content hash -> client_ref -> run id -> status -> saved files, and
the process that owns it. A request is claimed inside a transaction, so two processes on one
state folder (a cron job overlapping the last one, two terminals) never both create it: the
second waits for the owner's result, and takes the claim over only when the owner has died.
A re-run reads the journal to resume instead of paying again; `runs wait` reads it to name
outputs.

    pending    claimed; nothing sent yet
    creating   a create was sent (or is being sent) at `sent_at`
    submitted  the run exists: its id is known
    unknown    a create's answer was lost and the run could not be found within the grace window
    succeeded  the outputs are saved (`outputs`)
    failed     the run failed, or Runflow refused the request for good
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from functools import cached_property
from dataclasses import dataclass, replace
from pathlib import Path

from runflow_bg.errors import RunflowBgError
from runflow_bg.fsutil import private_dir

PENDING = "pending"
CREATING = "creating"
SUBMITTED = "submitted"
UNKNOWN = "unknown"
SUCCEEDED = "succeeded"
FAILED = "failed"
IN_FLIGHT = (PENDING, CREATING, SUBMITTED, UNKNOWN)
OTHER_HOST_STALE_SECONDS = 15 * 60

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
    updated_at    REAL NOT NULL,
    owner         TEXT,
    sent_at       REAL,
    run_seconds   REAL
);
CREATE INDEX IF NOT EXISTS requests_by_hash ON requests (content_hash, status);
CREATE INDEX IF NOT EXISTS requests_by_item ON requests (job, item);
CREATE INDEX IF NOT EXISTS requests_by_run ON requests (run_id);
CREATE INDEX IF NOT EXISTS requests_by_update ON requests (updated_at);
"""
_INSERT = ("INSERT INTO requests (client_ref, content_hash, job, item, photo, scene, prompt, "
           "out_dir, name_template, status, created_at, updated_at, owner)")
_INSERT_NEW_ITEM = (f"{_INSERT} SELECT {', '.join('?' * 13)} WHERE NOT EXISTS "
                    "(SELECT 1 FROM requests WHERE job = ? AND item = ?)")
_ADDED_COLUMNS = (("owner", "TEXT"), ("sent_at", "REAL"), ("run_seconds", "REAL"))
_SETUP_ATTEMPTS = 200  # 10 s at most
_LATER_BATCH = 64  # queued writes the writer thread takes at once, at most
RECENT_RUNS = 50  # durations the poll schedule learns from
_HASHES_A_QUERY = 500  # under SQLite's oldest limit of 999 parameters a statement


def _storable(args: tuple) -> tuple:
    """SQLite keeps UTF-8 only: a file name's undecodable bytes are kept as backslash escapes,
    the same way every time, so that lookups by the same name still match."""
    return tuple(arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                 if isinstance(arg, str) else arg for arg in args)


@dataclass(frozen=True)
class Owner:
    """A process that works on requests: host, pid and start time (pids are reused)."""

    host: str
    pid: int
    started: str

    @classmethod
    def current(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), _start_time(os.getpid()))

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        try:
            host, pid, started = json.loads(text or "null")
            return cls(host, int(pid), started)
        except (TypeError, ValueError):
            return None

    def dump(self) -> str:
        return self._dumped

    @cached_property
    def _dumped(self) -> str:
        return json.dumps([self.host, self.pid, self.started])

    def alive(self, updated_at: float) -> bool:
        """Whether this owner may still be working; on another host, until its row goes stale."""
        if self.host != socket.gethostname():
            return time.time() - updated_at < OTHER_HOST_STALE_SECONDS
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _start_time(self.pid) == self.started


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


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
    owner: str | None = None
    sent_at: float | None = None

    @property
    def owned_by(self) -> Owner | None:
        return Owner.parse(self.owner)

    def held_by_another(self, me: Owner) -> bool:
        """True while another live process works on this request."""
        owner = self.owned_by
        return (self.status in IN_FLIGHT and owner is not None and owner != me
                and owner.alive(self.updated_at))


@dataclass(frozen=True)
class Request:
    """What a new claim records about the request."""

    content_hash: str
    job: str
    item: str
    photo: str | None
    scene: str | None
    prompt: str | None
    out_dir: str | None
    name_template: str | None


class JournalError(RunflowBgError):
    """The journal cannot be opened or written."""


class Journal:
    """A thread-safe handle on the journal database: each write is kept once it is made, and
    a run's id and a request's end are made a moment later by a thread of their own."""

    def __init__(self, path: Path | str, owner: Owner | None = None) -> None:
        self.owner = owner or Owner.current()
        self._path = str(path)
        try:
            private_dir(Path(path).parent)
            Path(path).touch(mode=0o600)
            self._db = self._connect()
            self._set_up()
            self._synced = self._connect(synchronous="FULL")  # record_sending's
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"Cannot open the journal {path}: {exc}.",
                               hint="Check RUNFLOW_BG_HOME and the disk.") from None
        self._lock = threading.RLock()
        self._thread = threading.local()  # whether this thread is inside a transaction
        # Writes that nothing waits for, written by a thread of their own (see _later).
        self._later_lock = threading.Condition()
        self._later_writes: list[tuple[str, tuple]] = []
        self._queued = self._written = 0
        self._later_error: JournalError | None = None
        self._writer: threading.Thread | None = None
        self._later_db: sqlite3.Connection | None = None
        self._closing = False

    def _connect(self, synchronous: str = "NORMAL") -> sqlite3.Connection:
        """A connection in autocommit mode, any thread's; FULL: its commits are synced to the
        disk, NORMAL: not (see record_sending)."""
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None,
                             check_same_thread=False)
        db.execute(f"PRAGMA synchronous={synchronous}")
        return db

    def _set_up(self) -> None:
        """WAL mode and the schema. Switching a new file to WAL does not wait for a busy lock
        the way other statements do, so two processes opening it at once try again briefly."""
        for attempt in range(_SETUP_ATTEMPTS):
            try:
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(requests)")}
                for name, kind in _ADDED_COLUMNS:
                    if name not in columns:
                        self._db.execute(f"ALTER TABLE requests ADD COLUMN {name} {kind}")
                self._private_files()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == _SETUP_ATTEMPTS - 1:
                    raise
                time.sleep(0.05)

    def _private_files(self) -> None:
        """The write-ahead log and its index hold the same records: 0600 like the database."""
        path = self._db.execute("PRAGMA database_list").fetchone()[2]
        for suffix in ("-wal", "-shm"):
            try:
                os.chmod(path + suffix, 0o600)
            except OSError:
                pass

    def close(self) -> None:
        """Write what is queued, then close."""
        try:
            self._flush()
        finally:
            with self._later_lock:
                self._closing = True
                self._later_lock.notify_all()
            if self._writer is not None:
                self._writer.join()
            if self._later_db is not None:
                self._later_db.close()
            with self._lock:
                self._synced.close()
                self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Reads and writes that no other process can interleave with (BEGIN IMMEDIATE), after
        every write queued so far."""
        self._flush()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise JournalError(f"Cannot lock the journal: {exc}.") from None
            self._thread.in_transaction = True
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._thread.in_transaction = False

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for a read, which sees every write queued before it (inside a
        transaction, they were written when it began)."""
        if not getattr(self._thread, "in_transaction", False):
            self._flush()
        with self._lock:
            yield self._db

    def _later(self, sql: str, args: tuple) -> None:
        """A write nothing waits for: a run's id, a request's end. It is queued and written by
        the journal's own thread on a connection of its own, so that a batch's workers do not
        each wait their turn at the journal for it. Reads, transactions and close() wait for
        what was queued before them; a process killed meanwhile loses only rows that its next
        run resumes or looks up anyway (the create's own row is written synchronously, see
        record_sending)."""
        with self._later_lock:
            if self._writer is None:
                try:
                    self._later_db = self._connect()
                except sqlite3.Error as exc:
                    raise JournalError(f"Cannot write the journal: {exc}.") from None
                self._writer = threading.Thread(target=self._write_later, daemon=True,
                                                name="runflow-bg-journal")
                self._writer.start()
            self._later_writes.append((sql, _storable(args)))
            self._queued += 1
            self._later_lock.notify_all()

    def _write_later(self) -> None:
        while True:
            with self._later_lock:
                while not self._later_writes and not self._closing:
                    self._later_lock.wait()
                if not self._later_writes:
                    return
                batch = self._later_writes[:_LATER_BATCH]
                del self._later_writes[:_LATER_BATCH]
            error = self._write_batch(batch)
            with self._later_lock:
                self._written += len(batch)
                self._later_error = self._later_error or error
                self._later_lock.notify_all()

    def _write_batch(self, batch: list[tuple[str, tuple]]) -> JournalError | None:
        """Each write on its own, through the writer's own connection: SQLite's lock is held
        only while a write is being made, never while this thread waits for the interpreter."""
        assert self._later_db is not None  # opened before the thread started
        try:
            for sql, args in batch:
                self._later_db.execute(sql, args)
        except sqlite3.Error as exc:
            return JournalError(f"Cannot write the journal: {exc}.")
        return None

    def _flush(self) -> None:
        """Wait until the writes queued so far are written; a failure among them is raised
        here, once."""
        with self._later_lock:
            target = self._queued
            while self._written < target and not self._closing:  # closed: nothing more comes
                self._later_lock.wait()
            error, self._later_error = self._later_error, None
        if error is not None:
            raise error

    def _write(self, sql: str, args: tuple, *, durable: bool = False) -> int:
        """Run one write; returns how many rows it changed. `durable`: synced to the disk
        (with all writes before it) before it returns."""
        try:
            with self._lock:
                return (self._synced if durable else self._db).execute(
                    sql, _storable(args)).rowcount
        except sqlite3.Error as exc:
            raise JournalError(f"Cannot write the journal: {exc}.") from None

    def _rows(self, sql: str, args: tuple) -> list[Entry]:
        with self._reading() as db:
            rows = db.execute(f"SELECT {', '.join(Entry.__dataclass_fields__)} FROM requests "
                                    + sql, _storable(args)).fetchall()
        return [Entry(*row[:11], tuple(json.loads(row[11])), *row[12:]) for row in rows]

    # -- claims ----------------------------------------------------------------------------

    def claim(self, request: Request, client_ref: str,
              renew: Callable[[Entry], bool] = lambda entry: False) -> Entry:
        """The row this process may work on, or a row it must not touch.

        In one transaction, for the latest row of the same item and content: one another live
        process holds is returned as it is (wait for it); a finished one is returned (reuse
        it) unless `renew` says to start over; an unfinished one is taken over. Otherwise a new
        row is made, `pending` and owned by this process, under `client_ref`.
        """
        now = time.time()
        row = _storable((client_ref, request.content_hash, request.job, request.item,
                         request.photo, request.scene, request.prompt, request.out_dir,
                         request.name_template, PENDING, now, now, self.owner.dump()))
        new = Entry(*row[:9], None, PENDING, (), None, now, now, row[12])
        # An item the journal has never seen (every item of a new batch) is claimed by one
        # statement, atomic on its own; anything else takes the transaction below.
        try:
            if self._write(_INSERT_NEW_ITEM, (*row, request.job, request.item)) == 1:
                return new
        except JournalError:
            pass  # a concurrent write (or a real fault, which the transaction meets again)
        with self.transaction():
            entry = self.latest_for_item(request.job, request.item)
            if entry is not None and entry.content_hash == request.content_hash:
                if entry.held_by_another(self.owner):
                    return entry
                if entry.status in IN_FLIGHT:
                    now, owner = time.time(), self.owner.dump()
                    self._write("UPDATE requests SET owner = ?, updated_at = ? WHERE client_ref = ?",
                                (owner, now, entry.client_ref))
                    return replace(entry, owner=owner, updated_at=now)
                if not renew(entry):
                    return entry
            self._write(f"{_INSERT} VALUES ({', '.join('?' * 13)})", row)
            return new  # as written: not read back

    def record_sending(self, client_ref: str) -> None:
        """A create is about to be sent: from now on its fate must be looked up, never assumed.

        The one write synced to the disk before it returns (with all before it): every write
        survives the process being killed, but only a lost `creating` could cost a second run
        after a power cut; losing any other leaves a row that is resumed or looked up again.
        It goes through a second connection whose commits are synced (synchronous=FULL): in WAL
        mode that syncs the log, which holds every commit before it too.
        """
        now = time.time()
        self._write("UPDATE requests SET status = ?, sent_at = ?, updated_at = ? "
                    "WHERE client_ref = ?", (CREATING, now, now, client_ref), durable=True)

    def record_run(self, client_ref: str, run_id: str) -> None:
        self._later("UPDATE requests SET run_id = ?, status = ?, updated_at = ? WHERE client_ref = ?",
                    (run_id, SUBMITTED, time.time(), client_ref))

    def record_unknown(self, client_ref: str, error: str) -> None:
        self._write("UPDATE requests SET status = ?, error = ?, owner = NULL, updated_at = ? "
                    "WHERE client_ref = ?", (UNKNOWN, error, time.time(), client_ref))

    def record_finish(self, client_ref: str, status: str, outputs: list[str] | tuple[str, ...] = (),
                      error: str | None = None, run_seconds: float | None = None) -> None:
        """The request's end; `run_seconds`, how long its run took, teaches the poll schedule."""
        self._later("UPDATE requests SET status = ?, outputs = ?, error = ?, owner = NULL, "
                    "updated_at = ?, run_seconds = ? WHERE client_ref = ?",
                    (status, json.dumps(list(outputs)), error, time.time(), run_seconds,
                     client_ref))

    def drop_abandoned(self) -> None:
        """Forget unfinished requests whose process has died (their runs cannot be reached)."""
        with self.transaction():
            for entry in self._rows("WHERE status IN (?, ?, ?, ?)", IN_FLIGHT):
                owner = entry.owned_by
                if owner is None or not owner.alive(entry.updated_at):
                    self._write("DELETE FROM requests WHERE client_ref = ?", (entry.client_ref,))

    # -- reads -----------------------------------------------------------------------------

    def by_client_ref(self, client_ref: str) -> Entry | None:
        rows = self._rows("WHERE client_ref = ?", (client_ref,))
        return rows[0] if rows else None

    def by_run_id(self, run_id: str) -> Entry | None:
        rows = self._rows("WHERE run_id = ? ORDER BY created_at DESC LIMIT 1", (run_id,))
        return rows[0] if rows else None

    def latest_for_item(self, job: str, item: str) -> Entry | None:
        rows = self._rows("WHERE job = ? AND item = ? ORDER BY created_at DESC LIMIT 1", (job, item))
        return rows[0] if rows else None

    def latest_by_item(self, job: str) -> dict[str, Entry]:
        """The latest row of each item of a job, in one read: what planning a batch asks of
        every item."""
        latest: dict[str, Entry] = {}
        for entry in self._rows("WHERE job = ? ORDER BY created_at", (job,)):
            latest[entry.item] = entry
        return latest

    def succeeded_with_hash(self, content_hash: str) -> Entry | None:
        """The latest request with the same content whose outputs were saved."""
        rows = self._rows("WHERE content_hash = ? AND status = ? ORDER BY updated_at DESC LIMIT 1",
                          (content_hash, SUCCEEDED))
        return rows[0] if rows else None

    def succeeded_with_hashes(self, content_hashes: Collection[str]) -> dict[str, Entry]:
        """`succeeded_with_hash` for many hashes at once, by hash (those with none left out):
        what planning a batch asks about every item it would submit."""
        found: dict[str, Entry] = {}
        hashes = sorted(content_hashes)
        for start in range(0, len(hashes), _HASHES_A_QUERY):
            chunk = hashes[start:start + _HASHES_A_QUERY]
            rows = self._rows(f"WHERE content_hash IN ({', '.join('?' * len(chunk))}) "
                              "AND status = ? ORDER BY updated_at", (*chunk, SUCCEEDED))
            found.update((entry.content_hash, entry) for entry in rows)  # the latest one last
        return found

    def in_flight(self, job: str) -> list[Entry]:
        """This process's requests of a job whose runs exist, or may: for the interrupt message."""
        return self._rows("WHERE job = ? AND owner = ? AND status IN (?, ?, ?) ORDER BY created_at",
                          (job, self.owner.dump(), CREATING, SUBMITTED, UNKNOWN))

    def recent_run_seconds(self, limit: int = RECENT_RUNS) -> list[float]:
        """How long the latest finished runs took, newest first (for the poll schedule)."""
        with self._reading() as db:
            rows = db.execute("SELECT run_seconds FROM requests WHERE run_seconds > 0 "
                                    "ORDER BY updated_at DESC LIMIT ?", (limit,)).fetchall()
        return [seconds for (seconds,) in rows]

    def recorded_outputs(self) -> set[str]:
        """Every file the journal says the tool saved, as recorded."""
        with self._reading() as db:
            rows = db.execute("SELECT outputs FROM requests WHERE status = ?",
                                    (SUCCEEDED,)).fetchall()
        return {path for (outputs,) in rows for path in json.loads(outputs)}
