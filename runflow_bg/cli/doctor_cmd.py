"""`runflow-bg doctor`: versions, where settings come from, and whether Runflow answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from runflow_bg.cli.context import Invocation
    from runflow_bg.config import KeySource
    from runflow_bg.errors import RunflowBgError


class _Checklist:
    """Prints one `label  value` line per fact and keeps the problems found, in order."""

    def __init__(self, invocation: Invocation) -> None:
        self.terminal = invocation.terminal
        self.problems = []

    def line(self, label: str, value: str) -> None:
        self.terminal.out(f"{label:<12} {value}\n")

    def fail(self, label: str, error: RunflowBgError) -> None:
        self.problems.append(error)
        self.line(label, f"FAIL: {error.message}")


def doctor(ctx: typer.Context) -> None:
    """Check the set-up: versions, paths, key, base URL, proxies, and Runflow's answer."""
    import platform
    import sys
    from importlib.metadata import version

    from runflow_bg import __version__
    from runflow_bg.errors import RunflowBgError
    from runflow_bg.urls import redact_url

    invocation = ctx.obj
    settings = invocation.settings
    checks = _Checklist(invocation)
    checks.line("runflow-bg", __version__)
    checks.line("python", f"{platform.python_version()} ({sys.executable})")
    for package in ("httpx", "typer"):
        checks.line(package, version(package))
    paths = settings.paths
    checks.line("config", str(paths.config_file))
    try:
        settings.file
    except RunflowBgError as exc:
        checks.fail("config file", exc)
    checks.line("state", str(paths.state_dir))
    checks.line("cache", str(paths.cache_dir))
    source = None
    try:
        source = invocation.key()
    except RunflowBgError as exc:
        checks.fail("api key", exc)
    else:
        checks.line("api key", f"{source.masked} (from {source.origin})")
    base_url = None
    try:
        base_url, origin = settings.base_url_source
        checks.line("base URL", f"{redact_url(base_url)} ({origin})")
    except RunflowBgError as exc:
        checks.fail("base URL", exc)
    proxies = invocation.network_variables(proxies=True)
    checks.line("proxies", ", ".join(f"{name}={redact_url(value) if '://' in value else value}"
                                     for name, value in proxies.items()) or "none")
    cas = invocation.network_variables(proxies=False)
    checks.line("CA bundle", ", ".join(f"{name}={value}" for name, value in cas.items())
                or "httpx's default (certifi)")
    if base_url is not None:
        _check_api(invocation, checks, source)
    if checks.problems:
        raise checks.problems[0]


def _check_api(invocation: Invocation, checks: _Checklist, source: KeySource | None) -> None:
    """The health endpoint (no key needed), then the key against /v1/auth/me."""
    import time

    from runflow_bg.cli.auth_cmd import account_name
    from runflow_bg.errors import AuthError, RunflowBgError, UnavailableError

    try:
        with invocation.anonymous_client(source.key if source else None) as client:
            started = time.monotonic()
            if not client.health():
                raise UnavailableError("Runflow's health check did not answer ok.")
            checks.line("health", f"ok ({(time.monotonic() - started) * 1000:.0f} ms)")
            if source is None:
                checks.line("key check", "skipped: no key")
                return
            try:
                who = account_name(client.me())
            except AuthError as exc:
                exc.hint = (f"The key comes from {source.origin}: replace it there, or run "
                            "`runflow-bg auth login`.")
                checks.fail("key check", exc)
                return
            checks.line("key check", f"accepted{f' ({who})' if who else ''}")
    except RunflowBgError as exc:
        checks.fail("health", exc)
