"""URL rules: https everywhere except loopback, and no query strings in messages."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

DEFAULT_BASE_URL = "https://api.runflow.io"
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1, the only hosts allowed plain http."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_allowed_url(url: str) -> bool:
    """True for an https URL, or an http URL whose host is a loopback address."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and is_loopback_host(parts.hostname)


def is_url(name: str) -> bool:
    """True when an input is named as `scheme://...`: fetched (or refused), never a file."""
    return bool(_SCHEME.match(name))


def input_label(name: str) -> str:
    """How an input is shown and recorded: a URL without its query (which may be a signature),
    a file name as given."""
    return redact_url(name) if is_url(name) else name


def redact_url(url: str) -> str:
    """The URL without its query, fragment or credentials, safe to print."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unprintable URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def same_origin(a: str, b: str) -> bool:
    """True when both URLs have the same scheme, host and port."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def normalize_base_url(url: str) -> str:
    """Strip a trailing slash and a trailing `/v1`, which users often paste."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url
