"""Callback delivery: the documented payload, signed when a secret is set, POSTed with retries."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable
from urllib.error import HTTPError
from urllib.parse import urlsplit

from runflow_bg.urls import is_loopback_host

EVENTS = {
    "succeeded": "run.completed",
    "partial_succeeded": "run.partial_succeeded",
    "failed": "run.failed",
    "errored": "run.failed",
    "canceled": "run.cancelled",
    "cancelled": "run.cancelled",
}
ATTEMPT_TIMEOUT = 5.0


@dataclass
class CallbackDelivery:
    """One POST attempt: status is None when the receiver could not be reached."""

    run_id: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    headers: dict[str, str]
    body: bytes
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))


def payload(view: dict) -> bytes:
    """The callback body for a finished run's view (the API's default shape)."""
    return json.dumps({
        "event": EVENTS[view["status_code"]],
        "run_id": view["id"],
        "status": view["status_code"],
        "output": view["output"],
        "duration_ms": view["duration_ms"],
        "created_at": view["created_at"],
        "completed_at": view["completed_at"],
        "metadata": view["metadata"],
    }).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A callback is answered where it was sent; a redirect counts as the receiver's answer."""

    def redirect_request(self, *args, **kwargs):
        return None


class CallbackSender:
    """Sends one callback: up to len(retry_delays) + 1 attempts, retrying 5xx and network errors."""

    def __init__(self, secret: str | None, retry_delays: tuple[float, ...], stop: threading.Event,
                 record: Callable[[CallbackDelivery], None]):
        self.secret = secret
        self.retry_delays = tuple(retry_delays)
        self.stop = stop
        self.record = record

    def send(self, run_id: str, url: str, body: bytes) -> None:
        for attempt in range(1, len(self.retry_delays) + 2):
            if attempt > 1 and self.stop.wait(self.retry_delays[attempt - 2]):
                return
            headers = {"Content-Type": "application/json", "User-Agent": "runflow-bg-emulator",
                       "Runflow-Request-Id": f"req_{secrets.token_hex(12)}"}
            if self.secret is not None:
                signature = hmac.new(self.secret.encode(), body, hashlib.sha256)
                headers["Runflow-Signature"] = signature.hexdigest()
            status, error = self._post(url, body, headers)
            self.record(CallbackDelivery(run_id, url, attempt, status, error, headers, body))
            if status is not None and status < 500:
                return

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        handlers = [_NoRedirect()]
        if is_loopback_host(urlsplit(url).hostname):
            handlers.append(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.build_opener(*handlers).open(request, timeout=ATTEMPT_TIMEOUT) as answer:
                return answer.status, None
        except HTTPError as exc:
            exc.close()
            return exc.code, None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return None, str(exc) or type(exc).__name__
