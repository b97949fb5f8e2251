"""The HTTP(S) layer: sockets and keep-alive, request bodies, routing to endpoint names, transport faults."""

from __future__ import annotations

import re
import secrets
import selectors
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from runflow_bg.emulator.api import Api
from runflow_bg.emulator.faults import STORAGE_ENDPOINTS, Faults
from runflow_bg.emulator.state import Blob, RequestRecord, State
from runflow_bg.emulator.wire import Request, Response, api_error, storage_error

ROUTES = [
    ("GET", r"/v1/health", "health"),
    ("GET", r"/v1/readiness", "readiness"),
    ("GET", r"/v1/auth/me", "me"),
    ("POST", r"/v1/asset-uploads", "asset_create"),
    ("PUT", r"/storage/uploads/(?P<asset_id>[^/]+)", "storage_put"),
    ("POST", r"/v1/asset-uploads/(?P<asset_id>[^/]+)/confirmations", "asset_confirm"),
    ("GET", r"/v1/assets/types", "asset_types"),
    ("GET", r"/v1/assets/(?P<asset_id>[^/]+)", "asset_get"),
    ("POST", r"/v1/models/(?P<model>.+)/runs", "run_create"),
    ("GET", r"/v1/models/(?P<model>.+)/pricing", "pricing"),
    ("GET", r"/v1/runs", "run_list"),
    ("GET", r"/v1/runs/statuses", "run_statuses"),
    ("GET", r"/v1/runs/(?P<run_id>[^/]+)", "run_get"),
    ("GET", r"/v1/runs/(?P<run_id>[^/]+)/logs", "run_logs"),
    ("POST", r"/v1/admin/runs/(?P<run_id>[^/]+)/cancellation", "run_cancel"),
    ("GET", r"/v1/runs/(?P<run_id>[^/]+)/callback", "callback_history"),
    ("POST", r"/v1/runs/(?P<run_id>[^/]+)/callback-redeliveries", "callback_redeliver"),
    ("GET", r"/v1/billing/balance", "balance"),
    ("GET", r"/v1/credit-balances", "credit_balances"),
    ("GET", r"/files/assets/(?P<asset_id>[^/]+)/(?P<filename>[^/]+)", "asset_file"),
    ("GET", r"/files/outputs/(?P<run_id>[^/]+)/\d+(?:\.webp|/(?P<name>[^/]+))", "output"),
]
_COMPILED = [(method, re.compile(pattern), name) for method, pattern, name in ROUTES]
MAX_BODY_BYTES = 64 * 1024 * 1024
IDLE_TIMEOUT = 120.0


def route(method: str, path: str) -> tuple[str, dict[str, str]]:
    """The endpoint name for a request and its decoded path parameters ("unknown" when none fits)."""
    for verb, pattern, name in _COMPILED:
        match = pattern.fullmatch(path)
        if match and verb == method:
            groups = match.groupdict().items()
            return name, {key: unquote(value) for key, value in groups if value is not None}
    return "unknown", {}


