"""Save a run's outputs to disk: atomic, named only by the template, never by the server.

The bytes come through the client (retries, caps and redirects live there); this module names
the file from the template and the response's type, writes it beside its final place, and links
it in only when whole. An expired output URL is replaced by reading the run again.
"""

from __future__ import annotations

import filecmp
import io
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runflow_bg.client import RunflowClient
from runflow_bg.errors import InputError, ProtocolError, UnavailableError
from runflow_bg.fsutil import (PART_SUFFIX, atomic_write_bytes, ensure_dir, part_prefix,
                               umask_mode)
from runflow_bg.models import Run
from runflow_bg.naming import output_path, render
from runflow_bg.outputs import Delivery
from runflow_bg.transfers import ByteCallback, Fetched, UrlExpired

_URL_REFRESHES = 2
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
    delivery: Delivery | None = None  # None: Runflow's bytes as they came


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


def place(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move a whole temporary file to its final name; without `overwrite`, never clobber.

    The same bytes already there (saved by an earlier command whose journal entry lags, or by
    another process settling the same run) count as placed.
    """
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # fails instead of clobbering a file that appeared meanwhile
    except FileExistsError:
        if not (final.is_file() and filecmp.cmp(tmp, final, shallow=False)):
            raise InputError(f"{final} already exists.",
                             hint="Add --overwrite to replace it.") from None
    tmp.unlink()


def check_image(source: Path | BinaryIO, fetched: Fetched, run_id: str) -> None:
    """An output must be an image before it takes its name: not an error page, not a stub."""
    from PIL import Image, UnidentifiedImageError
    from PIL import WebPImagePlugin  # noqa: F401  Runflow's format, known without loading all

    try:
        with Image.open(source) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        kind = (fetched.content_type or "no type").split(";")[0].strip()
        raise ProtocolError(f"The output of run {run_id} is not an image ({kind}, "
                            f"{fetched.size:,} bytes); it was not saved.", run_id=run_id,
                            hint=f"Try `runflow-bg runs download {run_id}` later.") from None


def _save_one(client: RunflowClient, url: str, naming: OutputNaming, index: int, run_id: str,
              on_bytes: ByteCallback | None) -> Path:
    """Download output `index`, keep its original, and place the delivered file."""
    delivery = naming.delivery
    kept = delivery.original(run_id, index) if delivery is not None else None
    if kept is not None:  # made from the copy kept earlier: nothing to download
        return _place_delivered(kept.read_bytes(), kept.suffix.lstrip("."), naming, index, run_id)
    if delivery is None:  # Runflow's bytes as they are: streamed to disk, never held whole
        with _part_file(naming.out_dir, index, run_id) as (handle, tmp):
            try:
                fetched = client.download(url, handle, on_bytes)
                handle.flush()
            except OSError as exc:  # the disk, not the network: the transport raises none
                raise _unwritable(tmp, exc, run_id) from None
            check_image(tmp, fetched, run_id)
            return _place(tmp, naming, index, run_id,
                          extension_for(fetched.content_type, fetched.head))
    # Delivering reads the whole original anyway: it is received in memory, not via the disk.
    received = io.BytesIO()
    fetched = client.download(url, received, on_bytes)
    check_image(received, fetched, run_id)
    ext = extension_for(fetched.content_type, fetched.head)
    original = received.getvalue()
    delivery.keep(run_id, index, original, ext)
    return _place_delivered(original, ext, naming, index, run_id)


def _place_delivered(original: bytes, ext: str, naming: OutputNaming, index: int,
                     run_id: str, *, replace: bool = False) -> Path:
    """Make the delivered file from Runflow's original, place it, and write its sidecar."""
    data, ext = naming.delivery.make(original, run_id)
    with _part_file(naming.out_dir, index, run_id) as (handle, tmp):
        try:
            handle.write(data)
            handle.flush()
        except OSError as exc:
            raise _unwritable(tmp, exc, run_id) from None
        final = _place(tmp, naming, index, run_id, ext, replace=replace)
    naming.delivery.write_sidecar(final, run_id, data)
    return final


@contextmanager
def _part_file(folder: Path, index: int, run_id: str):
    """A temporary file beside the outputs, removed whatever happens to it."""
    try:
        ensure_dir(folder)
        fd, tmp_name = tempfile.mkstemp(prefix=part_prefix(f"run-{index}"), suffix=PART_SUFFIX,
                                        dir=folder)
    except OSError as exc:
        raise _unwritable(folder, exc, run_id) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as handle:
            yield handle, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _place(tmp: Path, naming: OutputNaming, index: int, run_id: str, ext: str, *,
           replace: bool = False) -> Path:
    relative = render(naming.template, stem=naming.stem, scene=naming.scene, index=index,
                      run_id=run_id, ext=ext)
    final = output_path(naming.out_dir, relative)
    try:
        ensure_dir(final.parent)
        os.chmod(tmp, umask_mode())
        place(tmp, final, naming.overwrite or replace)
    except OSError as exc:
        raise _unwritable(final, exc, run_id) from None
    return final


def reuse_output(source: Path, naming: OutputNaming, index: int, run_id: str) -> Path:
    """An output paid for earlier, saved under this request's name: made from the kept original
    when there is one (so a new format or preset applies), else copied as it is."""
    kept = naming.delivery.original(run_id, index) if naming.delivery is not None else None
    if kept is not None:
        return _place_delivered(kept.read_bytes(), kept.suffix.lstrip("."), naming, index,
                                run_id, replace=True)
    ext = source.suffix.lstrip(".") or "bin"
    target = output_path(naming.out_dir, render(naming.template, stem=naming.stem,
                                                scene=naming.scene, index=index, run_id=run_id,
                                                ext=ext))
    if target.resolve() != source.resolve():
        atomic_write_bytes(target, source.read_bytes(), umask_mode())
    return target


def _unwritable(path: Path, exc: OSError, run_id: str) -> InputError:
    """A full disk or a read-only folder after a paid run: say where, and how to get it later."""
    return InputError(f"Cannot write {path} ({exc.strerror or exc}); run {run_id} succeeded, "
                      "and its outputs stay downloadable for a while.", run_id=run_id,
                      code="CANNOT_WRITE_OUTPUT",
                      hint=f"Free some space or fix the folder, then run "
                           f"`runflow-bg runs download {run_id}`.")


def download_outputs(client: RunflowClient, run: Run, naming: OutputNaming,
                     on_bytes: Callable[[int, int, int], None] | None = None) -> list[SavedFile]:
    """Save every output of a finished run; `on_bytes(index, done, total)` reports progress."""
    if not run.output_urls:
        raise ProtocolError(f"Run {run.id} succeeded but lists no output URL.", run_id=run.id)
    saved = []
    for index, url in enumerate(run.output_urls):
        progress = (lambda done, total, i=index: on_bytes(i, done, total)) if on_bytes else None
        for refreshes in range(_URL_REFRESHES + 1):
            try:
                path = _save_one(client, url, naming, index, run.id, progress)
                break
            except UrlExpired:
                if refreshes == _URL_REFRESHES:
                    raise UnavailableError(
                        f"The output URL of run {run.id} keeps answering 403 (expired).",
                        run_id=run.id,
                        hint=f"Try `runflow-bg runs download {run.id}` later.") from None
                url = _fresh_url(client, run.id, index)
            except UnavailableError as exc:
                exc.run_id = run.id
                exc.message = f"Downloading the output of run {run.id} failed: {exc.message}"
                exc.hint = f"Run `runflow-bg runs download {run.id}` to try again."
                raise
        saved.append(SavedFile(url, path))
    return saved


def _fresh_url(client: RunflowClient, run_id: str, index: int) -> str:
    run = client.get_run(run_id)
    if index >= len(run.output_urls):
        raise ProtocolError(f"Run {run.id} no longer lists output {index + 1}.", run_id=run.id)
    return run.output_urls[index]
