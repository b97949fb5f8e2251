"""Download a run's outputs to disk: streamed, size-capped, atomic, never at a server-given name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from runflow_bg.client import ByteCallback, RunflowClient
from runflow_bg.errors import InputError, ProtocolError, RunflowBgError, UnavailableError
from runflow_bg.models import Run
from runflow_bg.naming import output_path, render
from runflow_bg.urls import is_allowed_url, redact_url

MAX_OUTPUT_BYTES = 200 * 1024 * 1024
_MAX_REDIRECTS = 5
_CHUNK = 256 * 1024
_CONTENT_TYPES = {"image/webp": "webp", "image/png": "png", "image/jpeg": "jpg",
                  "image/jpg": "jpg"}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"))


@dataclass(frozen=True)
class SavedFile:
    url: str
    path: Path


@dataclass(frozen=True)
class OutputNaming:
    """How to name a run's outputs: the template and its fields."""

    out_dir: Path
    template: str
    stem: str
    scene: str
    overwrite: bool = False


class _UrlExpired(Exception):
    """The output URL answered 403: read the run again for fresh URLs."""


def extension_for(content_type: str | None, head: bytes) -> str:
    """The file extension from the response's Content-Type, else from the bytes themselves."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _CONTENT_TYPES:
        return _CONTENT_TYPES[mime]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, ext in _MAGIC:
        if head.startswith(magic):
            return ext
    return "bin"


def _place(tmp: Path, final: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # fails instead of clobbering a file that appeared meanwhile
    except FileExistsError:
        raise InputError(f"{final} already exists.", hint="Add --overwrite to replace it.") from None
    tmp.unlink()


def _open(client: RunflowClient, url: str) -> httpx.Response:
    """GET a presigned URL without auth, following redirects only to https or loopback."""
    for _ in range(_MAX_REDIRECTS + 1):
        if not is_allowed_url(url):
            raise ProtocolError(f"Refusing to download from {redact_url(url)}: not https.")
        try:
            request = client.storage.build_request("GET", url)
        except httpx.InvalidURL:
            raise ProtocolError(f"Refusing the malformed output URL {redact_url(url)}.") from None
        response = client.storage.send(request, stream=True)
        if response.is_redirect and "location" in response.headers:
            response.close()
            url = urljoin(url, response.headers["location"])
            continue
        return response
    raise ProtocolError(f"Too many redirects downloading {redact_url(url)}.")


def _fetch_one(client: RunflowClient, url: str, naming: OutputNaming, index: int, run_id: str,
               on_bytes: ByteCallback | None) -> Path:
    """One attempt at one output; raises httpx errors for the caller's retry loop."""
    response = _open(client, url)
    try:
        if response.status_code == 403:
            raise _UrlExpired()
        if response.status_code == 429 or response.status_code >= 500:
            raise UnavailableError(f"Downloading {redact_url(url)} failed (HTTP {response.status_code}).")
        if not response.is_success:
            raise ProtocolError(f"Downloading {redact_url(url)} failed (HTTP {response.status_code}).")
        length = response.headers.get("content-length")
        total = int(length) if length and length.isdigit() else 0
        if total > MAX_OUTPUT_BYTES:
            raise ProtocolError(f"Refusing a {total:,}-byte output from {redact_url(url)} "
                                f"(more than {MAX_OUTPUT_BYTES // 1_000_000} MB).")
        naming.out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".runflow-bg-", suffix=".part", dir=naming.out_dir)
        tmp = Path(tmp_name)
        try:
            done, head = 0, b""
            with os.fdopen(fd, "wb") as handle:
                for chunk in response.iter_bytes(_CHUNK):
                    done += len(chunk)
                    if done > MAX_OUTPUT_BYTES:
                        raise ProtocolError(f"The output from {redact_url(url)} is over "
                                            f"{MAX_OUTPUT_BYTES // 1_000_000} MB; refused.")
                    if len(head) < 16:
                        head += chunk[:16]
                    handle.write(chunk)
                    if on_bytes:
                        on_bytes(done, total)
            if total and done != total:
                raise httpx.RemoteProtocolError("short body")
            relative = render(naming.template, stem=naming.stem, scene=naming.scene, index=index,
                              run_id=run_id, ext=extension_for(response.headers.get("content-type"), head))
            final = output_path(naming.out_dir, relative)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o644)
            _place(tmp, final, naming.overwrite)
            return final
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        response.close()


def download_outputs(client: RunflowClient, run: Run, naming: OutputNaming,
                     on_bytes: Callable[[int, int, int], None] | None = None,
                     refresh: Callable[[], Run] | None = None) -> list[SavedFile]:
    """Save every output of a finished run; expired URLs are replaced by reading the run again.

    `on_bytes(index, done, total)` reports progress; `refresh` reads the run for fresh URLs.
    """
    if not run.output_urls:
        raise ProtocolError(f"Run {run.id} succeeded but lists no output URL.", run_id=run.id)
    refresh = refresh or (lambda: client.get_run(run.id))
    saved = []
    for index, url in enumerate(run.output_urls):
        progress = (lambda done, total, i=index: on_bytes(i, done, total)) if on_bytes else None
        path = _download_with_retries(client, url, naming, index, run.id, progress,
                                      lambda i=index: _fresh_url(refresh, i))
        saved.append(SavedFile(url, path))
    return saved


def _fresh_url(refresh: Callable[[], Run], index: int) -> str:
    run = refresh()
    if index >= len(run.output_urls):
        raise ProtocolError(f"Run {run.id} no longer lists output {index + 1}.", run_id=run.id)
    return run.output_urls[index]


def _download_with_retries(client: RunflowClient, url: str, naming: OutputNaming, index: int,
                           run_id: str, on_bytes: ByteCallback | None,
                           fresh_url: Callable[[], str]) -> Path:
    attempt, refreshed = 0, 0
    while True:
        attempt += 1
        try:
            return _fetch_one(client, url, naming, index, run_id, on_bytes)
        except _UrlExpired:
            if refreshed >= 2:
                raise UnavailableError(
                    f"The output URL of run {run_id} keeps answering 403 (expired).",
                    run_id=run_id, hint=f"Try `runflow-bg runs download {run_id}` later.") from None
            refreshed += 1
            url = fresh_url()
            continue
        except (httpx.TransportError, UnavailableError) as exc:
            if attempt >= client.retry.max_attempts:
                if isinstance(exc, RunflowBgError):
                    exc.run_id = run_id
                    exc.hint = f"Run `runflow-bg runs download {run_id}` to try again."
                    raise
                raise UnavailableError(
                    f"Downloading the output of run {run_id} from {redact_url(url)} failed "
                    "(the connection dropped or timed out).", run_id=run_id,
                    hint=f"Run `runflow-bg runs download {run_id}` to try again.") from None
        client.sleep(client.retry.delay(attempt))
