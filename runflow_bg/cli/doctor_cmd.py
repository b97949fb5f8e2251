"""`runflow-bg doctor`: versions, where settings come from, and whether Runflow answers."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer

HELP = "Check the set-up: versions, paths, key, base URL, proxies, and Runflow's answer."

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy", "NO_PROXY", "no_proxy")
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")

if TYPE_CHECKING:
    from runflow_bg.config import KeySource
    from runflow_bg.errors import RunflowBgError


class _Checklist:
    """Prints one `label  value` line per fact and keeps the problems found, in order."""

    def __init__(self) -> None:
        self.problems = []

    def line(self, label: str, value: str) -> None:
        sys.stdout.write(f"{label:<12} {value}\n")
        sys.stdout.flush()

    def fail(self, label: str, error: RunflowBgError) -> None:
        self.problems.append(error)
        self.line(label, f"FAIL: {error.message}")


def doctor(ctx: typer.Context) -> None:
    """Check the set-up: versions, paths, key, base URL, proxies, and Runflow's answer."""
    import platform
    from importlib.metadata import version

    from runflow_bg import __version__, config
    from runflow_bg.errors import AuthError, RunflowBgError
    from runflow_bg.urls import redact_url

    checks = _Checklist()
    checks.line("runflow-bg", __version__)
    checks.line("python", f"{platform.python_version()} ({sys.executable})")
    for package in ("httpx", "typer"):
        checks.line(package, version(package))
    paths = config.paths()
    checks.line("config", str(paths.config_file))
    try:
        config.load_config()
    except RunflowBgError as exc:
        checks.fail("config file", exc)
    checks.line("state", str(paths.state_dir))
    checks.line("cache", str(paths.cache_dir))
    source = None
    try:
        source = config.find_api_key(ctx.obj.api_key)
    except RunflowBgError as exc:
        checks.fail("api key", exc)
    else:
        if source is None:
            checks.fail("api key", AuthError("No Runflow API key found.", hint=config.NO_KEY_HINT))
        else:
            from runflow_bg.cli.session import warn_if_exposed

            warn_if_exposed(source)
            checks.line("api key", f"{source.masked} (from {source.origin})")
    base_url = None
    try:
        base_url, origin = config.resolve_base_url(ctx.obj.base_url)
        checks.line("base URL", f"{redact_url(base_url)} ({origin})")
    except RunflowBgError as exc:
        checks.fail("base URL", exc)
    checks.line("proxies", _variables(PROXY_VARIABLES, redact=True) or "none")
    checks.line("CA bundle", _variables(CA_VARIABLES, redact=False) or "httpx's default (certifi)")
    if base_url is not None:
        _check_api(checks, base_url, source)
    if checks.problems:
        raise checks.problems[0]


def _variables(names: tuple[str, ...], *, redact: bool) -> str:
    """`NAME=value, ...` for the variables that are set; proxy credentials are left out."""
    from runflow_bg.urls import redact_url

    shown = []
    for name in names:
        value = os.environ.get(name)
        if value:
            if redact and "://" in value:
                value = redact_url(value)
            shown.append(f"{name}={value}")
    return ", ".join(shown)


def _check_api(checks: _Checklist, base_url: str, source: KeySource | None) -> None:
    """The health endpoint (no key needed), then the key against /v1/auth/me."""
    import time

    from runflow_bg.cli.auth_cmd import account_name
    from runflow_bg.cli.session import http_timeout, retry_policy
    from runflow_bg.client import RunflowClient
    from runflow_bg.errors import AuthError, RunflowBgError, UnavailableError

    try:
        with RunflowClient(source.key if source else None, base_url,
                           retry=retry_policy(), timeout=http_timeout()) as client:
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
