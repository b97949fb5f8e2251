"""Fault knobs: make the next requests fail, drop or stall, and make runs end badly."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass

from runflow_bg.emulator.wire import Response, api_error, json_response, storage_error, text_response

ENDPOINTS = frozenset({
    "health", "me", "asset_create", "storage_put", "asset_confirm", "asset_get", "run_create",
    "run_get", "run_list", "balance", "callback_history", "callback_redeliver", "asset_file",
    "output", "unknown",
})
STORAGE_ENDPOINTS = frozenset({"storage_put", "asset_file", "output"})
RUN_FAILURE_STATUSES = ("failed", "errored", "canceled", "cancelled")
_CHOICES = {"output_shape": ("image_urls", "outputs"), "status_spelling": ("default", "alt")}


@dataclass(frozen=True)
class Failure:
    """An answer given instead of processing a request."""

    status: int
    retry_after: float | str | None = None
    body: object = None

    def response(self, endpoint: str) -> Response:
        """The given body, else the documented error body (S3-style XML for storage URLs)."""
        if isinstance(self.body, (dict, list)):
            answer = json_response(self.status, self.body)
        elif self.body is not None:
            answer = text_response(self.status, self.body)
        elif endpoint in STORAGE_ENDPOINTS:
            answer = storage_error(self.status)
        else:
            answer = api_error(self.status)
        if self.retry_after is not None:
            value = self.retry_after
            answer.headers["Retry-After"] = f"{value:g}" if isinstance(value, (int, float)) else str(value)
        return answer


@dataclass(frozen=True)
class RunFailure:
    """How a run told to fail ends."""

    status: str
    code: str
    message: str


class Faults:
    """Knobs for tests and scripts. Each queues up behind earlier ones; clear() resets them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def __setattr__(self, name: str, value: object) -> None:
        if name in _CHOICES and value not in _CHOICES[name]:
            raise ValueError(f"{name} must be one of: {', '.join(_CHOICES[name])}")
        super().__setattr__(name, value)

    def clear(self) -> None:
        with self._lock:
            self._queues: dict[tuple[str, str | None], deque] = defaultdict(deque)
            self.output_shape = "image_urls"
            self.status_spelling = "default"
            self.sdk_shape = False

    def fail_next(self, endpoint: str, status: int, count: int | None = 1,
                  retry_after: float | str | None = None, body: object = None) -> None:
        """Answer the next `count` requests to `endpoint` with `status`, without processing them."""
        self._push("fail", endpoint, Failure(status, retry_after, body), count)

    def drop_next(self, endpoint: str, count: int | None = 1) -> None:
        """Process the next requests, then close the connection without any answer."""
        self._push("drop", endpoint, True, count)

    def drop_after_create(self, count: int | None = 1) -> None:
        """Record the next runs but never answer their creates: the ambiguous failure."""
        self.drop_next("run_create", count)

    def delay(self, endpoint: str, seconds: float, count: int | None = None) -> None:
        """Process, then wait `seconds` before answering (count None: every request)."""
        self._push("delay", endpoint, float(seconds), count)

    def fail_runs(self, count: int | None = None, status: str = "failed", code: str = "MODEL_ERROR",
                  message: str = "The model could not process the input.") -> None:
        """The next `count` created runs (None: all) finish badly with this status and code."""
        if status not in RUN_FAILURE_STATUSES:
            raise ValueError(f"status must be one of: {', '.join(RUN_FAILURE_STATUSES)}")
        self._push("run", None, RunFailure(status, code, message), count)

    def expire_upload_urls(self, count: int | None = 1) -> None:
        """The next storage PUTs answer 403 as an expired presigned URL does."""
        self._push("expire", "storage_put", True, count)

    def expire_output_urls(self, count: int | None = 1) -> None:
        """The next output downloads answer 403 as an expired presigned URL does."""
        self._push("expire", "output", True, count)

    def take(self, kind: str, endpoint: str | None = None):
        """Use up one pending fault of this kind ("fail", "drop", "delay", "run", "expire")."""
        with self._lock:
            queue = self._queues.get((kind, endpoint))
            if not queue:
                return None
            entry = queue[0]
            if entry[1] is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    queue.popleft()
            return entry[0]

    def _push(self, kind: str, endpoint: str | None, value: object, count: int | None) -> None:
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of: {', '.join(sorted(ENDPOINTS))}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, or None for every one")
        with self._lock:
            self._queues[(kind, endpoint)].append([value, count])
