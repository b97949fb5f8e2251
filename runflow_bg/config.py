"""Settings: every environment variable the tool reads, the config file, and which value wins.

Highest first: command-line flag, environment, config file, default. Nothing here reads
the process environment: the CLI hands it to `Settings` once per invocation, and each value is
resolved (and checked) the first time a command needs it, then kept.
"""

from __future__ import annotations

import json
import math
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from runflow_bg.errors import AuthError, UsageError
from runflow_bg.fsutil import atomic_write_bytes, private_dir
from runflow_bg.urls import DEFAULT_BASE_URL, is_allowed_url, normalize_base_url, redact_url

APP_NAME = "runflow-bg"

# -- every environment variable the tool reads -------------------------------------------------
HOME_ENV = "RUNFLOW_BG_HOME"
KEY_ENV = "RUNFLOW_API_KEY"
BASE_URL_ENV = "RUNFLOW_BASE_URL"
RETRIES_ENV = "RUNFLOW_BG_RETRIES"
HTTP_TIMEOUT_ENV = "RUNFLOW_BG_HTTP_TIMEOUT"
LOCAL_RUN_SECONDS_ENV = "RUNFLOW_BG_LOCAL_RUN_SECONDS"
CREATE_GRACE_ENV = "RUNFLOW_BG_CREATE_GRACE"
WEBHOOK_SECRET_ENV = "RUNFLOW_WEBHOOK_SECRET"
NO_COLOR_ENV = "NO_COLOR"
TERM_ENV = "TERM"
CI_ENV = "CI"
GITHUB_ACTIONS_ENV = "GITHUB_ACTIONS"
GITHUB_STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
PROXY_ENVS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy")
CA_ENVS = ("SSL_CERT_FILE", "SSL_CERT_DIR")

DEFAULT_HTTP_TIMEOUT = 30.0
DEFAULT_LOCAL_RUN_SECONDS = 1.0
DEFAULT_CREATE_GRACE = 30.0
DEFAULT_RETRIES = 5
DEFAULT_WAIT = "10m"
DEFAULT_CONCURRENCY = 4
NO_KEY_HINT = ("Set RUNFLOW_API_KEY, run `runflow-bg auth login`, or add --local to try the "
               "built-in emulator for free.")


@dataclass(frozen=True)
class Paths:
    """The tool's config, state and cache directories."""

    config_dir: Path
    state_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.json"

    @property
    def credentials_file(self) -> Path:
        return self.config_dir / "credentials.json"


def paths_for(home: str | None) -> Paths:
    """RUNFLOW_BG_HOME holds everything when set; otherwise the platform's user dirs."""
    if home:
        root = Path(home).expanduser()
        return Paths(root / "config", root / "state", root / "cache")
    import platformdirs

    return Paths(Path(platformdirs.user_config_dir(APP_NAME)),
                 Path(platformdirs.user_state_dir(APP_NAME)),
                 Path(platformdirs.user_cache_dir(APP_NAME)))


def shared_credentials_file() -> Path:
    """Runflow's own credentials file, shared with its other tools."""
    return Path.home() / ".config" / "runflow" / "credentials.json"


# -- the config file ---------------------------------------------------------------------------

def _parse_positive_int(value: Any) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ValueError("must be a whole number") from None
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _parse_base_url(value: Any) -> str:
    url = normalize_base_url(str(value))
    if not is_allowed_url(url):
        raise ValueError("must be an https URL (plain http only for loopback addresses)")
    return url


def _parse_duration_setting(value: Any) -> str:
    from runflow_bg.durations import parse_duration

    parse_duration(str(value))
    return str(value)


def _parse_template(value: Any) -> str:
    from runflow_bg.naming import check_template

    return check_template(str(value))


SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "base_url": ("API base URL, without /v1", _parse_base_url),
    "concurrency": ("default -j for batch", _parse_positive_int),
    "out": ("default output directory", str),
    "timeout": ("default --timeout (90s, 10m, 1h)", _parse_duration_setting),
    "name": ("default --name template", _parse_template),
}


def check_setting_name(key: str) -> str:
    """The key itself when it is one of SETTINGS; UsageError naming the known ones otherwise."""
    if key not in SETTINGS:
        known = ", ".join(sorted(SETTINGS))
        raise UsageError(f"Unknown setting {key!r}.", hint=f"Known settings: {known}.")
    return key


def validate_setting(key: str, value: Any, where: str = "") -> Any:
    """The parsed value of a setting; UsageError (exit 2) saying what is wrong with it."""
    check_setting_name(key)
    try:
        return SETTINGS[key][1](value)
    except ValueError as exc:
        raise UsageError(f"Invalid value for {key}{where}: {exc}.",
                         hint=f"{key} is the {SETTINGS[key][0]}; fix it with "
                              f"`runflow-bg config set {key} VALUE` or `config unset {key}`.") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The config file's raw settings; a missing file is an empty config."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc}.",
                         hint="Fix or delete the file; `runflow-bg config path` shows it.") from None
    if not isinstance(data, dict):
        raise UsageError(f"The config file {path} does not hold a JSON object.",
                         hint="Fix or delete the file; `runflow-bg config path` shows it.")
    return data


def write_config_file(path: Path, data: dict[str, Any]) -> None:
    private_dir(path.parent)
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), 0o600)


# -- the API key -------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeySource:
    """An API key and where it came from (never printed whole)."""

    key: str
    origin: str

    @property
    def masked(self) -> str:
        return f"…{self.key[-4:]}" if len(self.key) > 8 else "…"

    @property
    def file(self) -> Path | None:
        """The credentials file the key was read from, if it came from one."""
        return None if self.origin in ("--api-key", KEY_ENV) else Path(self.origin)


