"""Carries a run to its end: fetch the input zip, composite, then send the callback on time."""

from __future__ import annotations

import http.client
import re
import ssl
import threading
import time
import urllib.request
from functools import cache
from typing import Callable
from urllib.error import HTTPError
from urllib.parse import parse_qsl, unquote, urlsplit

from runflow_bg.emulator.callbacks import CallbackDelivery, CallbackSender, payload
from runflow_bg.emulator.faults import Faults, RunFailure
from runflow_bg.emulator.runs import Outcome, Run
from runflow_bg.emulator.signing import Links
from runflow_bg.emulator.state import Blob, State
from runflow_bg.urls import is_loopback_host, redact_url, same_origin

FETCH_TIMEOUT = 10.0
MAX_ZIP_BYTES = 50 * 1024 * 1024
HOLD_POLL = 0.05  # how often a run held by status_override looks again
_ASSET_PATH = re.compile(r"/files/assets/(?P<asset_id>[^/]+)/(?P<filename>[^/]+)")


class FetchError(Exception):
    """The run's zip_url could not be read."""


class Worker:
    """Runs each run on its own thread, so results and callbacks come even if no one polls."""

    def __init__(self, state: State, links: Links, faults: Faults, sender: CallbackSender,
                 stop: threading.Event, spawn: Callable[..., None],
                 ssl_context: ssl.SSLContext | None = None, max_side: int | None = None):
        self.state = state
        self.links = links
        self.faults = faults
        self.sender = sender
        self.stop = stop
        self.spawn = spawn
        self.ssl_context = ssl_context  # with tls, also trusts the emulator's own CA
        self.max_side = max_side  # larger photos are composited at this size (see composite)
        self._wake = threading.Condition()

    def start(self, run: Run, failure: RunFailure | None) -> None:
        self.spawn(self._carry, run, failure)

    def redeliver(self, run: Run) -> CallbackDelivery:
        """A new delivery built from the run's current state, sent on its own thread."""
        delivery = self._new_delivery(run, automatic=False)
        self.spawn(self.sender.send, delivery, self.faults.callback_retry_rule)
        return delivery

    def cancel(self, run: Run) -> bool:
        """End an unfinished run as canceled now; False when it had ended already.

        A result still being computed is dropped when it lands; the run's thread sends the callback.
        """
        with self._wake:
            now = time.monotonic()
            if run.is_finished(now):
                return False
            run.cancel(now)
            self._wake.notify_all()
        return True

    def wake(self) -> None:
        """Make waiting runs look again: finish_runs() ended them early, or the emulator is stopping."""
        with self._wake:
            self._wake.notify_all()

    def wait_outcomes(self, runs: list[Run], timeout: float) -> None:
        """Wait until each run has its result (or the emulator stops), so none is left computing."""
        with self._wake:
            self._wake.wait_for(lambda: self.stop.is_set() or all(r.outcome is not None for r in runs),
                                timeout)

    def _carry(self, run: Run, failure: RunFailure | None) -> None:
        if failure is not None:
            outcome = Outcome(status=failure.status, code=failure.code, message=failure.message,
                              stage="inference")
        else:
            outcome = self._compute(run)
        with self._wake:  # wait_outcomes() may be waiting for this result
            if run.outcome is None:  # else the run was canceled meanwhile
                run.outcome = outcome
            self._wake.notify_all()
        if run.callback_url and self._wait_finished(run):
            self.sender.send(self._new_delivery(run, automatic=True), self.faults.callback_retry_rule)

    def _wait_finished(self, run: Run) -> bool:
        """Wait out the run's time and any status override holding it; False when the emulator stops."""
        with self._wake:  # checked under the lock, so a wake() between check and wait is not lost
            while not self.stop.is_set():
                now = time.monotonic()
                if run.is_finished(now):
                    return True
                self._wake.wait(max(0.0, run.finish_time() - now) or HOLD_POLL)
        return False

    def _new_delivery(self, run: Run, automatic: bool) -> CallbackDelivery:
        view = run.view(time.monotonic(), self.links, self.faults.shape())
        return self.sender.new_delivery(run.id, run.callback_url, payload(view), automatic)

    def _compute(self, run: Run) -> Outcome:
        from runflow_bg.emulator.compositor import CompositeError, composite

        try:
            data = self._fetch(run.input["zip_url"])
        except FetchError as exc:
            return Outcome(status="failed", code="INPUT_FETCH_FAILED", message=str(exc), stage="input")
        if self.faults.quick_outputs:
            return Outcome(image=quick_output())
        try:
            with data.open() as zip_file:
                image = composite(zip_file, run.input["file_image"], run.input["file_reference"],
                                  run.input.get("prompt"), max_side=self.max_side)
        except CompositeError as exc:
            return Outcome(status="failed", code=exc.code, message=exc.message, stage="inference")
        except Exception as exc:  # a compositor bug must still end the run, as a server error would
            return Outcome(status="failed", code="INTERNAL_ERROR", message=f"{type(exc).__name__}: {exc}",
                           stage="inference")
        return Outcome(image=image)

    def _fetch(self, url: str) -> Blob:
        """The emulator's own asset URLs are read from the store; others (itself by another name
        included) are downloaded."""
        parts = urlsplit(url)
        if _ASSET_PATH.fullmatch(parts.path) and same_origin(url, self.links.base_url):
            return self._read_asset(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError(f"zip_url {redact_url(url)} is not an http(s) URL")
        handlers = [urllib.request.HTTPSHandler(context=self.ssl_context)]
        if is_loopback_host(parts.hostname):
            handlers.append(urllib.request.ProxyHandler({}))
        try:
            with urllib.request.build_opener(*handlers).open(url, timeout=FETCH_TIMEOUT) as answer:
                data = answer.read(MAX_ZIP_BYTES + 1)
        except HTTPError as exc:
            exc.close()
            raise FetchError(f"zip_url {redact_url(url)} answered HTTP {exc.code}") from None
        except ValueError:  # its text would quote the URL, signature and all
            raise FetchError(f"zip_url {redact_url(url)} is not a valid URL") from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"could not fetch zip_url {redact_url(url)}: {exc}") from None
        if len(data) > MAX_ZIP_BYTES:
            raise FetchError(f"zip_url {redact_url(url)} is larger than 50 MiB")
        return Blob(data)

    def _read_asset(self, url: str) -> Blob:
        parts = urlsplit(url)
        problem = self.links.check(parts.path, dict(parse_qsl(parts.query)))
        if problem:
            raise FetchError(f"zip_url {redact_url(url)} answered HTTP 403 {problem[0]}: {problem[1]}")
        match = _ASSET_PATH.fullmatch(parts.path)
        asset = self.state.asset(unquote(match["asset_id"]))
        if asset is None or asset.data is None or asset.filename != unquote(match["filename"]):
            raise FetchError(f"zip_url {redact_url(url)} answered HTTP 404 NoSuchKey")
        return asset.data


@cache
def quick_output() -> bytes:
    """What runs return with `faults.quick_outputs`: one small grey WebP, made once."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (128, 128, 128)).save(out, "WEBP")
    return out.getvalue()
