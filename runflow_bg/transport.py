"""HTTP with one retry policy and one deadline per attempt, for every request the tool makes.

API calls, presigned storage uploads and output downloads all go through `Transport.exchange`:
network errors, 429 and 5xx are retried with capped exponential backoff and jitter (Runflow's
advice: 1, 2, 4 ... 32 s, at most 5 attempts), Retry-After is honoured up to a cap, and a 429
makes every request through the same transport wait (a batch's workers share one). Each attempt
has a deadline that bounds the whole exchange, so a body dripped a byte at a time cannot hold it.
A caller with a deadline of its own (`--timeout`) passes it, and no retry sleeps past it; the
attempt under way when it passes still has its own time.
Creates are sent with `attempts=1`: the client decides what an ambiguous failure means.

A retrying httpx transport from PyPI would retry inside httpx, where the attempt deadline, the
shared 429 pause, the injectable clock and the body read cannot reach; so the loop is here.
"""

from __future__ import annotations

import itertools
import random
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from runflow_bg.clock import Clock
from runflow_bg.errors import ProtocolError, UnavailableError, UsageError
from runflow_bg.models import clean_text
from runflow_bg.urls import redact_url

T = TypeVar("T")
API_BODY_CAP = 16 * 1024 * 1024
TRANSFER_RATE = 256 * 1024  # bytes a second any transfer may count on, as Runflow's SDK does


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, as Runflow's docs advise (1, 2, 4 ... 32 s)."""

    max_attempts: int = 5
    rate_limited_attempts: int = 12  # a 429 created nothing: "later" is worth waiting for longer
    base_delay: float = 1.0
    max_delay: float = 32.0
    jitter: float = 1.0
    max_retry_after: float = 300.0

    def attempts_for(self, status: int | None, attempts: int | None = None) -> int:
        """How many attempts a request may have, given the failure just met; a caller's own
        count (a create's single attempt) always wins."""
        if attempts is not None:
            return attempts
        return self.rate_limited_attempts if status == 429 else self.max_attempts

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_retry_after))
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return backoff + random.uniform(0, self.jitter)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN says nothing
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def retryable_status(status: int) -> bool:
    """429 and 5xx: the service asks to be tried again later."""
    return status == 429 or status >= 500


def untrusted_certificate(exc: BaseException | None) -> bool:
    """True when TLS verification failed: retrying cannot help, a CA bundle can."""
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def never_sent(exc: httpx.TransportError) -> bool:
    """True when the request cannot have reached the server (so nothing was created)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


_CAUSES = (
    (httpx.ConnectTimeout, "the connection timed out"),
    (httpx.ConnectError, "the connection was refused or failed"),
    (httpx.ReadTimeout, "timed out waiting for an answer"),
    (httpx.WriteTimeout, "timed out while sending"),
    (httpx.PoolTimeout, "timed out waiting for a free connection"),
    (httpx.RemoteProtocolError, "the connection dropped before an answer"),
    (httpx.ReadError, "the connection dropped while reading"),
    (httpx.WriteError, "the connection dropped while sending"),
    (httpx.ProxyError, "the proxy refused the connection"),
    (httpx.UnsupportedProtocol, "the URL's scheme is not supported"),
)


def unknown_host(exc: BaseException | None) -> bool:
    """True when the host name did not resolve (a typo, or no DNS)."""
    while exc is not None:
        if isinstance(exc, socket.gaierror):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def describe_transport_error(exc: httpx.TransportError) -> str:
    """A short cause for a network failure; httpx's own text may carry a URL, so it is unused."""
    if untrusted_certificate(exc):
        return ("its TLS certificate is not trusted (behind a TLS-inspecting proxy, point "
                "SSL_CERT_FILE at your company's CA bundle)")
    if unknown_host(exc):
        return "its host name could not be resolved"
    for kind, text in _CAUSES:
        if isinstance(exc, kind):
            return text
    return "a network error"


def http_client(**options: Any) -> httpx.Client:
    """An httpx client; a CA bundle (SSL_CERT_FILE, SSL_CERT_DIR) that cannot be loaded is a
    usage error, the same for every client the tool makes."""
    try:
        return httpx.Client(**options)
    except OSError as exc:  # ssl.SSLError included
        raise unloadable_ca_bundle(exc) from None


