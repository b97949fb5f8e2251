"""The Emulator: wires state, API, worker and server together, runs them, and reports what they saw."""

from __future__ import annotations

import threading
import time
from decimal import Decimal, InvalidOperation

from runflow_bg.emulator.api import Api
from runflow_bg.emulator.callbacks import CallbackDelivery, CallbackSender
from runflow_bg.emulator.faults import Faults
from runflow_bg.emulator.runs import PRICE
from runflow_bg.emulator.server import Server
from runflow_bg.emulator.signing import Links
from runflow_bg.emulator.state import RequestRecord, State
from runflow_bg.emulator.tls import Tls
from runflow_bg.emulator.worker import Worker

LOCAL_MAX_SIDE = 1024  # --local's previews: a large photo composited whole would take 700 MB
STOP_TIMEOUT = 5.0
FINISH_TIMEOUT = 15.0  # a run still fetching a foreign zip_url may take FETCH_TIMEOUT
CENT = Decimal("0.01")


class Emulator:
    """A Runflow-compatible API on a local socket, with fault knobs; `with Emulator() as emu:`."""

    def __init__(self, api_key: str = "rf_test_key", host: str = "127.0.0.1", port: int = 0,
                 run_seconds: float = 0.2, callback_secret: str | None = None,
                 callback_retry_delays: tuple[float, ...] = (1.0, 2.0), balance: str | None = "100.00",
                 price: str | Decimal = PRICE, tls: bool = False, max_side: int | None = None):
        self.api_key = api_key
        self.host = host
        self.port = port
        self._run_seconds = run_seconds
        self.callback_secret = callback_secret
        self.callback_retry_delays = tuple(callback_retry_delays)
        self.price = _price(price)
        self.tls = tls
        self.max_side = max_side  # None: outputs the photo's size; else at most this a side
        self.faults = Faults()
        self._state = State(balance)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._server: Server | None = None
        self._tls: Tls | None = None
        self._api: Api | None = None
        self._worker: Worker | None = None
        self._serve_thread: threading.Thread | None = None

    def start(self) -> Emulator:
        """Bind (port 0 picks a free port) and serve on a daemon thread; with tls, make its CA first."""
        if self._server is not None:
            raise RuntimeError("An Emulator can be started once.")
        tls = Tls(self._reachable_host()) if self.tls else None
        try:
            self._server = Server((self.host, self.port), self.faults, self._state, self._stop,
                                  ssl_context=tls.server_context if tls else None)
        except BaseException:
            if tls:
                tls.close()
            raise
        self._tls = tls
        self.port = self._server.server_address[1]
        links = Links(self.base_url)
        sender = CallbackSender(self.callback_secret, self.callback_retry_delays, self._stop,
                                self._state.add_delivery)
        self._worker = Worker(self._state, links, self.faults, sender, self._stop, self._spawn,
                              ssl_context=tls.client_context if tls else None,
                              max_side=self.max_side)
        self._api = self._server.api = Api(api_key=self.api_key, state=self._state, faults=self.faults,
                                           links=links, worker=self._worker, run_seconds=self.run_seconds,
                                           price=self.price)
        self._serve_thread = threading.Thread(target=self._server.serve, name="runflow-emulator", daemon=True)
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and join every thread the emulator started."""
        if self._server is None or self._stop.is_set():
            return
        self._stop.set()
        self._worker.wake()  # runs waiting out a long run_seconds end their wait now
        self._server.wake()
        self._serve_thread.join()
        self._server.server_close()
        deadline = time.monotonic() + STOP_TIMEOUT
        self._server.close_connections(deadline)
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._tls:
            self._tls.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def run_seconds(self) -> float:
        """How long each run takes; a change applies to runs created afterwards."""
        return self._run_seconds

    @run_seconds.setter
    def run_seconds(self, seconds: float) -> None:
        self._run_seconds = seconds
        if self._api is not None:
            self._api.run_seconds = seconds

    @property
    def base_url(self) -> str:
        """http(s)://HOST:PORT without /v1; a wildcard bind is reached through loopback."""
        if self._server is None:
            raise RuntimeError("Start the emulator first.")
        host, scheme = self._reachable_host(), "https" if self.tls else "http"
        return f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        """The PEM file of the CA behind the https certificate, for clients to trust (None without
        tls); stop() deletes it."""
        if self._server is None:
            raise RuntimeError("Start the emulator first.")
        return self._tls.ca_file if self._tls else None

    def finish_runs(self) -> None:
        """End every unfinished run now, held ones too, so a test need not wait out run_seconds.

        Each keeps its computed outcome (one still computing is waited for), so the next read shows
        it finished, and its callback goes out.
        """
        runs = self._state.runs()
        now = time.monotonic()
        for run in runs:
            run.finish_now(now)
        if self._worker is not None:
            self._worker.wake()
            self._worker.wait_outcomes(runs, FINISH_TIMEOUT)

    def set_balance(self, balance: str | None) -> None:
        """A decimal string in USD; None makes the balance endpoint answer 404."""
        self._state.set_balance(balance)

    def runs(self) -> list[dict]:
        """Every run created so far, oldest first, as GET /v1/runs/{id} would show it now."""
        return [self._api.view(run) for run in self._state.runs()] if self._api else []

    @property
    def created_run_count(self) -> int:
        return len(self._state.runs())

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (a client that keeps its connections alive opens few)."""
        return self._server.accepted if self._server is not None else 0

    @property
    def requests(self) -> list[RequestRecord]:
        return self._state.requests()

    def count(self, endpoint: str) -> int:
        """Requests seen for an endpoint, faulted ones included."""
        return sum(record.endpoint == endpoint for record in self._state.requests())

    @property
    def storage_saw_authorization(self) -> bool:
        return any(r.endpoint == "storage_put" and r.had_authorization for r in self._state.requests())

    @property
    def callback_deliveries(self) -> list[CallbackDelivery]:
        return self._state.deliveries()

    def _reachable_host(self) -> str:
        """The bound host, or loopback for a wildcard bind: the host clients are sent to."""
        return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)

    def _spawn(self, target, *args: object) -> None:
        """Start a daemon thread that stop() will join."""
        thread = threading.Thread(target=target, args=args, name="runflow-emulator-run", daemon=True)
        with self._threads_lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()


def _price(price: str | Decimal) -> Decimal:
    """A run's price in USD, whole cents, 0 or more: what a run is charged is what its cost says."""
    try:
        value = Decimal(str(price))
        valid = value.is_finite() and value >= 0 and value == value.quantize(CENT)
    except InvalidOperation:
        valid = False
    if not valid:
        raise ValueError(f"price must be an amount in USD, 0 or more, in whole cents; not {price!r}")
    return value
