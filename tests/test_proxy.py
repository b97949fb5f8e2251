"""Corporate networks: HTTP(S)_PROXY and NO_PROXY are honoured, and SSL_CERT_FILE is trusted."""

from __future__ import annotations

import http.client
import io
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from helpers import KEY, cli_env, run_cli
from runflow_bg.client import RunflowClient
from runflow_bg.errors import UsageError

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
              "trailer", "transfer-encoding", "upgrade", "content-length"}


class Relay:
    """An HTTP proxy on 127.0.0.1 that relays plain-http requests and records them.

    With `upstream` it is a reverse proxy instead (origin-form requests go there), and with
    `tls` (cert and key files) it speaks https. CONNECT, the start of an https tunnel, is
    recorded and refused. `log` is what the proxy itself writes down: request lines.
    """

    def __init__(self, upstream: str | None = None, tls: tuple[str, str] | None = None):
        self.relayed: list[tuple[str, str, dict]] = []
        self.log: list[str] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def relay_request(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                relay.relayed.append((self.command, self.path, dict(self.headers)))
                target = urlsplit(self.path if self.path.startswith("http://") else upstream + self.path)
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                path = target.path + (f"?{target.query}" if target.query else "")
                connection.request(self.command, path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                connection.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = relay_request

            def do_CONNECT(self):
                relay.relayed.append(("CONNECT", self.path, dict(self.headers)))
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args):
                relay.log.append(format % args)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relay():
    proxy = Relay()
    yield proxy
    proxy.close()


def test_http_proxy_relays_every_request(emu, relay, work, env):
    env["HTTP_PROXY"] = f"http://127.0.0.1:{relay.port}"
    result = run_cli("replace", "bottle.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    paths = [urlsplit(url).path for _, url, _ in relay.relayed]
    assert all(url.startswith(emu.base_url) for _, url, _ in relay.relayed)
    assert "/v1/asset-uploads" in paths and "/v1/models/runflow/background-replace/runs" in paths
    assert any(path.startswith("/storage/uploads/") for path in paths), "the upload went through it"
    assert any(path.startswith("/files/outputs/") for path in paths), "the download went through it"
    assert len(relay.relayed) == len(emu.requests)
    for method, url, headers in relay.relayed:
        on_api = urlsplit(url).path.startswith("/v1/")
        assert (headers.get("Authorization") == f"Bearer {KEY}") == on_api, (method, url)
    assert KEY not in "\n".join(relay.log), "the key travels only inside the relayed API requests"


def test_no_proxy_bypasses_the_proxy(emu, relay, work, env):
    env.update(HTTP_PROXY=f"http://127.0.0.1:{relay.port}", NO_PROXY="127.0.0.1,localhost")
    result = run_cli("replace", "bottle.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert relay.relayed == [] and emu.requests


def test_https_goes_through_the_proxy_as_a_tunnel(relay, work, env):
    env.update(HTTPS_PROXY=f"http://127.0.0.1:{relay.port}", RUNFLOW_BG_RETRIES="1",
               RUNFLOW_BASE_URL="https://api.runflow.example")
    result = run_cli("runs", "get", "some-run", env=env, cwd=work)
    assert result.returncode == 5
    assert "the proxy refused the connection" in result.stderr.decode()
    assert [(method, target) for method, target, _ in relay.relayed] == [
        ("CONNECT", "api.runflow.example:443")]
    assert KEY not in repr(relay.relayed) + "\n".join(relay.log), "a tunnel shows only host and port"


def test_local_runs_never_go_through_a_proxy(relay, work, isolated_env):
    env = cli_env(None, isolated_env, key=None, RUNFLOW_BG_LOCAL_RUN_SECONDS="0.2")
    env.update(HTTP_PROXY=f"http://127.0.0.1:{relay.port}", SSL_CERT_FILE=str(work / "bottle.png"))
    result = run_cli("replace", "--local", "bottle.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert relay.relayed == []


@pytest.fixture
def tls_front(emu, tmp_path):
    """An https reverse proxy in front of the emulator, with a certificate of its own CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (.ci/run installs it)")
    cert, key = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    front = Relay(upstream=emu.base_url, tls=(str(cert), str(key)))
    yield f"https://localhost:{front.port}", cert
    front.close()


def test_ssl_cert_file_makes_a_private_ca_trusted(tls_front, work, env):
    base_url, cert = tls_front
    env.update(RUNFLOW_BASE_URL=base_url, SSL_CERT_FILE=str(cert))
    result = run_cli("runs", "list", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()


def test_an_untrusted_certificate_exits_5_at_once_naming_ssl_cert_file(tls_front, work, env):
    base_url, _ = tls_front
    env.update(RUNFLOW_BASE_URL=base_url, RUNFLOW_BG_RETRIES="5")
    result = run_cli("--debug", "runs", "list", env=env, cwd=work, timeout=30)
    assert result.returncode == 5
    stderr = result.stderr.decode()
    assert "its TLS certificate is not trusted" in stderr and "SSL_CERT_FILE" in stderr
    assert "retrying" not in stderr, "a certificate problem is not retried"


def test_a_ca_bundle_that_cannot_be_loaded_exits_2_before_anything_is_sent(work, env):
    env.update(SSL_CERT_FILE=str(work / "bottle.png"), RUNFLOW_BASE_URL="https://api.runflow.example",
               RUNFLOW_BG_RETRIES="1")
    result = run_cli("runs", "list", env=env, cwd=work)
    assert result.returncode == 2, "a connection attempt would have ended in exit 5"
    assert "Cannot load the CA certificates named by SSL_CERT_FILE" in result.stderr.decode()


def test_plain_http_loads_no_ca_bundle_until_a_tls_connection_needs_it(emu, tls_front, work,
                                                                       monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(work / "bottle.png"))
    with RunflowClient(KEY, emu.base_url) as client:
        assert client.list_runs().items == ()
        base_url, _ = tls_front
        with pytest.raises(UsageError, match="Cannot load the CA certificates named by SSL_CERT_FILE"):
            client.download(f"{base_url}/v1/health", io.BytesIO())
    assert [request.path for request in emu.requests] == ["/v1/runs"]
