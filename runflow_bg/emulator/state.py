"""What the emulator remembers (assets, runs, balance, requests, callback attempts), behind one lock."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from runflow_bg.emulator.callbacks import CallbackDelivery
from runflow_bg.emulator.runs import Run


@dataclass
class RequestRecord:
    """One request as the server saw it; status stays None when the connection was dropped."""

    method: str
    path: str
    endpoint: str
    had_authorization: bool
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # as sent, Authorization's value as "***"


SPOOL_BYTES = 1024 * 1024
_CHUNK = 256 * 1024


class Blob:
    """Stored bytes: in memory up to SPOOL_BYTES, else in a temporary file of their own (gone
    with the Blob) that each reader opens afresh, so a large upload costs no memory and
    readers on different threads never share a position."""

    def __init__(self, data: bytes = b"") -> None:
        self._data: bytes | None = data
        self._path: str | None = None
        self.size = len(data)

    @classmethod
    def receive(cls, read: Callable[[int], bytes], length: int) -> Blob:
        """`length` bytes from `read` (a socket), spooled to disk past SPOOL_BYTES; ValueError
        when they end early."""
        if length <= SPOOL_BYTES:
            data = read(length)
            if len(data) != length:
                raise ValueError("The body ended before Content-Length bytes.")
            return cls(data)
        blob = cls()
        descriptor, blob._path = tempfile.mkstemp(prefix="runflow-emulator-upload-")
        blob._data = None
        weakref.finalize(blob, _discard, blob._path)
        with os.fdopen(descriptor, "wb") as sink:
            while blob.size < length:
                chunk = read(min(_CHUNK, length - blob.size))
                if not chunk:
                    raise ValueError("The body ended before Content-Length bytes.")
                sink.write(chunk)
                blob.size += len(chunk)
        return blob

    def open(self):
        return io.BytesIO(self._data) if self._data is not None else open(self._path, "rb")

    def read(self) -> bytes:
        with self.open() as stream:
            return stream.read()


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@dataclass
class Asset:
    """An upload session and, once its bytes arrive, the stored file."""

    filename: str
    mime_type: str
    size_bytes: int
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    data: Blob | None = None
    confirmed: bool = False


class State:
    """Thread-safe store shared by every connection and run thread."""

    def __init__(self, balance: str | None):
        self._lock = threading.Lock()
        self._assets: dict[str, Asset] = {}
        self._runs: dict[str, Run] = {}
        self._requests: list[RequestRecord] = []
        self._deliveries: list[CallbackDelivery] = []
        self.set_balance(balance)

    def set_balance(self, balance: str | None) -> None:
        """None stands for an account without a balance endpoint; its runs are never refused."""
        with self._lock:
            self._balance = None if balance is None else Decimal(balance)

    @property
    def balance(self) -> Decimal | None:
        with self._lock:
            return self._balance

    def add_asset(self, asset: Asset) -> None:
        with self._lock:
            self._assets[asset.id] = asset

    def asset(self, asset_id: str) -> Asset | None:
        with self._lock:
            return self._assets.get(asset_id)

    def store_upload(self, asset_id: str, data: Blob) -> None:
        with self._lock:
            self._assets[asset_id].data = data

    def confirm(self, asset_id: str) -> bool:
        """Mark the asset confirmed; False while nothing has been uploaded to it."""
        with self._lock:
            asset = self._assets[asset_id]
            asset.confirmed = asset.data is not None
            return asset.confirmed

    def add_run(self, run: Run) -> bool:
        """Record a run and charge its price; False when the balance cannot cover it."""
        with self._lock:
            if self._balance is not None:
                if self._balance < run.price:
                    return False
                self._balance -= run.price
            self._runs[run.id] = run
            return True

    def run(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def runs(self) -> list[Run]:
        with self._lock:
            return list(self._runs.values())

    def record(self, request: RequestRecord) -> RequestRecord:
        with self._lock:
            self._requests.append(request)
        return request

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def add_delivery(self, delivery: CallbackDelivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def deliveries(self, run_id: str | None = None) -> list[CallbackDelivery]:
        with self._lock:
            return [d for d in self._deliveries if run_id is None or d.run_id == run_id]