def unloadable_ca_bundle(exc: OSError) -> UsageError:
    """The CA bundle SSL_CERT_FILE or SSL_CERT_DIR names cannot be loaded: exit 2, one message."""
    return UsageError(
        f"Cannot load the CA certificates named by SSL_CERT_FILE or SSL_CERT_DIR "
        f"({exc.strerror or exc}).",
        hint="Point SSL_CERT_FILE at a PEM file of CA certificates, or unset it.")


class Unreachable(UnavailableError):
    """The network failed; `never_sent` tells whether the request can have reached the server."""

    def __init__(self, exc: httpx.TransportError, url: str) -> None:
        super().__init__(
            f"Could not reach {redact_url(url)}: {describe_transport_error(exc)}.",
            hint=("Check the host name's spelling, " if unknown_host(exc) else "Check ")
            + "the network and proxy settings (HTTPS_PROXY, NO_PROXY), then try again.")
        self.never_sent = never_sent(exc)


class AttemptTooSlow(httpx.ReadTimeout):
    """The attempt's deadline passed while the body was still arriving."""


@dataclass(frozen=True)
class Reply:
    """A whole answer: status, headers and the (capped) body."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def request_id(self) -> str | None:
        for header in ("Runflow-Request-Id", "X-Request-Id"):
            value = self.headers.get(header)
            if value:
                return clean_text(value, 128)
        return None

    def json(self, what: str) -> Any:
        import json

        try:
            return json.loads(self.content)
        except ValueError:
            raise ProtocolError(f"Runflow's {what} answer is not JSON (HTTP {self.status_code}).",
                                request_id=self.request_id) from None


class Attempt:
    """One try: when it must be over, and the clock to tell."""

    def __init__(self, clock: Clock, deadline: float) -> None:
        self.clock, self.deadline = clock, deadline

    def extend(self, seconds: float) -> None:
        self.deadline += seconds

    def check(self, request: httpx.Request) -> None:
        if self.clock.now() > self.deadline:
            raise AttemptTooSlow("the answer took too long", request=request)

    def read_body(self, response: httpx.Response, cap: int, what: str,
                  too_large: Callable[[], Exception] | None = None) -> bytes:
        """The decoded body, refused past `cap` bytes (counted after any Content-Encoding, so a
        gzip bomb stops there too) or past the attempt's deadline; `too_large` makes the error
        for a body that is not Runflow's."""
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                if too_large is not None:
                    raise too_large()
                raise ProtocolError(f"Runflow's {what} answer is over {cap // (1024 * 1024)} MiB; "
                                    "refused.")
            chunks.append(chunk)
            self.check(response.request)
        return b"".join(chunks)


Body = Callable[[], Iterable[bytes]]


