"""Typed results of the Runflow API, parsed from every shape the service is known to send."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from runflow_bg.errors import ProtocolError

PENDING_STATUSES = frozenset({"queued", "dispatching", "running"})
SUCCESS_STATUSES = frozenset({"succeeded", "partial_succeeded"})
FAILURE_STATUSES = frozenset({"failed", "errored", "canceled", "cancelled"})
CANCELED_STATUSES = frozenset({"canceled", "cancelled"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_TEXT = 500


class RunState(str, Enum):
    """Where a run stands, whatever spelling the service used for its status."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def classify_status(status: str) -> RunState:
    """Map a status spelling to its state; an unknown status means "not finished yet"."""
    status = status.lower()
    if status in SUCCESS_STATUSES:
        return RunState.SUCCEEDED
    if status in FAILURE_STATUSES:
        return RunState.FAILED
    return RunState.PENDING


def clean_text(value: Any, limit: int = _MAX_TEXT) -> str:
    """A server-given string made safe to print: no control characters, bounded length."""
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Run:
    """One run of a model, as far as the tool needs to know it."""

    id: str
    status: str
    output_urls: tuple[str, ...] = ()
    client_ref: str | None = None
    cost: str | None = None
    duration_ms: int | None = None
    created_at: str | None = None
    completed_at: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    metadata: dict | None = None
    input: dict | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def state(self) -> RunState:
        return classify_status(self.status)

    @property
    def finished(self) -> bool:
        return self.state is not RunState.PENDING

    @property
    def canceled(self) -> bool:
        return self.status in CANCELED_STATUSES


@dataclass(frozen=True)
class RunPage:
    """One page of a run listing and the cursor of the next page, if any."""

    items: tuple[Run, ...]
    next_cursor: str | None = None


@dataclass(frozen=True)
class UploadSession:
    """Step one of an upload: where to PUT the bytes, and the asset they become."""

    asset_id: str
    upload_url: str


@dataclass(frozen=True)
class Asset:
    """A confirmed upload; `url` is a short-lived signed URL to pass as `zip_url`."""

    id: str
    url: str
    name: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class ErrorBody:
    """What an error answer said, whichever of the known body shapes it used."""

    code: str | None = None
    message: str | None = None
    field_errors: tuple[str, ...] = ()
    request_id: str | None = None

    def describe(self) -> str:
        parts = [self.message] if self.message else []
        parts.extend(self.field_errors)
        return "; ".join(parts)


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return clean_text(value)


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _url_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("url", "image_url", "output_url"):
            if isinstance(item.get(key), str):
                return item[key]
    return None


def _is_image_type(kind: Any) -> bool:
    """An output entry's `type`: missing, `image`, or an image MIME type such as image/webp."""
    if kind is None:
        return True
    return isinstance(kind, str) and (kind.lower() == "image" or kind.lower().startswith("image/"))


def _failure_of(data: dict) -> tuple[Any, Any]:
    """A failed run's code and message: its failure_* fields, else `error`, else the error
    envelope a failed run's `output` carries."""
    for source in (data, data.get("error"), data.get("output")):
        if not isinstance(source, dict):
            continue
        code = source.get("failure_code") if source is data else source.get("code")
        message = source.get("failure_message") if source is data else source.get("message")
        if code or message:
            return code, message
    return None, None


def extract_output_urls(output: Any) -> tuple[str, ...]:
    """Every output URL, from each output shape seen: image_urls, outputs[], image, url."""
    if output is None:
        return ()
    if isinstance(output, (str, list)):
        candidates = output if isinstance(output, list) else [output]
    elif isinstance(output, dict):
        candidates = []
        for key in ("image_urls", "outputs", "images", "image", "url", "output_url"):
            value = output.get(key)
            if value is None:
                continue
            candidates = value if isinstance(value, list) else [value]
            if candidates:
                break
    else:
        raise ProtocolError(f"Runflow's answer has a run output of an unexpected type "
                            f"({type(output).__name__}).")
    urls = []
    for item in candidates:
        if isinstance(item, dict) and not _is_image_type(item.get("type")):
            continue
        url = _url_of(item)
        if url:
            urls.append(url)
    return tuple(urls)


def parse_run(data: Any) -> Run:
    """A Run from a run object (or a create answer, or a callback payload)."""
    if not isinstance(data, dict):
        raise ProtocolError("Runflow answered with something that is not a run object.")
    run_id = data.get("id") or data.get("run_id")
    run_id = clean_text(run_id, 128) if isinstance(run_id, str) else ""
    if not run_id:
        raise ProtocolError("Runflow's answer has no run id (neither `id` nor `run_id`).")
    status = data.get("status_code", data.get("status"))
    if not isinstance(status, str) or not status.strip():
        raise ProtocolError(f"Runflow's answer for run {run_id} has no status.")
    metadata = data.get("metadata")
    run_input = data.get("input")
    status = clean_text(status, 64).lower()
    state = classify_status(status)
    output = data.get("output") if state is RunState.SUCCEEDED else None
    failure_code, failure_message = _failure_of(data) if state is RunState.FAILED else (
        data.get("failure_code"), data.get("failure_message"))
    return Run(
        id=run_id,
        status=status,
        output_urls=extract_output_urls(output),
        client_ref=_opt_str(data.get("client_ref")),
        cost=_opt_str(data.get("cost")),
        duration_ms=_opt_int(data.get("duration_ms")),
        created_at=_opt_str(data.get("created_at")),
        completed_at=_opt_str(data.get("completed_at") or data.get("finished_at")),
        failure_code=_opt_str(failure_code),
        failure_message=_opt_str(failure_message),
        metadata=metadata if isinstance(metadata, dict) else None,
        input=run_input if isinstance(run_input, dict) else None,
        raw=data,
    )


