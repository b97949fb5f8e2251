"""Paged lists: `limit`, opaque `pq` cursors walked either way, and the envelope a knob chooses."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

from runflow_bg.emulator.query import QueryError
from runflow_bg.emulator.wire import Reject, api_error

DEFAULT_LIMIT = 20
MAX_LIMIT = 500


@dataclass(frozen=True)
class Window:
    """Which slice of a list to answer: `limit` items after `offset`, or before it when `backward`."""

    limit: int
    offset: int = 0
    backward: bool = False

    @classmethod
    def parse(cls, query: dict[str, str]) -> Window:
        """From `limit`, `pq` and `from_prev`; QueryError names the first bad one."""
        limit = _limit(query.get("limit"))
        offset, backward = _cursor(query.get("pq"))
        from_prev = _flag(query.get("from_prev"))
        return cls(limit, offset, (backward or from_prev) and bool(query.get("pq")))

    @classmethod
    def from_query(cls, query: dict[str, str]) -> Window:
        """As parse(), for a list that takes nothing else: a bad parameter is a 422."""
        return checked(lambda: cls.parse(query))[0]

    def page(self, items: list, envelope: str) -> dict:
        """This window's items with cursors to the pages beside it, as `envelope` spells them."""
        if self.backward:
            stop = min(self.offset, len(items))
            start = max(0, stop - self.limit)
        else:
            start = self.offset
            stop = min(start + self.limit, len(items))
        after = _encode(stop, backward=False) if stop < len(items) else None
        before = _encode(start, backward=True) if start > 0 else None
        if envelope == "next_pq":
            return {"items": items[start:stop], "next_pq": after, "prev_pq": before}
        return {"items": items[start:stop], "first": _encode(0, backward=False), "next": after,
                "previous": before}


def checked(*parsers: Callable[[], object]) -> list:
    """Each parser's result, or a 422 VALIDATION_ERROR naming every parameter that failed."""
    results, problems = [], []
    for parse in parsers:
        try:
            results.append(parse())
        except QueryError as exc:
            problems.append(exc)
    if problems:
        message = "Invalid request: " + "; ".join(f"{exc.param}: {exc}" for exc in problems) + "."
        raise Reject(api_error(422, "VALIDATION_ERROR", message,
                               [{"field": exc.param, "msg": str(exc)} for exc in problems]))
    return results


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
        raise QueryError("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(text)


def _flag(text: str | None) -> bool:
    if text is None or text.lower() in ("false", "0"):
        return False
    if text.lower() in ("true", "1"):
        return True
    raise QueryError("from_prev", "must be true or false")


def _encode(offset: int, backward: bool) -> str:
    data = json.dumps({"offset": offset, "back": backward}).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _cursor(cursor: str | None) -> tuple[int, bool]:
    """(offset, backward) of a cursor this API gave out; the list's start without one."""
    if not cursor:
        return 0, False
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, backward = data["offset"], data["back"]
    except (ValueError, TypeError, KeyError):
        offset = backward = None
    if type(offset) is not int or offset < 0 or type(backward) is not bool:
        raise QueryError("pq", "is not a cursor this API gave out")
    return offset, backward
