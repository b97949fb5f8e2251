"""What photos given by URL cost, in time and memory (run by hand:
python benchmarks/bench_url_inputs.py).

`replace --dry-run` runs as a real process with a 12-megapixel JPEG given as a file, then by URL
from a loopback host (plain http, which loopback may use): the first fetch, a later command that
revalidates with the ETag (304), and one that reuses a copy kept without validators. Then hostile
hosts: a gzip bomb, an endless body and a body dripped a byte every 0.1 s. Wall time, exit code
and peak resident memory (ru_maxrss) are printed for each.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from measured import run_measured



def photo_jpeg() -> bytes:
    """A 4000x3000 product shot: noise in the middle of a white backdrop."""
    image = Image.new("RGB", (4000, 3000), "white")
    image.paste(Image.effect_noise((2000, 1500), 80).convert("RGB"), (1000, 750))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _bomb(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    for _ in range(2000):  # 2 GB of zeros, about 2 MB on the wire
        data = packer.compress(b"\0" * (1024 * 1024))
        if data:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.write(b"0\r\n\r\n")


def _endless(handler) -> None:
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    block = b"x" * (1024 * 1024)
    while True:
        handler.wfile.write(block)


def _drip(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(100000):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.1)


def serve(photo: bytes) -> ThreadingHTTPServer:
    hostile = {"/bomb.jpg": _bomb, "/endless.jpg": _endless, "/drip.jpg": _drip}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            try:
                path = self.path.partition("?")[0]
                if path in hostile:
                    hostile[path](self)
                    return
                etag = '"v1"' if path == "/tagged.jpg" else None
                if etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(photo)))
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(photo)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(args: list[str], env: dict, cwd: Path) -> tuple[int, float, float]:
    done, took, peak = run_measured(args, env, cwd)
    return done.returncode, took, peak


def main() -> None:
    photo = photo_jpeg()
    server = serve(photo)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "photo.jpg").write_bytes(photo)
        Image.new("RGB", (2048, 1365), (40, 90, 160)).save(work / "scene.jpg")
        env = {**os.environ, "RUNFLOW_BG_HOME": str(work / "home"), "RUNFLOW_BG_RETRIES": "2",
               "RUNFLOW_BG_HTTP_TIMEOUT": "3"}
        for name in ("RUNFLOW_API_KEY", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        scenarios = [
            ("file (12 MP JPEG, %.1f MB)" % (len(photo) / 1e6), "photo.jpg"),
            ("URL, first fetch", f"{base}/tagged.jpg?sig=1"),
            ("URL, later command: ETag -> 304", f"{base}/tagged.jpg?sig=1"),
            ("URL, first fetch, no validators", f"{base}/plain.jpg"),
            ("URL, later command: kept copy", f"{base}/plain.jpg"),
            ("URL: gzip bomb (2 GB inflated)", f"{base}/bomb.jpg"),
            ("URL: endless body", f"{base}/endless.jpg"),
            ("URL: a byte every 0.1 s", f"{base}/drip.jpg"),
        ]
        print(f"{'replace --dry-run, photo given as':<38} {'exit':>4} {'seconds':>8} "
              f"{'peak MB':>8}")
        for name, photo_arg in scenarios:
            code, took, peak = run(["replace", photo_arg, "scene.jpg", "--dry-run"], env, work)
            print(f"{name:<38} {code:>4} {took:>8.2f} {peak:>8.0f}")
    server.shutdown()


if __name__ == "__main__":
    main()
