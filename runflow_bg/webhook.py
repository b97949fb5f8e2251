"""Runflow's signed callbacks: hex HMAC-SHA256 of the raw body, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json

from runflow_bg.errors import InputError


def sign(secret: str, body: bytes) -> str:
    """The lowercase hex signature Runflow sends for `body`; the key is the whole secret string."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid(secret: str, body: bytes, signature: str) -> bool:
    """True when `signature` is the body's signature (hex, any case, surrounding space ignored)."""
    given = signature.strip().lower().encode("ascii", "replace")
    return hmac.compare_digest(sign(secret, body).encode(), given)


def parse_event(body: bytes) -> dict:
    """The callback payload as an object; InputError when it is not a JSON object."""
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InputError("The callback body is not JSON.") from None
    if not isinstance(event, dict):
        raise InputError("The callback body is not a JSON object.")
    return event