def recorded(headers: Message) -> dict[str, str]:
    """The request's headers for its record, names as sent; the API key never kept, only "***"."""
    return {name: "***" if name.lower() == "authorization" else value for name, value in headers.items()}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runflow-bg-emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        """Silent: tests and scripts read the emulator's request records instead."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        server = self.server
        parts = urlsplit(self.path)
        endpoint, params = route(self.command, parts.path)
        had_key = "Authorization" in self.headers
        record = server.state.record(
            RequestRecord(self.command, parts.path, endpoint, had_key, headers=recorded(self.headers)))
        upload = None
        try:
            if endpoint == "storage_put" and not self._chunked():  # kept on disk when large
                upload, body = Blob.receive(self.rfile.read, self._content_length()), b""
            else:
                body = self._read_body()
        except ValueError as exc:  # broken framing: nothing after it on this connection can be trusted
            self.close_connection = True
            bad = storage_error if endpoint in STORAGE_ENDPOINTS else api_error
            self._send(record, endpoint, bad(400, None, str(exc)))
            return
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        request = Request(self.command, parts.path, query, self.headers, body, params, upload)
        failure = server.faults.take("fail", endpoint)
        response = failure.response(endpoint) if failure else self._process(endpoint, request)
        if server.faults.take("drop", endpoint):
            self.close_connection = True
            return
        delay = server.faults.take("delay", endpoint)
        if delay:
            server.stop.wait(delay)
        self._send(record, endpoint, response)

    def _process(self, endpoint: str, request: Request) -> Response:
        try:
            return self.server.api.handle(endpoint, request)
        except Exception:  # an emulator bug answers 500, as a real server would, and shows its traceback
            traceback.print_exc()
            return api_error(500, "INTERNAL_ERROR", "The emulator failed to handle this request.")

    def _read_body(self) -> bytes:
        """The request body, sent with Content-Length or chunked; ValueError when framing is broken."""
        if self._chunked():
            return self._read_chunked()
        length = self._content_length()
        body = self.rfile.read(length)
        if len(body) != length:
            raise ValueError("The body ended before Content-Length bytes.")
        return body

    def _chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def _content_length(self) -> int:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError(f"Content-Length {length} is out of range.")
        return length

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip(), 16)
            total += size
            if size < 0 or total > MAX_BODY_BYTES:
                raise ValueError("Bad chunk size.")
            if size == 0:
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)
        while self.rfile.readline(1024).strip():  # trailers, up to the blank line
            pass
        return b"".join(chunks)

    def _send(self, record: RequestRecord, endpoint: str, response: Response) -> None:
        record.status = response.status
        self.send_response(response.status)
        headers = dict(response.headers)
        if endpoint not in STORAGE_ENDPOINTS:
            headers.setdefault("Runflow-Request-Id", f"req_{secrets.token_hex(12)}")
        for name, value in headers.items():
            self.send_header(name, value.encode().decode("latin-1"))  # non-ASCII goes out as UTF-8 bytes
        declared = response.declared_length
        self.send_header("Content-Length", str(len(response.body) if declared is None else declared))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)
        if declared is not None:  # the rest of the promised body never comes
            self.close_connection = True


class Server(ThreadingHTTPServer):
    """Tracks its connections, so stop() can close idle keep-alive sockets and join their threads."""

    daemon_threads = True
    # connections waiting for accept(): a batch at -j 256 opens many at once
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], faults: Faults, state: State, stop: threading.Event,
                 ssl_context: ssl.SSLContext | None = None):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.faults = faults
        self.state = state
        self.stop = stop
        self.api: Api | None = None
        self._live: dict[threading.Thread, socket.socket] = {}
        self._live_lock = threading.Lock()
        self.accepted = 0  # connections accepted so far: how well clients reuse them
        self._waker = socket.socketpair()  # before binding: a failed bind calls server_close()
        super().__init__(address, _Handler)
        if ssl_context is not None:
            # Each connection's handshake happens on its own thread, at its first read, under the
            # handler's timeout: a client that connects and says nothing cannot stall accept().
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True,
                                                  do_handshake_on_connect=False)

    def serve(self) -> None:
        """serve_forever's loop, woken by a socket pair instead of polling, so stop() takes no 0.5 s."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._waker[0], selectors.EVENT_READ)
            while not self.stop.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self and not self.stop.is_set():
                        self._handle_request_noblock()

    def wake(self) -> None:
        self._waker[1].send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        for end in self._waker:
            end.close()

    def server_bind(self) -> None:
        # HTTPServer's own server_bind looks up the host's FQDN, which can stall on some resolvers.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: socket.socket, client_address: object) -> None:
        thread = threading.Thread(target=self._process, args=(request, client_address),
                                  name="runflow-emulator-connection", daemon=True)
        with self._live_lock:
            self._live[thread] = request
            self.accepted += 1
        thread.start()

    def _process(self, request: socket.socket, client_address: object) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._live.pop(threading.current_thread(), None)

    def close_connections(self, deadline: float) -> None:
        with self._live_lock:
            live = list(self._live.items())
        for _, connection in live:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread, _ in live:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: socket.socket, client_address: object) -> None:
        """A client hanging up is routine here; anything else still prints its traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)
