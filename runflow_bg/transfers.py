"""Presigned transfers: bytes up to a storage URL, an output URL's body down into a file.

Neither carries the API key (presigned URLs hold their own credentials). Both go through the
transport's one retry policy; a 403 means the URL expired, which only the caller can mend by
asking the API for a fresh one. Downloads follow redirects only to https or loopback, are
size-capped, and are counted in raw bytes against Content-Length, so gzip-encoded ones pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin

import httpx

from runflow_bg.errors import ProtocolError, UnavailableError
from runflow_bg.transport import TRANSFER_RATE, Attempt, Transport, retryable_status
from runflow_bg.urls import is_allowed_url, redact_url

MAX_OUTPUT_BYTES = 200 * 1024 * 1024
MAX_REDIRECTS = 5
CHUNK = 256 * 1024

ByteCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes total) as a transfer progresses."""


class UrlExpired(Exception):
    """The presigned URL answered 403: it expired; ask the API for a fresh one."""


@dataclass(frozen=True)
class Fetched:
    """What a download brought: its declared type, first bytes and size."""

    content_type: str | None
    head: bytes
    size: int


def put(transport: Transport, url: str, data: bytes | BinaryIO, mime_type: str,
        on_bytes: ByteCallback | None = None) -> None:
    """PUT `data` (bytes, or a seekable file read from its start on each attempt) to a presigned
    upload URL; UrlExpired on 403."""
    if not is_allowed_url(url):
        raise ProtocolError(f"Refusing the upload URL {redact_url(url)}: not https.")
    total = len(data) if isinstance(data, bytes) else data.seek(0, 2)

    def body() -> Iterator[bytes]:
        done = 0
        for chunk in _chunks(data):
            done += len(chunk)
            yield chunk
            if on_bytes:
                on_bytes(done, total)

    reply = transport.request("PUT", url, what="storage", body=body, slack=total / TRANSFER_RATE,
                              headers={"Content-Type": mime_type, "Content-Length": str(total)})
    if reply.status_code == 403:
        raise UrlExpired()
    if not reply.is_success:
        raise UnavailableError(f"The storage host refused the upload (HTTP {reply.status_code}) "
                               f"at {redact_url(url)}.")


def _chunks(data: bytes | BinaryIO) -> Iterator[bytes]:
    if isinstance(data, bytes):
        for start in range(0, len(data), CHUNK):
            yield data[start:start + CHUNK]
        return
    data.seek(0)
    while chunk := data.read(CHUNK):
        yield chunk


def download(transport: Transport, url: str, sink: BinaryIO,
             on_bytes: ByteCallback | None = None) -> Fetched:
    """Stream an output URL into `sink` (rewritten from the start on each attempt)."""
    for _ in range(MAX_REDIRECTS + 1):
        if not is_allowed_url(url):
            raise ProtocolError(f"Refusing to download from {redact_url(url)}: not https.")
        result = transport.exchange(
            "GET", url, lambda response, attempt: _receive(response, attempt, url, sink, on_bytes))
        if isinstance(result, Fetched):
            return result
        url = result
    raise ProtocolError(f"Too many redirects downloading {redact_url(url)}.")


def _receive(response: httpx.Response, attempt: Attempt, url: str, sink: BinaryIO,
             on_bytes: ByteCallback | None) -> Fetched | str:
    """The body into `sink`, or the next URL of a redirect."""
    status = response.status_code
    if response.is_redirect and "location" in response.headers:
        return urljoin(url, response.headers["location"])
    if status == 403:
        raise UrlExpired()
    if retryable_status(status):
        raise UnavailableError(f"Downloading {redact_url(url)} failed (HTTP {status}).")
    if not response.is_success:
        raise ProtocolError(f"Downloading {redact_url(url)} failed (HTTP {status}).")
    length = response.headers.get("content-length", "")
    total = int(length) if length.isdigit() else 0
    if total > MAX_OUTPUT_BYTES:
        raise ProtocolError(f"Refusing a {total:,}-byte output from {redact_url(url)} "
                            f"(more than {MAX_OUTPUT_BYTES // (1024 * 1024)} MiB).")
    attempt.extend(total / TRANSFER_RATE)
    sink.seek(0)
    sink.truncate()
    done, head = 0, b""
    for chunk in response.iter_bytes(CHUNK):
        done += len(chunk)
        if done > MAX_OUTPUT_BYTES:
            raise ProtocolError(f"The output from {redact_url(url)} is over "
                                f"{MAX_OUTPUT_BYTES // (1024 * 1024)} MiB; refused.")
        if len(head) < 16:
            head += chunk[:16]
        sink.write(chunk)
        if on_bytes:
            on_bytes(done, total)
        attempt.check(response.request)
    if total and response.num_bytes_downloaded != total:
        raise httpx.RemoteProtocolError("the body was shorter than announced",
                                        request=response.request)
    return Fetched(response.headers.get("content-type"), head[:16], done)
