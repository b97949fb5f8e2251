"""Pack the photo and the scene into the zip the model reads its inputs from."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass

from runflow_bg.errors import InputError
from runflow_bg.images import PreparedImage

MAX_ZIP_BYTES = 52_428_800
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Package:
    """The zip's bytes and the names the create request refers to."""

    data: bytes
    image_member: str
    reference_member: str
    members: tuple[tuple[str, int], ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def pack(photo: PreparedImage, scene: PreparedImage) -> Package:
    """A zip with `image.<ext>` and `reference.<ext>`, stored (images are compressed already).

    Timestamps are fixed so that the same inputs always give the same bytes.
    """
    image_member = f"image.{photo.ext}"
    reference_member = f"reference.{scene.ext}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for member, image in ((image_member, photo), (reference_member, scene)):
            info = zipfile.ZipInfo(member, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, image.data)
    data = buffer.getvalue()
    if len(data) > MAX_ZIP_BYTES:
        raise InputError(
            f"The inputs zip would be {len(data):,} bytes; Runflow accepts at most "
            f"{MAX_ZIP_BYTES:,} (50 MiB).",
            hint="Use smaller images (for example JPEG instead of PNG).")
    members = ((image_member, len(photo.data)), (reference_member, len(scene.data)))
    return Package(data, image_member, reference_member, members)
