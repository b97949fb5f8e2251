"""The run list's `q` filter language and its opaque page cursors."""

from __future__ import annotations

import base64
import json
import re

_TERM = re.compile(r"\s*(client_ref|status_code)(?:\.EQ)?:(?:'([^']*)'|([^,']*))\s*(?:,|$)")


def parse_filter(q: str) -> list[tuple[str, str]] | None:
    """`client_ref.EQ:'x',status_code:succeeded` -> [(field, value), ...]; None when not understood."""
    terms, pos, q = [], 0, q.strip()
    while pos < len(q):
        match = _TERM.match(q, pos)
        if match is None:
            return None
        terms.append((match[1], match[2] if match[2] is not None else match[3].strip()))
        pos = match.end()
    return terms


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The offset a cursor stands for (0 without one); None for a cursor this API never gave out."""
    if cursor is None:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["offset"]
    except (ValueError, TypeError, KeyError):
        return None
    return offset if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0 else None
