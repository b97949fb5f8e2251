"""Where settings live and which one wins: flag, environment, config file, default."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from runflow_bg.errors import AuthError, UsageError
from runflow_bg.fsutil import atomic_write_bytes, private_dir
from runflow_bg.urls import DEFAULT_BASE_URL, is_allowed_url, normalize_base_url, redact_url

APP_NAME = "runflow-bg"
HOME_ENV = "RUNFLOW_BG_HOME"
KEY_ENV = "RUNFLOW_API_KEY"
BASE_URL_ENV = "RUNFLOW_BASE_URL"
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

    @property
    def journal_file(self) -> Path:
        return self.state_dir / "journal.sqlite3"


def paths() -> Paths:
    """RUNFLOW_BG_HOME holds everything when set; otherwise the platform's user dirs."""
    home = os.environ.get(HOME_ENV)
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

def _parse_positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _parse_base_url(value: str) -> str:
    url = normalize_base_url(value)
    if not is_allowed_url(url):
        raise ValueError("must be an https URL (plain http only for loopback addresses)")
    return url


def _parse_duration_setting(value: str) -> str:
    from runflow_bg.durations import parse_duration

    parse_duration(value)
    return value


def _parse_template(value: str) -> str:
    from runflow_bg.naming import check_template

    return check_template(value)


SETTINGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "base_url": ("API base URL, without /v1", _parse_base_url),
    "concurrency": ("default -j for batch", _parse_positive_int),
    "out": ("default output directory", str),
    "timeout": ("default --timeout (90s, 10m, 1h)", _parse_duration_setting),
    "name": ("default --name template", _parse_template),
}


def load_config() -> dict[str, Any]:
    """The config file's settings; a missing file is an empty config."""
    path = paths().config_file
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc}.",
                         hint="Fix or delete the file; `runflow-bg config path` shows it.") from None
    if not isinstance(data, dict):
        raise UsageError(f"The config file {path} does not hold a JSON object.")
    return data


def check_setting_name(key: str) -> str:
    """The key itself when it is one of SETTINGS; UsageError naming the known ones otherwise."""
    if key not in SETTINGS:
        known = ", ".join(sorted(SETTINGS))
        raise UsageError(f"Unknown setting {key!r}.", hint=f"Known settings: {known}.")
    return key


def validate_setting(key: str, value: str) -> Any:
    check_setting_name(key)
    try:
        return SETTINGS[key][1](value)
    except ValueError as exc:
        raise UsageError(f"Invalid value for {key}: {exc}.",
                         hint=f"{key} is the {SETTINGS[key][0]}.") from None


def save_config(data: dict[str, Any]) -> None:
    path = paths().config_file
    private_dir(path.parent)
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), 0o600)


def config_value(key: str) -> Any:
    return load_config().get(key)


# -- API key and base URL --------------------------------------------------------------------

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


def find_api_key(flag: str | None) -> KeySource | None:
    """The key by precedence: --api-key, RUNFLOW_API_KEY, our file, Runflow's shared file."""
    if flag:
        return KeySource(flag.strip(), "--api-key")
    env = os.environ.get(KEY_ENV, "").strip()
    if env:
        return KeySource(env, KEY_ENV)
    for path in (paths().credentials_file, shared_credentials_file()):
        key = _key_from_file(path)
        if key:
            return KeySource(key, str(path))
    return None


def require_api_key(flag: str | None) -> KeySource:
    source = find_api_key(flag)
    if source is None:
        raise AuthError("No Runflow API key found.", hint=NO_KEY_HINT)
    return source


def save_api_key(key: str) -> Path:
    """Write the credentials file atomically, 0600 in a 0700 directory."""
    path = paths().credentials_file
    private_dir(path.parent)
    atomic_write_bytes(path, (json.dumps({"api_key": key}) + "\n").encode(), 0o600)
    return path


def resolve_base_url(flag: str | None) -> tuple[str, str]:
    """The API base URL and where it came from; plain http only for loopback."""
    for value, origin in ((flag, "--base-url"), (os.environ.get(BASE_URL_ENV), BASE_URL_ENV),
                          (config_value("base_url"), "config")):
        if value:
            url = normalize_base_url(str(value))
            if not is_allowed_url(url):
                raise UsageError(
                    f"Refusing the base URL {redact_url(url)} from {origin}: it must be https "
                    "(plain http is allowed only for loopback addresses).")
            return url, origin
    return DEFAULT_BASE_URL, "default"