def _key_from_file(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise AuthError(f"Cannot read the credentials file {path}.",
                        hint="Run `runflow-bg auth login` to write it again.") from None
    key = data.get("api_key") if isinstance(data, dict) else None
    return key.strip() if isinstance(key, str) and key.strip() else None


def credentials_too_open(path: Path) -> bool:
    """True when group or others may read the credentials file."""
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def missing_key_error() -> AuthError:
    """The one error for "no key anywhere" (exit 3)."""
    return AuthError("No Runflow API key found.", hint=NO_KEY_HINT)


def save_api_key(path: Path, key: str) -> Path:
    """Write the credentials file atomically, 0600 in a 0700 directory."""
    private_dir(path.parent)
    atomic_write_bytes(path, (json.dumps({"api_key": key}) + "\n").encode(), 0o600)
    return path


# -- one invocation's settings -----------------------------------------------------------------

def _seconds(environ: Mapping[str, str], name: str, default: float, *, positive: bool) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        above = "above zero" if positive else "of zero or more"
        raise UsageError(f"{name}={value!r} is not a number of seconds {above}.",
                         hint=f"Set {name} to a number such as {default:g}, or unset it.")
    return seconds


class Settings:
    """Everything one invocation may need, each resolved once, when first asked for."""

    def __init__(self, environ: Mapping[str, str], *, api_key_flag: str | None = None,
                 base_url_flag: str | None = None) -> None:
        self.environ = dict(environ)
        self.api_key_flag = api_key_flag
        self.base_url_flag = base_url_flag

    @cached_property
    def paths(self) -> Paths:
        return paths_for(self.environ.get(HOME_ENV))

    @cached_property
    def file(self) -> dict[str, Any]:
        """The config file as stored (values checked when used, see `setting`)."""
        return read_config_file(self.paths.config_file)

    def setting(self, key: str) -> Any:
        """A config file value, checked (a bad one is exit 2), or None when unset."""
        value = self.file.get(key)
        if value is None:
            return None
        return validate_setting(key, value, f" in {self.paths.config_file}")

    @cached_property
    def key_source(self) -> KeySource | None:
        """The key by precedence: --api-key, RUNFLOW_API_KEY, our file, Runflow's shared file."""
        if self.api_key_flag:
            return KeySource(self.api_key_flag.strip(), "--api-key")
        env = self.environ.get(KEY_ENV, "").strip()
        if env:
            return KeySource(env, KEY_ENV)
        for path in (self.paths.credentials_file, shared_credentials_file()):
            key = _key_from_file(path)
            if key:
                return KeySource(key, str(path))
        return None

    def require_key(self) -> KeySource:
        if self.key_source is None:
            raise missing_key_error()
        return self.key_source

    @cached_property
    def base_url_source(self) -> tuple[str, str]:
        """The API base URL and where it came from; plain http only for loopback."""
        for value, origin in ((self.base_url_flag, "--base-url"),
                              (self.environ.get(BASE_URL_ENV), BASE_URL_ENV),
                              (self.file.get("base_url"), "config")):
            if value:
                url = normalize_base_url(str(value))
                if not is_allowed_url(url):
                    raise UsageError(
                        f"Refusing the base URL {redact_url(url)} from {origin}: it must be https "
                        "(plain http is allowed only for loopback addresses).",
                        hint="Check --base-url, RUNFLOW_BASE_URL or `runflow-bg config get base_url`.")
                return url, origin
        return DEFAULT_BASE_URL, "default"

    @property
    def base_url(self) -> str:
        return self.base_url_source[0]

    @cached_property
    def retries(self) -> int:
        """Attempts per request (RUNFLOW_BG_RETRIES, default 5 as Runflow's docs advise)."""
        value = self.environ.get(RETRIES_ENV, "").strip()
        if not value:
            return DEFAULT_RETRIES
        try:
            return _parse_positive_int(value)
        except ValueError:
            raise UsageError(f"{RETRIES_ENV} must be a whole number of at least 1.",
                             hint=f"Set {RETRIES_ENV} to a number such as 5, or unset it.") from None

    @cached_property
    def http_timeout(self) -> float:
        """Seconds one HTTP attempt may take (RUNFLOW_BG_HTTP_TIMEOUT, default 30)."""
        return _seconds(self.environ, HTTP_TIMEOUT_ENV, DEFAULT_HTTP_TIMEOUT, positive=True)

    @cached_property
    def create_grace(self) -> float:
        """Seconds to keep looking for a run whose create's answer was lost (default 30)."""
        return _seconds(self.environ, CREATE_GRACE_ENV, DEFAULT_CREATE_GRACE, positive=False)

    @cached_property
    def local_run_seconds(self) -> float:
        return _seconds(self.environ, LOCAL_RUN_SECONDS_ENV, DEFAULT_LOCAL_RUN_SECONDS,
                        positive=False)

    def out_dir(self, flag: Path | None) -> Path:
        return Path(flag or self.setting("out") or ".")

    def name_template(self, flag: str | None, columns: frozenset[str] = frozenset()) -> str:
        from runflow_bg.naming import DEFAULT_TEMPLATE, check_template

        return check_template(flag, columns) if flag else self.setting("name") or DEFAULT_TEMPLATE

    def wait_timeout(self, flag: str | None) -> str:
        return flag or self.setting("timeout") or DEFAULT_WAIT

    def concurrency(self, flag: int | None) -> int:
        value = flag if flag is not None else self.setting("concurrency") or DEFAULT_CONCURRENCY
        if value < 1:
            raise UsageError("-j/--concurrency must be at least 1.", hint="For example -j 4.")
        return value

    @property
    def github_actions(self) -> bool:
        return self.environ.get(GITHUB_ACTIONS_ENV) == "true"
