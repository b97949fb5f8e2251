"""A run: its record, its lifecycle by elapsed time, and its JSON view."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from runflow_bg.emulator.signing import Links

MODEL = "runflow/background-replace"
USER_ID = "0195f0c2-7d3a-7c41-9b6e-4a2f3c8d5e11"  # the emulator's one account: /v1/auth/me
ORG_ID = "0195f0c2-7d3a-7c41-9b6e-4a2f3c8d5e12"  # and its organisation, the owner of every run
MODEL_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://api.runflow.io/v1/models/{MODEL}"))
PRICE = Decimal("0.35")  # the model's price per run, in USD; Emulator(price=...) sets another
QUEUED_SHARE = 0.2  # of run_seconds spent before running: half queued, half dispatching
SPELLINGS = ("default", "older-docs")
# The API reference's Run fields, in its order; those the emulator has no value for stay null.
FIELDS = ("id", "flow_id", "model_id", "comfyui_workflow_id", "target_type", "target_version", "org_id",
          "status_code", "source_code", "input", "output", "context", "duration_ms", "cost",
          "cost_breakdown", "nodes_total", "nodes_completed", "resolved_template_id", "batch_id",
          "client_ref", "jurisdiction_code", "flow_version_id", "request_id", "created_by", "created_at",
          "started_at", "completed_at", "callback_url", "metadata", "has_logs", "has_node_runs", "links",
          "failure_code", "failure_message", "failure_stage_code", "node_runs")


def api_time(moment: datetime) -> str:
    """A UTC time as the API reference writes it: milliseconds and `Z`."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _no_override() -> tuple[str, float] | None:
    """A run made without the API's knobs (tests, scripts) is never held by a status override."""
    return None


@dataclass(frozen=True)
class Shape:
    """How the knobs ask runs to be shown; the default is the documented contract.

    `spelling` "older-docs" imitates the older runs page (`cancelled`, no `dispatching`); `partial`
    ends successes as `partial_succeeded` with their last output missing (multi-output runs only).
    """

    spelling: str = "default"
    output_shape: str = "image_urls"
    sdk_shape: bool = False
    outputs: tuple[str | None, ...] = (None,)
    partial: bool = False


PLAIN = Shape()


@dataclass(frozen=True)
class Outcome:
    """How a run ended: an image, or a failure that reports its own status."""

    image: bytes | None = None
    status: str | None = None
    code: str | None = None
    message: str | None = None
    stage: str | None = None
    ready: float = field(default_factory=time.monotonic)


@dataclass
class Run:
    """One created run; its status is computed whenever it is read."""

    input: dict
    run_seconds: float
    callback_url: str | None = None
    metadata: dict | None = None
    client_ref: str | None = None
    price: Decimal = PRICE  # charged at create, reported as cost
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    created: float = field(default_factory=time.monotonic)
    outcome: Outcome | None = None
    # (status, since): while given, the run reports that status and cannot finish after `since`
    override: Callable[[], tuple[str, float] | None] = _no_override

    def finish_time(self) -> float | None:
        """When the run counts as finished: its time has passed and its result exists."""
        if self.outcome is None:
            return None
        return max(self.created + self.run_seconds, self.outcome.ready)

    def is_finished(self, now: float) -> bool:
        end = self.finish_time()
        if end is None or now < end:
            return False
        override = self.override()
        return override is None or end < override[1]

    def finish_now(self, now: float) -> None:
        """Cut an unfinished run's time to `now` and free it from any status override.

        It then ends with the outcome it has (or gets, if still computing); its times stay consistent.
        """
        if not self.is_finished(now):
            self.override = _no_override
            self.run_seconds = min(self.run_seconds, max(0.0, now - self.created))

    def cancel(self, now: float) -> None:
        """End an unfinished run as canceled at `now`; the result it was computing no longer counts."""
        self.outcome = Outcome(status="canceled", ready=now)  # first, so no reader sees the old result
        self.finish_now(now)

    def status(self, now: float, shape: Shape = PLAIN) -> str:
        if self.is_finished(now):
            status = self.outcome.status or ("partial_succeeded" if shape.partial else "succeeded")
            return "cancelled" if status == "canceled" and shape.spelling == "older-docs" else status
        override = self.override()
        if override is not None:
            return override[0]
        if self._started(now):
            return "running"
        if shape.spelling == "default" and now - self.created >= QUEUED_SHARE / 2 * self.run_seconds > 0:
            return "dispatching"
        return "queued"

    def view(self, now: float, links: Links, shape: Shape = PLAIN) -> dict:
        """The Run object as the API answers it at `now`; SDK-only fields come beside, never instead."""
        outcome = self.outcome if self.is_finished(now) else None
        elapsed = self.finish_time() - self.created if outcome else None
        code = outcome.code if outcome else None
        message = outcome.message if outcome else None
        view = dict.fromkeys(FIELDS)
        view.update(
            id=self.id,
            model_id=MODEL_ID,
            org_id=ORG_ID,
            created_by=USER_ID,
            target_type="model",
            status_code=self.status(now, shape),
            input=copy.deepcopy(self.input),
            output=self._output(outcome, links, shape),
            duration_ms=round(elapsed * 1000) if outcome else None,
            cost=f"{self.price:.2f}",
            client_ref=self.client_ref,
            created_at=self._stamp(0.0),
            started_at=self._stamp(QUEUED_SHARE * self.run_seconds) if self._started(now) else None,
            completed_at=self._stamp(elapsed) if outcome else None,
            callback_url=self.callback_url,
            metadata=copy.deepcopy(self.metadata),
            has_logs=True,
            has_node_runs=False,
            failure_code=code,
            failure_message=message,
            failure_stage_code=outcome.stage if outcome else None,
            node_runs=[],
        )
        if shape.sdk_shape:
            view.update(model=MODEL, finished_at=view["completed_at"],
                        error={"code": code, "message": message} if code else None)
        return view

    def _started(self, now: float) -> bool:
        # A run is never running at the instant it is created, even when run_seconds is 0.
        elapsed = now - self.created
        return elapsed > 0 and elapsed >= QUEUED_SHARE * self.run_seconds

    def _output(self, outcome: Outcome | None, links: Links, shape: Shape) -> dict | None:
        """One signed URL per output: None names the plain `<n>.webp`, a string is the file's raw name."""
        if outcome is None or outcome.image is None:
            return None
        outputs = shape.outputs[:-1] if shape.partial else shape.outputs
        urls = [links.output_url(self.id, n, name) for n, name in enumerate(outputs, start=1)]
        if shape.output_shape == "outputs":
            return {"outputs": [{"url": url, "type": "image"} for url in urls]}
        return {"image_urls": urls}

    def _stamp(self, offset: float) -> str:
        return api_time(self.created_at + timedelta(seconds=offset))
