"""Photos and scenes given by URL: fetched once into the cache, then checked like files.

A URL is read at most once per command. Its bytes are kept in the cache folder (`inputs/`, keyed
by a hash of the whole URL, query included) with the validators the server gave; a later command
revalidates the copy (If-None-Match for an ETag, If-Modified-Since for a Last-Modified date) and
reuses it on 304. A copy kept without validators is reused as it is, unless the command asks to
fetch afresh (`--no-cache`).

Only https is fetched (plain http only from loopback hosts), on every redirect hop too, through a
client of its own that carries no API key and no Authorization header. Bodies are capped at the
size a file may have: by Content-Length first, then by counting the decoded bytes as they come (a
gzip bomb stops at the cap too). Retries and timeouts are the transport's one loop.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from runflow_bg import __version__
from runflow_bg.clock import Clock
from runflow_bg.errors import InputError, UnavailableError
from runflow_bg.fsutil import atomic_write_bytes, private_dir
from runflow_bg.images import MAX_INPUT_BYTES, InputFile
from runflow_bg.transfers import MAX_REDIRECTS
from runflow_bg.transport import (TRANSFER_RATE, Attempt, RetryPolicy, Transport, http_client,
                                  retryable_status)
from runflow_bg.urls import is_allowed_url, redact_url

ACCEPT = "image/png, image/jpeg, image/webp, image/*;q=0.8, */*;q=0.5"
_MAX_VALIDATOR = 512
_URL_HINT = "Give the image's https:// URL, or download it and give the file."


@dataclass(frozen=True)
class Fetched:
    """A whole image body and the validators that came with it."""

    data: bytes
    etag: str | None = None
    last_modified: str | None = None

    def conditions(self) -> dict[str, str]:
        """The headers that ask the server whether this copy is still current."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class NotModified:
    """The server's 304: the copy sent for is still current."""


def check_url(url: str) -> None:
    """Refuse, before any request, what is not https (plain http only for loopback hosts)."""
    if not is_allowed_url(url):
        raise InputError(f"Refusing {redact_url(url)}: only https URLs are fetched (plain http "
                         "only from this machine: localhost, 127.0.0.1, ::1).", hint=_URL_HINT)


def _validator(value: str | None) -> str | None:
    """A validator to send back as it came, if it is a plausible header value."""
    if value and len(value) <= _MAX_VALIDATOR and all(" " <= ch <= "~" for ch in value):
        return value
    return None


def _too_large(label: str, size: int | None = None) -> InputError:
    limit = MAX_INPUT_BYTES // (1024 * 1024)
    what = f"{size:,} bytes is" if size else "the body is"
    return InputError(f"{label}: {what} over Runflow's {limit} MiB limit; not fetched.",
                      hint="Use a smaller image.")


