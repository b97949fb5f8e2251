"""Pack the photo and the scene into the zip the model reads its inputs from.

The zip is written a piece at a time from the images' own files, into memory while it is
small and else into an anonymous temporary file, so a large photo is never held in memory;
the upload reads it back from there.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from runflow_bg.errors import InputError
from runflow_bg.images import PreparedImage

MAX_ZIP_BYTES = 52_428_800
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
_COPY_CHUNK = 1024 * 1024
IN_MEMORY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Package:
    """The zip (in memory, or in a temporary file that goes when it is closed or with the
    process) and the names the create request refers to."""

    file: BinaryIO
    size: int
    image_member: str
    reference_member: str
    members: tuple[tuple[str, int], ...]


def pack(photo: PreparedImage, scene: PreparedImage) -> Package:
    """A zip with `image.<ext>` and `reference.<ext>`, stored (images are compressed already).

    Timestamps are fixed so that the same inputs always give the same bytes.
    """
    image_member = f"image.{photo.ext}"
    reference_member = f"reference.{scene.ext}"
    members = ((image_member, photo.byte_size), (reference_member, scene.byte_size))
    if sum(size for _, size in members) > MAX_ZIP_BYTES:
        _too_large(sum(size for _, size in members))
    file = tempfile.SpooledTemporaryFile(IN_MEMORY_BYTES, prefix="runflow-bg-inputs-",
                                         suffix=".zip")
    try:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
            for (member, size), image in zip(members, (photo, scene)):
                info = zipfile.ZipInfo(member, date_time=_FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.file_size = size
                with image.open() as source, archive.open(info, "w") as target:
                    shutil.copyfileobj(source, target, _COPY_CHUNK)
        size = file.tell()
        if size > MAX_ZIP_BYTES:
            _too_large(size)
    except BaseException:
        file.close()
        raise
    return Package(file, size, image_member, reference_member, members)


def _too_large(size: int) -> None:
    raise InputError(
        f"The inputs zip would be {size:,} bytes; Runflow accepts at most "
        f"{MAX_ZIP_BYTES:,} (50 MiB).",
        hint="Use smaller images (for example JPEG instead of PNG).")
