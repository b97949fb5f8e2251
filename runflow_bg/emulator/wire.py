"""Request and Response values, and the error bodies the API and the storage host send."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from runflow_bg.emulator.state import Blob

API_CODES = {
    401: "UNAUTHORIZED",
    402: "INSUFFICIENT_CREDIT",
    403: "PERMISSION_DENIED",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "MODEL_UNAVAILABLE",
}
STORAGE_CODES = {403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError", 503: "SlowDown"}
EXPIRED = ("AccessDenied", "Request has expired")


@dataclass
class Request:
    """One parsed HTTP request, with the path parameters its route captured."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    upload: Blob | None = None  # a storage upload's bytes, kept as they came (body is empty)


@dataclass
class Response:
    """One answer; the HTTP layer adds Content-Length, which claims declared_length bytes when set."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None  # a body cut short: the connection closes after what was sent


class Reject(Exception):
    """Raised inside an endpoint to answer at once with an error."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def json_response(status: int, data: object) -> Response:
    return Response(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


def text_response(status: int, text: str | bytes) -> Response:
    body = text.encode() if isinstance(text, str) else text
    return Response(status, body, {"Content-Type": "text/plain; charset=utf-8"})


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def api_error(status: int, code: str | None = None, message: str | None = None,
              errors: list[dict] | None = None) -> Response:
    """The docs' error form: {"code", "message", "errors"}, errors listed only for 422."""
    code = code or API_CODES.get(status) or re.sub(r"[^A-Z0-9]+", "_", phrase(status).upper()).strip("_")
    message = message or f"{phrase(status)}."
    if status == 422 and not errors:
        errors = [{"field": "body", "msg": message}]
    return json_response(status, {"code": code, "message": message, "errors": errors})


def storage_error(status: int, code: str | None = None, message: str | None = None) -> Response:
    """An S3-style XML error, as a presigned storage or file URL answers."""
    code = code or STORAGE_CODES.get(status) or "".join(phrase(status).title().split())
    message = message or phrase(status)
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>")
    return Response(status, body.encode(), {"Content-Type": "application/xml"})
