"""Callbacks: the documented envelope, signed when a secret is set, POSTed with retries, kept as history."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable
from urllib.error import HTTPError
from urllib.parse import urlsplit

from runflow_bg.emulator.runs import api_time
from runflow_bg.urls import is_loopback_host

EVENTS = {
    "succeeded": "run.completed",
    "partial_succeeded": "run.partial_succeeded",
    "failed": "run.failed",
    "errored": "run.failed",
    "canceled": "run.cancelled",
    "cancelled": "run.cancelled",
}
# "any-failure": the callbacks page (any non-2xx answer, timeout or connection error is retried);
# "5xx-and-network": the model page's narrower rule.
RETRY_RULES = ("any-failure", "5xx-and-network")
ATTEMPT_TIMEOUT = 5.0
RESPONSE_BODY_LIMIT = 1024  # of each answer's body kept in the history


def _now() -> datetime:
    return datetime.now(timezone.utc)


def payload(view: dict) -> bytes:
    """The callback body for a finished run's view, as the callbacks page describes it.

    A failed run's output is an error envelope, a canceled run's is null; timestamps end in +00:00,
    not the view's Z, as Runflow writes them so that signed bytes stay stable.
    """
    event = EVENTS[view["status_code"]]
    output = view["output"]
    if event == "run.failed":
        output = {"code": view["failure_code"], "message": view["failure_message"]}
    return json.dumps({
        "event": event,
        "run_id": view["id"],
        "status": view["status_code"],
        "output": output,
        "duration_ms": view["duration_ms"],
        "created_at": _offset(view["created_at"]),
        "completed_at": _offset(view["completed_at"]),
        "metadata": view["metadata"],
    }).encode()


def _should_retry(status: int | None, rule: str) -> bool:
    """Whether an attempt's answer (None: timeout or connection error) calls for another attempt."""
    if status is None:
        return True
    return status >= 500 if rule == "5xx-and-network" else not 200 <= status < 300


@dataclass
class Attempt:
    """One POST of a delivery: status is None when the receiver could not be reached."""

    number: int
    status: int | None
    error: str | None
    response_body: str | None
    response_time_ms: int
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: datetime = field(default_factory=_now)


@dataclass
class CallbackDelivery:
    """One callback of a run, frozen when made: its body and its attempts, up to max_attempts."""

    run_id: str
    url: str
    body: bytes
    automatic: bool
    max_attempts: int
    signing_secret_id: str | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=_now)
    attempts: list[Attempt] = field(default_factory=list)
    status: str = "pending"  # then "succeeded" or "failed"; Runflow does not publish its values
    failure: tuple[str, str] | None = None  # (reason code, detail) once it has failed
    next_attempt_at: datetime | None = None
    completed_at: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, attempt: Attempt, retry_in: float | None) -> None:
        """Record an attempt; without a retry to come, the delivery is over."""
        with self._lock:
            self.attempts.append(attempt)
            self.next_attempt_at = attempt.at + timedelta(seconds=retry_in) if retry_in is not None else None
            if attempt.status is not None and 200 <= attempt.status < 300:
                self.status, self.completed_at = "succeeded", attempt.at
            elif retry_in is None:
                self.status, self.completed_at = "failed", attempt.at
                self.failure = (("http_error", f"The receiver answered HTTP {attempt.status}.")
                                if attempt.status is not None else ("network_error", attempt.error))

    def view(self) -> dict:
        """The delivery as GET /v1/runs/{run_id}/callback lists it."""
        with self._lock:
            attempts = list(self.attempts)
            reason, detail = self.failure or (None, None)
            return {
                "id": self.id, "run_id": self.run_id, "callback_url": self.url,
                "payload_bytes": self.body.decode(), "payload": json.loads(self.body),
                "signing_secret_id": self.signing_secret_id, "is_automatic": self.automatic,
                "status_code": self.status, "failure_reason_code": reason, "failure_detail": detail,
                "attempt_count": len(attempts), "max_attempts": self.max_attempts,
                "next_attempt_at": self.next_attempt_at and api_time(self.next_attempt_at),
                "created_at": api_time(self.created_at),
                "updated_at": api_time(attempts[-1].at if attempts else self.created_at),
                "completed_at": self.completed_at and api_time(self.completed_at),
                "attempts": [{"id": a.id, "delivery_id": self.id, "attempt_number": a.number,
                              "status_code": a.status, "response_body": a.response_body,
                              "response_time_ms": a.response_time_ms, "error_message": a.error,
                              "created_at": api_time(a.at)} for a in attempts],
            }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A callback is answered where it was sent; a redirect counts as the receiver's answer."""

    def redirect_request(self, *args, **kwargs):
        return None


class CallbackSender:
    """Makes deliveries and sends each: up to len(retry_delays) + 1 attempts, retried by a rule."""

    def __init__(self, secret: str | None, retry_delays: tuple[float, ...], stop: threading.Event,
                 record: Callable[[CallbackDelivery], None]):
        self.secret = secret
        self.secret_id = str(uuid.uuid4()) if secret is not None else None
        self.retry_delays = tuple(retry_delays)
        self.stop = stop
        self.record = record

    def new_delivery(self, run_id: str, url: str, body: bytes, automatic: bool) -> CallbackDelivery:
        """A delivery of `body`, recorded at once so the history shows it before its first attempt."""
        delivery = CallbackDelivery(run_id, url, body, automatic, len(self.retry_delays) + 1, self.secret_id)
        self.record(delivery)
        return delivery

    def send(self, delivery: CallbackDelivery, rule: str) -> None:
        """POST until an attempt gets a 2xx, the retry rule gives up, or the attempts run out."""
        for number in range(1, delivery.max_attempts + 1):
            if number > 1 and self.stop.wait(self.retry_delays[number - 2]):
                return
            headers = {"Content-Type": "application/json", "User-Agent": "runflow-bg-emulator",
                       "Runflow-Request-Id": f"req_{secrets.token_hex(12)}"}
            if self.secret is not None:
                signature = hmac.new(self.secret.encode(), delivery.body, hashlib.sha256)
                headers["Runflow-Signature"] = signature.hexdigest()
            started = time.monotonic()
            status, error, answer = self._post(delivery.url, delivery.body, headers)
            elapsed_ms = round((time.monotonic() - started) * 1000)
            retry = number < delivery.max_attempts and _should_retry(status, rule)
            delivery.add(Attempt(number, status, error, answer, elapsed_ms),
                         self.retry_delays[number - 1] if retry else None)
            if not retry:
                return

    def _post(self, url: str, body: bytes,
              headers: dict[str, str]) -> tuple[int | None, str | None, str | None]:
        """(HTTP status, error, start of the answer's body); the status is None when unreachable."""
        handlers = [_NoRedirect()]
        if is_loopback_host(urlsplit(url).hostname):
            handlers.append(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.build_opener(*handlers).open(request, timeout=ATTEMPT_TIMEOUT) as answer:
                return answer.status, None, _start_of(answer)
        except HTTPError as exc:
            try:
                return exc.code, None, _start_of(exc)
            finally:
                exc.close()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return None, str(exc) or type(exc).__name__, None


def _start_of(answer) -> str | None:
    """The first bytes of an answer's body as text; None when the body could not be read."""
    try:
        return answer.read(RESPONSE_BODY_LIMIT).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return None


def _offset(stamp: str | None) -> str | None:
    """An API time (`...Z`) as callbacks write it (`...+00:00`)."""
    return stamp[:-1] + "+00:00" if stamp and stamp.endswith("Z") else stamp
