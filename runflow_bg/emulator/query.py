"""The run list's `q`, `sort_by` and `fields`, checked up front so a bad query is a 422, never an empty page.

`q` grammar (precedence NOT > AND > OR, parentheses group):
    comparison := FIELD OP VALUE | FIELD "." SUFFIX ":" VALUE
    OP := "=" | ":" | ">" | "<" | ">=" | "<="    SUFFIX := EQ | NE | GT | GE | LT | LE
    VALUE := 'text' | "text" | bare text without spaces, quotes or parentheses (bare `null`: no value)
Strings compare case-sensitively; timestamps (`2026-04-01` or full ISO) and numbers by value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

TIMESTAMPS = frozenset({"created_at", "started_at", "completed_at", "finished_at"})
NUMBERS = frozenset({"duration_ms", "cost", "nodes_total", "nodes_completed"})
BOOLEANS = frozenset({"has_logs", "has_node_runs"})
# The reference's scalar Run fields, and the SDK's names the view may show; absent ones read as null.
SCALARS = TIMESTAMPS | NUMBERS | BOOLEANS | frozenset({
    "id", "flow_id", "model_id", "model", "comfyui_workflow_id", "target_type", "target_version", "org_id",
    "status_code", "source_code", "resolved_template_id", "batch_id", "client_ref", "jurisdiction_code",
    "flow_version_id", "request_id", "created_by", "callback_url", "failure_code", "failure_message",
    "failure_stage_code", "failure_stage",
})
STRUCTURED = frozenset({"input", "output", "context", "cost_breakdown", "metadata", "links", "node_runs",
                        "logs", "flow", "error"})  # projected by `fields`, never compared
DEFAULT_SORT = "created_at:desc"
SUFFIXES = {"EQ": "=", "NE": "!=", "GT": ">", "GE": ">=", "LT": "<", "LE": "<="}
_TOKEN = re.compile(r"""\s*(?:
    (?P<field>[A-Za-z_]\w*)(?:\.(?P<suffix>[A-Za-z]+))?\s*(?P<op>>=|<=|=|:|>|<)\s*
        (?:'(?P<single>[^']*)'|"(?P<double>[^"]*)"|(?P<bare>[^\s()'"]+))
  | (?P<keyword>AND|OR|NOT)\b
  | (?P<paren>[()])
)""", re.X)
_TESTS: dict[str, Callable[[object, object], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
}

Row = dict
Match = Callable[[Row], bool]


class QueryError(ValueError):
    """A query parameter the API refuses: `param` names it, the message says why."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def parse_q(q: str) -> Match:
    """A predicate over run views for the filter `q` (empty: every run)."""
    tokens = _tokens(q)
    if not tokens:
        return lambda row: True
    parser = _Parser(tokens)
    match = parser.expression()
    if parser.peek() is not None:
        raise QueryError("q", f"expected AND, OR or the end before {parser.peek()[2]!r}")
    return match


def parse_sort(sort_by: str) -> list[tuple[str, bool]]:
    """`created_at:desc,client_ref:asc` -> [(field, descending), ...]."""
    keys = []
    for part in sort_by.split(","):
        name, _, direction = part.strip().partition(":")
        if direction.lower() not in ("asc", "desc", ""):
            raise QueryError("sort_by", f"direction {direction!r} is not asc or desc")
        keys.append((_comparable(name, "sort_by"), direction.lower() == "desc"))
    return keys


def parse_fields(fields: str) -> list[str] | None:
    """The fields to keep in each item, in order; None keeps them all."""
    if not fields.strip():
        return None
    names = [name.strip() for name in fields.split(",")]
    for name in names:
        if name not in SCALARS | STRUCTURED:
            raise QueryError("fields", f"unknown field {name!r}")
    return list(dict.fromkeys(names))


def sort_rows(rows: list[Row], keys: list[tuple[str, bool]]) -> list[Row]:
    """Rows ordered by each key in turn, nulls last; ties keep the order they came in."""
    for name, descending in reversed(keys):
        present = [row for row in rows if row.get(name) is not None]
        present.sort(key=lambda row: _typed(name, row[name]), reverse=descending)
        rows = present + [row for row in rows if row.get(name) is None]
    return rows


