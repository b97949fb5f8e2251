"""Presigned URLs for uploads, asset files and outputs, checked the way a storage host checks them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import quote, unquote

UPLOAD_TTL = 15 * 60
ASSET_TTL = 60 * 60
OUTPUT_TTL = 3 * 24 * 60 * 60


class Links:
    """Builds and checks the emulator's signed URLs; the key lives only as long as the emulator."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self._key = secrets.token_bytes(32)

    def upload_url(self, asset_id: str) -> str:
        return self._signed(f"/storage/uploads/{asset_id}", UPLOAD_TTL)

    def asset_url(self, asset_id: str, filename: str) -> str:
        return self._signed(f"/files/assets/{asset_id}/{quote(filename, safe='')}", ASSET_TTL)

    def output_url(self, run_id: str, n: int, name: str | None = None) -> str:
        """`.../<n>.webp`, or `.../<n>/<name>` with the name percent-encoded whole, slashes included."""
        tail = f"{n}.webp" if name is None else f"{n}/{quote(name, safe='')}"
        return self._signed(f"/files/outputs/{quote(run_id, safe='')}/{tail}", OUTPUT_TTL)

    def check(self, path: str, query: dict[str, str]) -> tuple[str, str] | None:
        """None for a good, fresh signature; else the storage error (code, message) to answer."""
        sig, expires = query.get("sig", ""), query.get("expires", "")
        if not (expires.isascii() and expires.isdigit()):
            return "AccessDenied", "Query-string authentication requires the sig and expires parameters."
        if not hmac.compare_digest(sig.encode(), self._sign(path, expires).encode()):
            return "SignatureDoesNotMatch", "The request signature we calculated does not match."
        if int(expires) < time.time():
            return "AccessDenied", "Request has expired"
        return None

    def _signed(self, path: str, ttl: int) -> str:
        expires = str(int(time.time()) + ttl)
        return f"{self.base_url}{path}?sig={self._sign(path, expires)}&expires={expires}"

    def _sign(self, path: str, expires: str) -> str:
        # Signed over the decoded path, so a client's re-encoding of the URL does not break it.
        message = f"{unquote(path)}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