def parse_run_page(data: Any) -> RunPage:
    """A page of runs from `{"items": [...], "next_pq" or "next": ...}` (or a bare list)."""
    if isinstance(data, list):
        items, cursor = data, None
    elif isinstance(data, dict):
        items = data.get("items", data.get("runs", data.get("data", [])))
        cursor = data.get("next_pq") or data.get("next") or data.get("next_cursor")
    else:
        raise ProtocolError("Runflow's run listing is not a list of runs.")
    if not isinstance(items, list):
        raise ProtocolError("Runflow's run listing has no list of items.")
    return RunPage(
        items=tuple(parse_run(item) for item in items),
        next_cursor=cursor if isinstance(cursor, str) and cursor else None,
    )


@dataclass(frozen=True)
class LogLine:
    """One line of a run's log, safe to print."""

    timestamp: str
    level: str
    message: str

    def describe(self) -> str:
        return " ".join(part for part in (self.timestamp, self.level.upper(), self.message) if part)


def parse_log_page(data: Any) -> tuple[tuple[LogLine, ...], str | None]:
    """A page of a run's log lines and the cursor of the next page (`next_pq` or `next`)."""
    if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
        raise ProtocolError("Runflow's run log answer has no list of items.")
    lines = tuple(LogLine(_opt_str(item.get("timestamp") or item.get("created_at")) or "",
                          _opt_str(item.get("level_code") or item.get("level")) or "",
                          _opt_str(item.get("message")) or "")
                  for item in data.get("items", []) if isinstance(item, dict))
    cursor = data.get("next_pq") or data.get("next")
    return lines, cursor if isinstance(cursor, str) and cursor else None


def _require_str(data: dict, *keys: str, what: str) -> str:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    raise ProtocolError(f"Runflow's {what} answer has no `{keys[0]}`.")


def parse_upload_session(data: Any) -> UploadSession:
    if not isinstance(data, dict):
        raise ProtocolError("Runflow's upload answer is not an object.")
    return UploadSession(
        asset_id=_require_str(data, "asset_id", "id", what="upload"),
        upload_url=_require_str(data, "upload_url", "url", what="upload"),
    )


def parse_asset(data: Any) -> Asset:
    if not isinstance(data, dict):
        raise ProtocolError("Runflow's asset answer is not an object.")
    return Asset(
        id=_require_str(data, "id", "asset_id", what="asset"),
        url=_require_str(data, "url", "download_url", what="asset"),
        name=_opt_str(data.get("name")),
        mime_type=_opt_str(data.get("mime_type")),
        size_bytes=_opt_int(data.get("size_bytes")),
    )


def _field_error(item: Any) -> str | None:
    if isinstance(item, str):
        return clean_text(item, 200)
    if not isinstance(item, dict):
        return None
    where = item.get("field", item.get("loc"))
    if isinstance(where, list):
        where = ".".join(str(part) for part in where)
    msg = item.get("msg", item.get("message", ""))
    text = f"{where}: {msg}" if where else str(msg)
    return clean_text(text, 200) if text else None


def parse_error_body(content: bytes, request_id: str | None = None) -> ErrorBody:
    """The code and message of an error answer, from any of the body shapes in the wild."""
    try:
        data = json.loads(content.decode("utf-8")) if content else None
    except (UnicodeDecodeError, ValueError):
        text = content.decode("utf-8", "replace")
        return ErrorBody(message=clean_text(text, 300) or None, request_id=request_id)
    if not isinstance(data, dict):
        return ErrorBody(message=clean_text(data, 300) if data else None, request_id=request_id)
    code, message, errors = data.get("code"), data.get("message"), data.get("errors")
    nested = data.get("error")
    if isinstance(nested, dict):
        code = nested.get("code", code)
        message = nested.get("message", message)
        errors = nested.get("errors", errors)
    elif isinstance(nested, str):
        message = message or nested
    detail = data.get("detail")
    if isinstance(detail, str):
        message = message or detail
    elif isinstance(detail, list):
        errors = errors or detail
    items = errors if isinstance(errors, list) else []
    field_errors = tuple(text for text in map(_field_error, items) if text)
    rid = data.get("request_id")
    return ErrorBody(
        code=clean_text(code, 64) if isinstance(code, (str, int)) else None,
        message=clean_text(message, 300) if message else None,
        field_errors=field_errors,
        request_id=request_id or (clean_text(rid, 128) if isinstance(rid, str) else None),
    )
