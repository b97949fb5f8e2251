"""Where requests are made from: the settings, the clock, and the one place a client, a journal
or the price of a run is made, for the command line and the Python API alike.

Whoever drives it (the CLI's terminal, or a Python program) says through hooks where notices,
warnings and the request log go, and learns each secret to keep out of sight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from typing import TYPE_CHECKING

from runflow_bg.clock import Clock

if TYPE_CHECKING:
    from runflow_bg.config import Settings
    from runflow_bg.client import RunflowClient
    from runflow_bg.journal import Journal


@dataclass
class Session:
    """A client and the journal, ready for a use case."""

    client: RunflowClient
    journal: Journal
    local: bool


def _ignore(message: str) -> None:
    """A hook nobody listens to."""


def _give_back_large_buffers() -> None:
    """Locally, images are decoded on several threads (the emulator's runs, the client); glibc
    would keep each freed image buffer in its thread's heap for reuse, and the process would
    grow by tens of MB. A fixed threshold of 1 MiB makes large buffers go back to the system
    when freed. Elsewhere than glibc, nothing changes."""
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError, TypeError):
        pass


class Workspace:
    """Settings resolved once, a clock every wait goes through, and factories built on them."""

    def __init__(self, settings: Settings | None, clock: Clock | None = None, *,
                 notice: Callable[[str], None] = _ignore, warn: Callable[[str], None] = _ignore,
                 log: Callable[[str], None] | None = None,
                 hide: Callable[[str], None] = _ignore) -> None:
        if settings is not None:  # else the subclass makes them when first asked for
            self.settings = settings
        self.clock = clock or Clock()
        self._notice, self._warn, self._log, self._hide = notice, warn, log, hide

    def warn(self, message: str) -> None:
        """A warning for whoever drives the workspace (`Warning: ...` on the CLI's stderr)."""
        self._warn(message)

    def key(self):
        """The API key's source (AuthError, exit 3, when there is none); a credentials file other
        users can read is worth a warning."""
        from runflow_bg.config import credentials_too_open

        source = self.settings.require_key()
        self._hide(source.key)
        path = source.file
        if path is not None and credentials_too_open(path):
            self._warn(f"Warning: other users can read {path}; run `chmod 600 {path}`.")
        return source

    def client(self, *, key: str | None = None, base_url: str | None = None, local: bool = False,
               connections: int = 16) -> RunflowClient:
        """A RunflowClient with these settings' key, base URL, retries, timeout and the clock."""
        from runflow_bg.client import RunflowClient
        from runflow_bg.transport import RetryPolicy

        settings = self.settings
        if not local:
            key = key if key is not None else self.key().key
        base_url = base_url or settings.base_url  # a local client is always given its own
        self._hide(key or "")
        return RunflowClient(key, base_url, retry=RetryPolicy(max_attempts=settings.retries),
                             timeout=settings.http_timeout, clock=self.clock, log=self._log,
                             trust_env=not local, connections=connections,
                             create_grace=settings.create_grace, on_retry=self._notice)

    def anonymous_client(self, key: str | None = None):
        """A client that may have no key (health checks, checking a key before saving it)."""
        return self.client(key=key or "", base_url=self.settings.base_url)

    @contextmanager
    def open_client(self, *, local: bool, connections: int = 16) -> Iterator[RunflowClient]:
        """A client of Runflow, or of an in-process emulator with a throwaway key for `local`."""
        if not local:
            with self.client(connections=connections) as client:
                yield client
            return
        import secrets

        from runflow_bg.emulator import Emulator
        from runflow_bg.emulator.app import LOCAL_MAX_SIDE

        _give_back_large_buffers()
        emulator = Emulator(api_key=f"rf_local_{secrets.token_hex(8)}", port=0,
                            run_seconds=self.settings.local_run_seconds, price="0",
                            max_side=LOCAL_MAX_SIDE)
        emulator.start()
        try:
            with self.client(key=emulator.api_key, base_url=emulator.base_url, local=True,
                             connections=connections) as client:
                yield client
        finally:
            emulator.stop()

    def open_journal(self, *, local: bool, shard: tuple[int, int] | None = None) -> Journal:
        """The journal in the state directory, one per shard.

        A local one is kept apart, so that a local result is never reused for a real request
        nor the other way round; the runs of a local process that died went with its emulator,
        so their rows are dropped.
        """
        from runflow_bg.journal import Journal

        name = "journal"
        if shard:
            name += f"-shard-{shard[0]}-of-{shard[1]}"
        if local:
            name += "-local"
        journal = Journal(self.settings.paths.state_dir / f"{name}.sqlite3")
        if local:
            journal.drop_abandoned()
        return journal

    @contextmanager
    def url_inputs(self, *, refetch: bool = False) -> Iterator[None]:
        """Photos and scenes by URL for the length of a use case: fetched on first use through
        the cache folder, with these settings' retries, timeout and clock, never with the key;
        `refetch` (--no-cache) fetches them afresh instead of reusing kept copies."""
        from runflow_bg.images import read_urls_with
        from runflow_bg.remote import UrlInputs, open_transport
        from runflow_bg.transport import RetryPolicy

        settings = self.settings

        def connect():
            return open_transport(retry=RetryPolicy(max_attempts=settings.retries),
                                  timeout=settings.http_timeout, clock=self.clock,
                                  log=self._log, on_retry=self._notice)

        inputs = UrlInputs(settings.paths.cache_dir / "inputs", connect, refetch=refetch,
                           log=self._log)
        previous = read_urls_with(inputs.read)
        try:
            yield
        finally:
            read_urls_with(previous)
            inputs.close()

    @contextmanager
    def open_session(self, *, local: bool = False) -> Iterator[Session]:
        journal = self.open_journal(local=local)
        try:
            with self.open_client(local=local) as client:
                yield Session(client, journal, local)
        finally:
            journal.close()

    def price(self, client=None, *, local: bool = False):
        """The price of a run (free when local); with no client, no request is made."""
        from runflow_bg.pricing import FREE, Price, price_per_run
        from runflow_bg.service.inputs import MODEL

        if local:
            return Price(FREE, True)
        price = price_per_run(client, self.settings.paths.cache_dir / "pricing.json", MODEL)
        notice = price.notice(MODEL)
        if notice and client is not None:
            self._notice(notice)
        return price
