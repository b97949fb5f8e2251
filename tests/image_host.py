"""An image host for tests: https on 127.0.0.1 with a throwaway CA, serving what a test puts on
it and noting every request with its headers (plain http too, to stand in for a proxy)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from runflow_bg.emulator.tls import Tls


@dataclass
class Route:
    """What one path answers: a body with its status and headers; an `etag` or
    `last_modified` answers 304 to a request that names it; `length` None sends no
    Content-Length (the body ends when the connection closes), else the number to announce."""

    body: bytes = b""
    status: int = 200
    headers: dict = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    length: int | None | bool = True  # True: the body's own length


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    status: int
    context: object = None  # what the host's `observe` said when the request came


class ImageHost:
    """`with ImageHost() as host: host.put("/p.png", data); host.url("/p.png")`."""

    def __init__(self, *, tls: bool = True, observe=lambda: None) -> None:
        self.observe = observe
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._tls = Tls("127.0.0.1") if tls else None
        self.ca_file = self._tls.ca_file if self._tls else None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        if self._tls:
            self._server.socket = self._tls.server_context.wrap_socket(self._server.socket,
                                                                      server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> ImageHost:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._tls:
            self._tls.close()

    def url(self, path: str) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}{path}"

    def put(self, path: str, body: bytes = b"", **route) -> str:
        """Serve `body` at `path`; returns its URL."""
        self.routes[path] = Route(body, **route)
        return self.url(path)

    def seen(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if path is None or urlsplit(r.path).path == path]

    def _note(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)


def _handler(host: ImageHost):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            route = host.routes.get(urlsplit(self.path).path, Route(b"no such image", 404))
            status = route.status
            if route.etag and self.headers.get("If-None-Match") == route.etag or \
                    route.last_modified and \
                    self.headers.get("If-Modified-Since") == route.last_modified:
                status = 304
            host._note(Seen("GET", self.path, dict(self.headers.items()), status,
                            host.observe()))
            self.send_response(status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.etag:
                self.send_header("ETag", route.etag)
            if route.last_modified:
                self.send_header("Last-Modified", route.last_modified)
            body = b"" if status == 304 else route.body
            length = len(body) if route.length is True else route.length
            if length is None:
                self.close_connection = True
                self.send_header("Connection", "close")
            elif status != 304:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            try:
                for start in range(0, len(body), 1 << 20):
                    self.wfile.write(body[start:start + (1 << 20)])
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True

        def do_CONNECT(self) -> None:  # a tunnel asked of this host as a proxy: noted, refused
            host._note(Seen("CONNECT", self.path, dict(self.headers.items()), 502,
                            host.observe()))
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
