"""A run: its record, its lifecycle by elapsed time, and its JSON view."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from runflow_bg.emulator.signing import Links

MODEL = "runflow/background-replace"
PRICE = Decimal("0.35")  # the model's price per run, in USD; Emulator(price=...) sets another
QUEUED_SHARE = 0.2  # of run_seconds spent queued (the alt spelling splits it with dispatching)


def _no_override() -> tuple[str, float] | None:
    """A run made without the API's knobs (tests, scripts) is never held by a status override."""
    return None


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

    def status(self, now: float, spelling: str = "default") -> str:
        if self.is_finished(now):
            return self.outcome.status or ("partial_succeeded" if spelling == "alt" else "succeeded")
        override = self.override()
        if override is not None:
            return override[0]
        if self._started(now):
            return "running"
        if spelling == "alt" and now - self.created >= QUEUED_SHARE / 2 * self.run_seconds > 0:
            return "dispatching"
        return "queued"

    def view(self, now: float, links: Links, *, spelling: str = "default",
             output_shape: str = "image_urls", sdk_shape: bool = False,
             outputs: Sequence[str | None] = (None,)) -> dict:
        """The Run object as the API answers it at `now`, in the shape the knobs ask for."""
        outcome = self.outcome if self.is_finished(now) else None
        elapsed = self.finish_time() - self.created if outcome else None
        view = {
            "id": self.id,
            "model": MODEL,
            "status_code": self.status(now, spelling),
            "input": copy.deepcopy(self.input),
            "output": self._output(outcome, links, output_shape, outputs),
            "metadata": copy.deepcopy(self.metadata),
            "client_ref": self.client_ref,
            "callback_url": self.callback_url,
            "created_at": self._stamp(0.0),
            "started_at": self._stamp(QUEUED_SHARE * self.run_seconds) if self._started(now) else None,
            "completed_at": self._stamp(elapsed) if outcome else None,
            "duration_ms": round(elapsed * 1000) if outcome else None,
            "cost": f"{self.price:.2f}",
        }
        code = outcome.code if outcome else None
        message = outcome.message if outcome else None
        if sdk_shape:
            view["finished_at"] = view.pop("completed_at")
            view["error"] = {"code": code, "message": message} if code else None
        else:
            view.update(failure_code=code, failure_message=message,
                        failure_stage_code=outcome.stage if outcome else None)
        return view

    def _started(self, now: float) -> bool:
        # A run is never running at the instant it is created, even when run_seconds is 0.
        elapsed = now - self.created
        return elapsed > 0 and elapsed >= QUEUED_SHARE * self.run_seconds

    def _output(self, outcome: Outcome | None, links: Links, shape: str,
                outputs: Sequence[str | None]) -> dict | None:
        """One signed URL per output: None names the plain `<n>.webp`, a string is the file's raw name."""
        if outcome is None or outcome.image is None:
            return None
        urls = [links.output_url(self.id, n, name) for n, name in enumerate(outputs, start=1)]
        if shape == "outputs":
            return {"outputs": [{"url": url, "type": "image"} for url in urls]}
        return {"image_urls": urls}

    def _stamp(self, offset: float) -> str:
        return (self.created_at + timedelta(seconds=offset)).isoformat(timespec="milliseconds")
