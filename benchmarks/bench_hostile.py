"""What hostile servers cost runflow-bg, in time and memory (run by hand:
python benchmarks/bench_hostile.py).

Each scenario is a loopback server answering `runs get` badly; the CLI runs as a real process,
and its peak resident memory (ru_maxrss) and wall time are printed. A body dripped a byte every
0.1 s runs with RUNFLOW_BG_HTTP_TIMEOUT=3; the rest with the defaults.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from measured import run_measured


def _start(answer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            try:
                answer(self)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _head(handler, **headers):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()


def drip(handler):
    _head(handler, Content_Length="100000")
    for _ in range(100000):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)


def _chunks(handler, blocks):
    _head(handler, Transfer_Encoding="chunked", **({"Content_Encoding": "gzip"}
                                                   if blocks is _bomb else {}))
    for data in blocks():
        if data:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.write(b"0\r\n\r\n")


def _bomb():
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    for _ in range(2000):  # 2 GB of whitespace, about 2 MB on the wire
        yield packer.compress(b" " * (1024 * 1024))
    yield packer.flush()


def _huge_json():
    yield b'{"id": "r", "status_code": "running", "x": "'
    for _ in range(400):  # 400 MB
        yield b"a" * (1024 * 1024)
    yield b'"}'



SCENARIOS = {
    "body dripped a byte every 0.1 s": (drip, {"RUNFLOW_BG_HTTP_TIMEOUT": "3"}),
    "gzip bomb (2 GB inflated)": (lambda h: _chunks(h, _bomb), {}),
    "400 MB JSON answer": (lambda h: _chunks(h, _huge_json), {}),
}


def main() -> None:
    print(f"{'scenario':<34} {'exit':>4} {'seconds':>8} {'peak MB':>8}")
    for name, (answer, extra) in SCENARIOS.items():
        server = _start(answer)
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "RUNFLOW_BG_HOME": home, "RUNFLOW_API_KEY": "rf_bench_key_1234",
                   "RUNFLOW_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}",
                   "RUNFLOW_BG_RETRIES": "2", **extra}
            done, took, peak = run_measured(["runs", "get", "run-1"], env)
        server.shutdown()
        print(f"{name:<34} {done.returncode:>4} {took:>8.1f} {peak:>8.0f}")


if __name__ == "__main__":
    main()
