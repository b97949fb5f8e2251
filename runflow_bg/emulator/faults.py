"""Fault knobs: make the next requests fail, drop or stall, runs end badly, and answers come broken."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from runflow_bg.emulator.callbacks import RETRY_RULES
from runflow_bg.emulator.corrupt import CORRUPT_MODES
from runflow_bg.emulator.runs import SPELLINGS, Shape
from runflow_bg.emulator.wire import Response, api_error, json_response, storage_error, text_response

ENDPOINTS = frozenset({
    "health", "me", "asset_create", "storage_put", "asset_confirm", "asset_get", "run_create",
    "run_get", "run_list", "run_cancel", "balance", "callback_history", "callback_redeliver",
    "asset_file", "output", "unknown",
    "readiness", "run_statuses", "run_logs", "asset_types", "pricing", "credit_balances",
})
STORAGE_ENDPOINTS = frozenset({"storage_put", "asset_file", "output"})
# Documented: failed, canceled. Imitations: cancelled (the older runs page and the cancel guide),
# errored (in no doc, only in the terminal set of Runflow's ad-creative plugin).
RUN_FAILURE_STATUSES = ("failed", "canceled", "cancelled", "errored")
CORRUPTIBLE_ENDPOINTS = ("run_get", "run_create")
_CHOICES = {"output_shape": ("image_urls", "outputs"), "status_spelling": SPELLINGS,
            "callback_retry_rule": RETRY_RULES, "list_envelope": ("reference", "next_pq")}


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
        super().__setattr__(name, _checked(name, value))

    def clear(self) -> None:
        with self._lock:
            self._queues: dict[tuple[str, str | None], deque] = defaultdict(deque)
            self.output_shape = "image_urls"
            # "older-docs": the older runs page's statuses (`cancelled`, no `dispatching`).
            self.status_spelling = "default"
            # Runs with more than one output end partial_succeeded, their last output missing.
            self.partial_success = False
            # Runs also carry the JS SDK's fields (model, finished_at, error); creates add run_id.
            self.sdk_shape = False
            # "5xx-and-network": the model page's rule, instead of retrying any non-2xx answer.
            self.callback_retry_rule = "any-failure"
            self.output_names: list[str] | None = None
            self.output_count = 1
            self.output_content_type: str | None = None
            self.status_override = None
            # Creates ignore Idempotency-Key, as on a route the middleware would not cover.
            self.ignore_idempotency = False
            # GET /v1/runs leaves out runs younger than this many seconds, as a service still writing them.
            self.listing_lag = 0.0
            self.run_id_prefix = ""  # e.g. "tenant/": ids no client should turn into a path
            # Lists answer {items, first, next, previous} (the reference), or {items, next_pq, prev_pq}.
            self.list_envelope = "reference"
            self.asset_types: tuple[str, ...] | None = None  # narrows the upload MIME types accepted
            # Runs skip the compositor and return one small grey WebP: for load tests, where the
            # compositor's time would be measured instead of the client's.
            self.quick_outputs = False

    @property
    def status_override(self) -> str | None:
        """A status that unfinished runs report instead of queued/running; they cannot finish while set."""
        return self._override[0] if self._override else None

    @status_override.setter
    def status_override(self, status: str | None) -> None:
        if status is None:
            self._override = None
            return
        if not isinstance(status, str) or not status:
            raise ValueError("status_override must be a non-empty string or None")
        # A new spelling keeps the first moment, so runs held already are not let go by the change.
        self._override = (status, self._override[1] if self._override else time.monotonic())

    def override(self) -> tuple[str, float] | None:
        """The status override and the moment it was set, read together; runs due after it are held."""
        return self._override

    def shape(self) -> Shape:
        """How runs are shown now; outputs are a raw name each, or None for the plain `<n>.webp`."""
        names = self.output_names
        outputs = tuple(names) if names is not None else (None,) * self.output_count
        return Shape(spelling=self.status_spelling, output_shape=self.output_shape, sdk_shape=self.sdk_shape,
                     outputs=outputs, partial=self.partial_success and len(outputs) > 1)

    def fail_next(self, endpoint: str, status: int, count: int | None = 1,
                  retry_after: float | str | None = None, body: object = None) -> None:
        """Answer the next `count` requests to `endpoint` with `status`, without processing them."""
        self._push("fail", (endpoint,), Failure(status, retry_after, body), count)

    def drop_next(self, endpoint: str, count: int | None = 1) -> None:
        """Process the next requests, then close the connection without any answer."""
        self._push("drop", (endpoint,), True, count)

    def drop_after_create(self, count: int | None = 1) -> None:
        """Record the next runs but never answer their creates: the ambiguous failure."""
        self.drop_next("run_create", count)

    def delay(self, endpoint: str, seconds: float, count: int | None = None) -> None:
        """Process, then wait `seconds` before answering (count None: every request)."""
        self._push("delay", (endpoint,), float(seconds), count)

    def fail_runs(self, count: int | None = None, status: str = "failed", code: str = "MODEL_ERROR",
                  message: str = "The model could not process the input.") -> None:
        """The next `count` created runs (None: all) finish badly with this status and code.

        `failed` and `canceled` are documented; `cancelled` imitates the older runs page and the cancel
        guide, `errored` the terminal set of Runflow's ad-creative plugin (no doc has it).
        """
        if status not in RUN_FAILURE_STATUSES:
            raise ValueError(f"status must be one of: {', '.join(RUN_FAILURE_STATUSES)}")
        self._push("run", (None,), RunFailure(status, code, message), count)

    def expire_upload_urls(self, count: int | None = 1) -> None:
        """The next storage PUTs answer 403 as an expired presigned URL does."""
        self._push("expire", ("storage_put",), True, count)

    def expire_output_urls(self, count: int | None = 1) -> None:
        """The next output downloads answer 403 as an expired presigned URL does."""
        self._push("expire", ("output",), True, count)

    def truncate_outputs(self, count: int | None = 1) -> None:
        """The next output downloads promise the whole image but send about half, then hang up."""
        self._push("truncate", ("output",), True, count)

    def huge_outputs(self, count: int | None = 1) -> None:
        """The next output downloads claim 300 MB, send a few KB, then hang up."""
        self._push("huge", ("output",), True, count)

    def redirect_outputs(self, location: str, count: int | None = None) -> None:
        """The next output downloads (None: all) answer 302 to `location`; `{url}` is their own URL."""
        if not isinstance(location, str):
            raise ValueError("location must be a string")
        self._push("redirect", ("output",), location, count)

    def corrupt_runs(self, mode: str, count: int | None = None,
                     endpoints: tuple[str, ...] = ("run_get",)) -> None:
        """The next `count` run answers (None: all) of these endpoints, together, carry a broken body."""
        if mode not in CORRUPT_MODES:
            raise ValueError(f"mode must be one of: {', '.join(CORRUPT_MODES)}")
        if isinstance(endpoints, str) or not endpoints or not set(endpoints) <= set(CORRUPTIBLE_ENDPOINTS):
            raise ValueError(f"endpoints must be a tuple of: {', '.join(CORRUPTIBLE_ENDPOINTS)}")
        self._push("corrupt", tuple(endpoints), mode, count)

    def take(self, kind: str, endpoint: str | None = None):
        """Use up one pending fault of this kind ("fail", "drop", "delay", "run", "expire", ...)."""
        with self._lock:
            queue = self._queues.get((kind, endpoint))
            while queue and queue[0][1] == 0:  # used up through another endpoint that shares it
                queue.popleft()
            if not queue:
                return None
            entry = queue[0]
            if entry[1] is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    queue.popleft()
            return entry[0]

    def _push(self, kind: str, endpoints: tuple[str | None, ...], value: object, count: int | None) -> None:
        """Queue one fault for each endpoint; they share the count, so it runs out for all at once."""
        for endpoint in endpoints:
            if endpoint is not None and endpoint not in ENDPOINTS:
                raise ValueError(f"unknown endpoint {endpoint!r}; one of: {', '.join(sorted(ENDPOINTS))}")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("count must be at least 1, or None for every one")
        entry = [value, count]
        with self._lock:
            for endpoint in endpoints:
                self._queues[(kind, endpoint)].append(entry)


def _checked(name: str, value: object) -> object:
    """A knob's value (output names copied), or ValueError before it could break a download or a listing."""
    if name == "output_names" and value is not None:
        names = None if isinstance(value, str) else list(value)
        if names is None or not all(isinstance(item, str) and item for item in names):
            raise ValueError("output_names must be a list of non-empty strings, or None")
        return names
    if name == "partial_success" and not isinstance(value, bool):
        raise ValueError("partial_success must be True or False")
    if name == "output_count" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError("output_count must be a whole number, 0 or more")
    if name == "output_content_type" and value is not None and not isinstance(value, str):
        raise ValueError("output_content_type must be a string or None")
    if name == "asset_types" and value is not None:
        types = None if isinstance(value, str) else tuple(value)
        if not types or not all(isinstance(item, str) and item for item in types):
            raise ValueError("asset_types must be a non-empty list of MIME types, or None")
        return types
    if name == "listing_lag" and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                  or not 0 <= value < math.inf):
        raise ValueError("listing_lag must be a number of seconds, 0 or more")
    return value
