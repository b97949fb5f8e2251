"""Turn resolved settings into a ready client and journal, against Runflow or the local emulator."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from runflow_bg import config
from runflow_bg.client import RunflowClient
from runflow_bg.errors import UsageError
from runflow_bg.journal import Journal
from runflow_bg.retry import RetryPolicy

RETRIES_ENV = "RUNFLOW_BG_RETRIES"
LOCAL_RUN_SECONDS_ENV = "RUNFLOW_BG_LOCAL_RUN_SECONDS"
HTTP_TIMEOUT_ENV = "RUNFLOW_BG_HTTP_TIMEOUT"


@dataclass
class Session:
    client: RunflowClient
    journal: Journal
    local: bool


def retry_policy() -> RetryPolicy:
    """Attempts per request from RUNFLOW_BG_RETRIES (default 5, as Runflow's docs advise)."""
    value = os.environ.get(RETRIES_ENV)
    if not value:
        return RetryPolicy()
    try:
        attempts = int(value)
        if attempts < 1:
            raise ValueError
    except ValueError:
        raise UsageError(f"{RETRIES_ENV} must be a whole number of at least 1.") from None
    return RetryPolicy(max_attempts=attempts)


def http_timeout() -> float:
    """Seconds to wait for an answer from RUNFLOW_BG_HTTP_TIMEOUT (default 30)."""
    value = os.environ.get(HTTP_TIMEOUT_ENV, "30")
    try:
        seconds = float(value)
        if seconds <= 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"{HTTP_TIMEOUT_ENV} must be a number of seconds above zero.") from None
    return seconds


def _local_run_seconds() -> float:
    value = os.environ.get(LOCAL_RUN_SECONDS_ENV, "1.0")
    try:
        return max(0.0, float(value))
    except ValueError:
        raise UsageError(f"{LOCAL_RUN_SECONDS_ENV} must be a number of seconds.") from None


def warn_if_exposed(source: config.KeySource) -> None:
    """A credentials file that group or others may read draws a warning on stderr."""
    path = source.file
    if path is not None and config.credentials_too_open(path):
        sys.stderr.write(f"Warning: other users can read {path}; run `chmod 600 {path}`.\n")


def api_key(flag: str | None) -> str:
    """The API key by precedence (see config.find_api_key); AuthError (exit 3) when none."""
    source = config.require_api_key(flag)
    warn_if_exposed(source)
    return source.key


def open_journal(*, local: bool, shard: tuple[int, int] | None = None) -> Journal:
    """The journal in the state directory (one per shard); a throwaway one for --local runs."""
    if local:
        return Journal(":memory:")
    state = config.paths().state_dir
    name = f"journal-shard-{shard[0]}-of-{shard[1]}.sqlite3" if shard else "journal.sqlite3"
    return Journal(state / name)


@contextmanager
def open_client(*, api_key_flag: str | None, base_url_flag: str | None, local: bool,
                log: Callable[[str], None] | None = None) -> Iterator[RunflowClient]:
    """A client of Runflow, or of an in-process emulator with a throwaway key for --local."""
    if local:
        from runflow_bg.emulator import Emulator

        emulator = Emulator(api_key=f"rf_local_{secrets.token_hex(8)}", port=0,
                            run_seconds=_local_run_seconds())
        emulator.start()
        try:
            with RunflowClient(emulator.api_key, emulator.base_url, retry=retry_policy(),
                               timeout=http_timeout(), log=log, trust_env=False) as client:
                yield client
        finally:
            emulator.stop()
        return
    base_url, _ = config.resolve_base_url(base_url_flag)
    key = api_key(api_key_flag)
    with RunflowClient(key, base_url, retry=retry_policy(), timeout=http_timeout(),
                       log=log) as client:
        yield client


@contextmanager
def open_session(*, api_key_flag: str | None, base_url_flag: str | None, local: bool,
                 log: Callable[[str], None] | None = None) -> Iterator[Session]:
    """A client and the journal, ready for a use case."""
    journal = open_journal(local=local)
    try:
        with open_client(api_key_flag=api_key_flag, base_url_flag=base_url_flag, local=local,
                         log=log) as client:
            yield Session(client, journal, local)
    finally:
        journal.close()