def project(row: Row, fields: list[str] | None) -> Row:
    return row if fields is None else {name: row.get(name) for name in fields}


def _tokens(q: str) -> list[tuple[str, object, str]]:
    """(kind, comparison or word, source text) for each comparison, keyword and parenthesis."""
    tokens, pos, q = [], 0, q.rstrip()
    while pos < len(q):
        token = _TOKEN.match(q, pos)
        if token is None:
            raise QueryError("q", f"cannot read {q[pos:].strip()[:40]!r}; expected a comparison "
                                  "like status_code:succeeded")
        pos, text = token.end(), token[0].strip()
        if token["field"]:
            tokens.append(("test", _comparison(token), text))
        else:
            tokens.append(("word", text, text))
    return tokens


def _comparison(token: re.Match) -> Match:
    name, op = _comparable(token["field"], "q"), token["op"]
    if token["suffix"]:
        suffix = token["suffix"].upper()
        if suffix not in SUFFIXES or op != ":":
            raise QueryError("q", f"{name}.{token['suffix']}{op} is not one of "
                                  f"{', '.join(f'.{s}:' for s in SUFFIXES)}")
        op = SUFFIXES[suffix]
    op = "=" if op == ":" else op
    bare = token["bare"]
    if bare == "null":
        if op not in ("=", "!="):
            raise QueryError("q", f"{name}{op}null compares nothing; use = or .NE:")
        return lambda row: (row.get(name) is None) == (op == "=")
    text = bare if bare is not None else token["single"] if token["single"] is not None else token["double"]
    value, test = _literal(name, text), _TESTS[op]
    return lambda row: row.get(name) is not None and test(_typed(name, row[name]), value)


class _Parser:
    """Recursive descent over the tokens: OR of ANDs of (NOT) comparisons or groups."""

    def __init__(self, tokens: list[tuple[str, object, str]]):
        self.tokens, self.pos = tokens, 0

    def peek(self) -> tuple[str, object, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[:2] == ("word", word):
            self.pos += 1
            return True
        return False

    def expression(self) -> Match:
        terms = [self.conjunction()]
        while self.take("OR"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else lambda row: any(term(row) for term in terms)

    def conjunction(self) -> Match:
        terms = [self.negation()]
        while self.take("AND"):
            terms.append(self.negation())
        return terms[0] if len(terms) == 1 else lambda row: all(term(row) for term in terms)

    def negation(self) -> Match:
        if self.take("NOT"):
            inner = self.negation()
            return lambda row: not inner(row)
        if self.take("("):
            inner = self.expression()
            if not self.take(")"):
                raise QueryError("q", "a parenthesis is not closed")
            return inner
        token = self.peek()
        if token is None or token[0] != "test":
            raise QueryError("q", "ends early" if token is None else f"unexpected {token[2]!r}")
        self.pos += 1
        return token[1]


def _comparable(name: str, param: str) -> str:
    if name in STRUCTURED:
        raise QueryError(param, f"field {name!r} is an object and cannot be compared")
    if name not in SCALARS:
        raise QueryError(param, f"unknown field {name!r}")
    return name


def _literal(name: str, text: str) -> object:
    try:
        return _typed(name, text)
    except (ValueError, InvalidOperation, KeyError):
        kind = ("a date or ISO timestamp" if name in TIMESTAMPS else
                "a number" if name in NUMBERS else "true or false")
        raise QueryError("q", f"{name} needs {kind}, not {text!r}") from None


def _typed(name: str, value: object) -> object:
    """A stored value or a query's text as the field's type, so dates and amounts compare by value."""
    if name in TIMESTAMPS:
        stamp = datetime.fromisoformat(str(value))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    if name in NUMBERS:
        number = Decimal(str(value))
        if not number.is_finite():
            raise ValueError(value)
        return number
    if name in BOOLEANS:
        return {"true": True, "false": False}[str(value).lower()]
    return value if isinstance(value, str) else str(value)
