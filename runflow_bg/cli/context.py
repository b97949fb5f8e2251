"""One invocation: its settings, its terminal, its clock, and the one place a client is built.

The root command puts an `Invocation` on the Typer context; every command takes what it needs
from it, so settings are resolved once, the environment is read only here, and the client and
the journal are made the same way for every command. The settings and the terminal are made
when a command first asks for them (`replace --help` asks for neither), so the root command
imports little.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from runflow_bg.clock import Clock

if TYPE_CHECKING:
    from runflow_bg.cli.terminal import Terminal
    from runflow_bg.config import Settings


@dataclass
class Session:
    """A client and the journal, ready for a use case."""

    client: object
    journal: object
    local: bool


def new_clock() -> Clock:
    """The clock every wait of the invocation goes through (tests hand in one that skips)."""
    return Clock()


class Invocation:
    """What the root command resolved, handed to every command through the context."""

    def __init__(self, environ: Mapping[str, str], *, api_key: str | None = None,
                 base_url: str | None = None, debug: bool = False) -> None:
        self.environ = environ
        self.api_key_flag = api_key
        self.base_url_flag = base_url
        self.debug = debug
        self.clock = new_clock()

    @classmethod
    def from_environment(cls, *, api_key: str | None, base_url: str | None,
                         debug: bool) -> Invocation:
        return cls(os.environ, api_key=api_key, base_url=base_url, debug=debug)

    @cached_property
    def settings(self) -> Settings:
        from runflow_bg.config import Settings

        return Settings(self.environ, api_key_flag=self.api_key_flag,
                        base_url_flag=self.base_url_flag)

    @cached_property
    def terminal(self) -> Terminal:
        from runflow_bg.cli.terminal import Terminal

        return Terminal(self.environ)

    def key(self):
        """The API key's source (exit 3 when there is none); a readable credentials file warns."""
        source = self.settings.require_key()
        self.terminal.hide(source.key)
        self.warn_if_exposed(source)
        return source

    def warn_if_exposed(self, source) -> None:
        from runflow_bg.config import credentials_too_open

        path = source.file
        if path is not None and credentials_too_open(path):
            self.terminal.note(f"Warning: other users can read {path}; run `chmod 600 {path}`.")

    def client(self, *, key: str | None = None, base_url: str | None = None, local: bool = False,
               connections: int = 16):
        """A RunflowClient with this invocation's key, base URL, retries, timeout and clock."""
        from runflow_bg.client import RunflowClient
        from runflow_bg.transport import RetryPolicy

        settings = self.settings
        if not local:
            key = key if key is not None else self.key().key
            base_url = base_url or settings.base_url
        self.terminal.hide(key or "")
        return RunflowClient(key, base_url, retry=RetryPolicy(max_attempts=settings.retries),
                             timeout=settings.http_timeout, clock=self.clock,
                             log=self.terminal.log, trust_env=not local,
                             connections=connections, create_grace=settings.create_grace,
                             on_retry=self.terminal.notice)

    def anonymous_client(self, key: str | None = None):
        """A client that may have no key (health checks, checking a key before saving it)."""
        return self.client(key=key or "", base_url=self.settings.base_url)

    @contextmanager
    def open_client(self, *, local: bool, connections: int = 16) -> Iterator:
        """A client of Runflow, or of an in-process emulator with a throwaway key for --local."""
        if not local:
            with self.client(connections=connections) as client:
                yield client
            return
        import secrets

        from runflow_bg.emulator import Emulator

        emulator = Emulator(api_key=f"rf_local_{secrets.token_hex(8)}", port=0,
                            run_seconds=self.settings.local_run_seconds, price="0")
        emulator.start()
        try:
            with self.client(key=emulator.api_key, base_url=emulator.base_url, local=True,
                             connections=connections) as client:
                yield client
        finally:
            emulator.stop()

    def open_journal(self, *, local: bool, shard: tuple[int, int] | None = None):
        """The journal in the state directory, one per shard.

        `--local` keeps one of its own, so that a local result is never reused for a real
        request nor the other way round; the runs of a local process that died went with its
        emulator, so their rows are dropped.
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
    def open_session(self, *, local: bool = False) -> Iterator[Session]:
        journal = self.open_journal(local=local)
        try:
            with self.open_client(local=local) as client:
                yield Session(client, journal, local)
        finally:
            journal.close()

    def price(self, client=None, *, local: bool = False):
        """The price of a run (free with --local); with no client, no request is made."""
        from runflow_bg.pricing import FREE, Price, price_per_run
        from runflow_bg.service.inputs import MODEL

        if local:
            return Price(FREE, True)
        price = price_per_run(client, self.settings.paths.cache_dir / "pricing.json", MODEL)
        notice = price.notice(MODEL)
        if notice and client is not None:
            self.terminal.notice(notice)
        return price

    def network_variables(self, *, proxies: bool) -> dict[str, str]:
        """The proxy (or CA) variables in effect, for `doctor`."""
        from runflow_bg.config import CA_ENVS, PROXY_ENVS

        names = PROXY_ENVS if proxies else CA_ENVS
        return {name: self.settings.environ[name] for name in names
                if self.settings.environ.get(name)}