class InputCache:
    """URL inputs kept on disk: `<key>` holds the bytes, `<key>.json` their validators."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _paths(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()
        return self.folder / key, self.folder / f"{key}.json"

    def load(self, url: str) -> tuple[Path, Fetched] | None:
        """The kept copy of `url` and its validators, or None when there is no whole one."""
        body, meta = self._paths(url)
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            data = body.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or not data or info.get("bytes") != len(data):
            return None
        return body, Fetched(data, _validator(info.get("etag")),
                             _validator(info.get("last_modified")))

    def store(self, url: str, fetched: Fetched) -> Path | None:
        """Keep a copy (the bytes first, then what describes them); None when it cannot be
        written, which costs a fetch later, not this command."""
        body, meta = self._paths(url)
        record = {"url": redact_url(url), "bytes": len(fetched.data), "etag": fetched.etag,
                  "last_modified": fetched.last_modified}
        try:
            for folder in (self.folder.parent, self.folder):
                private_dir(folder)  # the cache folder, like the state folder: 0700
            atomic_write_bytes(body, fetched.data, 0o600)
            atomic_write_bytes(meta, json.dumps(record).encode(), 0o600)
        except OSError:
            return None
        return body


def open_transport(*, retry: RetryPolicy, timeout: float, clock: Clock,
                   log: Callable[[str], None] | None = None,
                   on_retry: Callable[[str], None] | None = None,
                   transport: httpx.BaseTransport | None = None) -> Transport:
    """A transport to image hosts: a client of its own, without the API key or any
    Authorization header, that follows no redirect by itself and trusts the certificates the
    API client trusts (SSL_CERT_FILE, SSL_CERT_DIR) and takes the same proxies."""
    http = http_client(headers={"User-Agent": f"runflow-bg/{__version__}", "Accept": ACCEPT},
                       transport=transport, follow_redirects=False, trust_env=True)
    return Transport(http, retry, clock, attempt_seconds=timeout, log=log,
                     name="The image host", on_retry=on_retry)


class UrlInputs:
    """Reads the URL inputs of one command: each URL at most once, through the cache.

    `connect` makes the transport when the first URL needs it; `refetch` fetches every URL
    afresh once, ignoring kept copies.
    """

    def __init__(self, cache: Path, connect: Callable[[], Transport], *,
                 refetch: bool = False, log: Callable[[str], None] | None = None) -> None:
        self._cache = InputCache(cache)
        self._connect = connect
        self._refetch = refetch
        self._log = log
        self._transport: Transport | None = None
        self._lock = threading.Lock()
        self._read: dict[str, Path | bytes] = {}  # read by this command: its copy, or its bytes

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def read(self, url: str) -> InputFile:
        """The image at `url`, shown by its URL without the query (a signature stays unseen)."""
        label = redact_url(url)
        with self._lock:
            kept = self._read.get(url)
        if isinstance(kept, bytes):
            return InputFile(label, kept)
        if kept is not None:
            try:
                return InputFile(label, kept.read_bytes())
            except OSError:
                pass  # removed meanwhile: fetched again
        data, copy = self._fetch(url, label)
        with self._lock:
            self._read[url] = copy or data
        return InputFile(label, data)

    def _fetch(self, url: str, label: str) -> tuple[bytes, Path | None]:
        check_url(url)
        kept = None if self._refetch else self._cache.load(url)
        if kept is not None and not kept[1].conditions():
            self._note(f"{label}: the kept copy has no validators; reused as it is")
            return kept[1].data, kept[0]
        answer = self._get(url, label, kept[1].conditions() if kept else {})
        if isinstance(answer, NotModified):
            kept = kept or self._cache.load(url)
            if kept is None:
                raise UnavailableError(f"{label}: the server answered 304 Not Modified to a "
                                       "request for the whole image.", hint="Try again later.")
            self._note(f"{label}: not modified; the kept copy is reused")
            return kept[1].data, kept[0]
        return answer.data, self._cache.store(url, answer)

    def _note(self, message: str) -> None:
        if self._log:
            self._log(message)

    def _open(self) -> Transport:
        with self._lock:
            if self._transport is None:
                self._transport = self._connect()
            return self._transport

    def _get(self, url: str, label: str, conditions: dict[str, str]) -> Fetched | NotModified:
        """GET with redirects followed here, each hop's scheme checked before it is asked."""
        transport = self._open()
        for _ in range(MAX_REDIRECTS + 1):
            answer = transport.exchange(
                "GET", url, lambda response, attempt, here=url: _receive(response, attempt, here,
                                                                         label),
                headers=conditions)
            if not isinstance(answer, str):
                return answer
            if not is_allowed_url(answer):
                raise InputError(f"{label} redirects to {redact_url(answer)}, which is not "
                                 "https; refused.", hint=_URL_HINT)
            url = answer
        raise InputError(f"{label}: more than {MAX_REDIRECTS} redirects; refused.",
                         hint=_URL_HINT)


def _receive(response: httpx.Response, attempt: Attempt, url: str,
             label: str) -> Fetched | NotModified | str:
    """The whole body, 304, or the next URL of a redirect; refused past the size cap."""
    status = response.status_code
    if response.is_redirect and "location" in response.headers:
        return urljoin(url, response.headers["location"])
    if status == 304:
        return NotModified()
    if status in (401, 403):
        raise InputError(f"{label}: the server refused access (HTTP {status}).",
                         hint="A signed URL may have expired: get a fresh one. runflow-bg sends "
                              "no credentials to image hosts.")
    if status in (404, 410):
        raise InputError(f"{label}: not found (HTTP {status}).",
                         hint="Check the URL; a signed URL may have expired.")
    if retryable_status(status):
        raise UnavailableError(f"{label}: the server answered HTTP {status}, also when tried "
                               "again.", hint="Try again later.")
    if not response.is_success:
        raise InputError(f"{label}: the server answered HTTP {status}.", hint=_URL_HINT)
    length = response.headers.get("content-length", "")
    declared = int(length) if length.isdigit() else 0
    if declared > MAX_INPUT_BYTES:
        raise _too_large(label, declared)
    attempt.extend(declared / TRANSFER_RATE)
    data = attempt.read_body(response, MAX_INPUT_BYTES, label, too_large=lambda: _too_large(label))
    if declared and response.num_bytes_downloaded != declared:
        raise httpx.RemoteProtocolError("the body was shorter than announced",
                                        request=response.request)
    return Fetched(data, _validator(response.headers.get("etag")),
                   _validator(response.headers.get("last-modified")))