class Transport:
    """An httpx client behind the one retry policy; safe to share between threads.

    Given several clients (lanes), each thread keeps to one of them: an httpx pool does its
    bookkeeping under one lock, in time that grows with the square of its connections, so a
    batch's 64 workers share four pools of 16 connections better than one of 64.
    """

    def __init__(self, http: httpx.Client | Sequence[httpx.Client], policy: RetryPolicy,
                 clock: Clock, *, attempt_seconds: float,
                 log: Callable[[str], None] | None = None, name: str = "Runflow",
                 on_retry: Callable[[str], None] | None = None) -> None:
        self._lanes = list(http) if isinstance(http, Sequence) else [http]
        self._thread = threading.local()
        self._next_lane = itertools.count()
        self.policy, self.clock = policy, clock
        self.attempt_seconds = attempt_seconds
        self.name = name
        self._log = log
        self._on_retry = on_retry
        self._lock = threading.Lock()
        self._not_before = 0.0

    def note(self, message: str) -> None:
        if self._log:
            self._log(message)

    def close(self) -> None:
        for lane in self._lanes:
            lane.close()

    def _http(self) -> httpx.Client:
        """The calling thread's lane: its own for as long as it lives, given out in turn."""
        try:
            return self._thread.lane
        except AttributeError:
            self._thread.lane = self._lanes[next(self._next_lane) % len(self._lanes)]
            return self._thread.lane

    def request(self, method: str, url: str, *, what: str = "API", attempts: int | None = None,
                deadline: float | None = None, body: Body | None = None, slack: float = 0.0,
                **kwargs: Any) -> Reply:
        """Send and read the whole answer; a retryable status after the last attempt is returned."""
        def read(response: httpx.Response, attempt: Attempt) -> Reply:
            content = attempt.read_body(response, API_BODY_CAP, what)
            return Reply(response.status_code, response.headers, content)

        return self.exchange(method, url, read, attempts=attempts, deadline=deadline, body=body,
                             slack=slack, **kwargs)

    def exchange(self, method: str, url: str, read: Callable[[httpx.Response, Attempt], T], *,
                 attempts: int | None = None, deadline: float | None = None,
                 body: Body | None = None, slack: float = 0.0, **kwargs: Any) -> T:
        """Send until an answer is final, then `read` it; every wait goes through the clock.

        `read` gets the streamed response and the attempt; a network error it raises (a short
        body, say) counts as a failed attempt. `slack` adds seconds to each attempt's deadline
        for large transfers.
        """
        number = 0
        while True:
            number += 1
            self._wait_for_pause()
            started = self.clock.now()
            limit = self.attempt_seconds + slack
            attempt = Attempt(self.clock, started + limit)
            try:
                request = self._build(method, url, limit, body, **kwargs)
            except httpx.InvalidURL:
                raise ProtocolError(f"Refusing the malformed URL {redact_url(url)}.") from None
            retry_after, rate_limited = None, False
            try:
                response = self._http().send(request, stream=True)
                try:
                    status = response.status_code
                    if self._log:  # the line is built only when someone reads it
                        self.note(f"{method} {redact_url(url)} -> {status} "
                                  f"({self.clock.now() - started:.2f}s)")
                    allowed = self.policy.attempts_for(status, attempts)
                    if not retryable_status(status) or number >= allowed:
                        return read(response, attempt)
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    rate_limited = status == 429
                    reason = f"answered HTTP {status}"
                finally:
                    response.close()
            except httpx.TransportError as exc:
                allowed = self.policy.attempts_for(None, attempts)
                if number >= allowed or untrusted_certificate(exc):
                    raise Unreachable(exc, url) from None
                reason = f"did not answer ({describe_transport_error(exc)})"
            wait = self.policy.delay(number, retry_after)
            if deadline is not None and self.clock.now() + wait > deadline:
                raise UnavailableError(
                    f"{redact_url(url)}: {reason}, and the time allowed ran out before the "
                    "next attempt.")
            if rate_limited:
                self._pause_all(wait)
            self.note(f"{redact_url(url)}: {reason}; retrying in {wait:.1f}s")
            if self._on_retry:
                self._on_retry(f"{self.name} {reason}; retrying in {wait:.0f} s, "
                               f"attempt {number + 1} of {allowed}")
            self.clock.sleep(wait)

    def _build(self, method: str, url: str, limit: float, body: Body | None, *,
               headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Request:
        """The request with the client's headers and the attempt's timeout. Built here rather
        than by `httpx.Client.build_request`, whose cookie jar and base-URL merging this tool
        never uses and which cost more than the rest of the request's own work."""
        merged = self._lanes[0].headers.copy()  # every lane has the same
        if headers:
            merged.update(headers)
        timeout = httpx.Timeout(limit, connect=min(limit, 10.0))
        return httpx.Request(method, url, headers=merged,
                             content=body() if body is not None else None,
                             extensions={"timeout": timeout.as_dict()}, **kwargs)

    def pause(self, attempt: int, retry_after: float | None = None, *,
              rate_limited: bool = False) -> None:
        """Wait as the policy says after failed attempt `attempt` (for callers with own rules);
        after a 429 every other request through this transport waits as long."""
        wait = self.policy.delay(attempt, retry_after)
        if rate_limited:
            self._pause_all(wait)
        self.clock.sleep(wait)

    def _pause_all(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, self.clock.now() + seconds)

    def _wait_for_pause(self) -> None:
        with self._lock:
            left = self._not_before - self.clock.now()
        if left > 0:
            self.clock.sleep(left)
