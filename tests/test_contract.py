"""Every answer the emulator gives, in every mode, against schemas from Runflow's API reference."""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from jsonschema import Draft202012Validator

import contract
from helpers import KEY, sample_zip
from runflow_bg.emulator import Emulator

MODES = {
    "default": {},
    "sdk shape": {"sdk_shape": True},
    "outputs[]": {"output_shape": "outputs"},
    "older docs": {"status_spelling": "older-docs"},
    "next_pq pages": {"list_envelope": "next_pq"},
    "tls": {},
}
MEMBERS = {"file_image": "image.png", "file_reference": "reference.png"}


def check(schema: dict, data, where: str) -> None:
    problems = [f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}"
                for e in Draft202012Validator(schema).iter_errors(data)]
    assert not problems, f"{where}: " + "; ".join(problems[:5])


@pytest.fixture
def callbacks():
    """A receiver that keeps every callback body."""
    bodies = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode", list(MODES))
def test_every_answer_matches_the_reference(mode, callbacks):
    hook, bodies = callbacks
    with Emulator(api_key=KEY, run_seconds=0.1, tls=mode == "tls",
                  callback_secret="whsec_contract") as emu:
        for name, value in MODES[mode].items():
            setattr(emu.faults, name, value)
        verify = ssl.create_default_context(cafile=emu.ca_file) if mode == "tls" else True
        api = httpx.Client(base_url=emu.base_url + "/v1", verify=verify, timeout=10,
                           headers={"Authorization": f"Bearer {KEY}"})
        envelope = "next_pq" if mode == "next_pq pages" else "reference"
        run_schema = contract.SDK_RUN if mode == "sdk shape" else contract.RUN

        def ok(method: str, path: str, schema: dict | None, status: int = 200, **kwargs):
            answer = api.request(method, path, **kwargs)
            assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
            data = answer.json()
            if schema is not None:
                check(schema, data, f"{method} {path}")
            return data

        ok("GET", "/health", contract.HEALTH)
        ok("GET", "/readiness", None)
        ok("GET", "/auth/me", contract.ME)
        me = ok("GET", "/auth/me", contract.ME, params={"embed": "memberships"})
        assert me["memberships"] and "org" not in me
        ok("GET", "/billing/balance", contract.BALANCE)
        ok("GET", "/credit-balances", contract.CREDIT_BALANCES)
        ok("GET", "/models/runflow/background-replace/pricing", contract.page(contract.PRICE, envelope))
        statuses = ok("GET", "/runs/statuses", None)
        assert "canceled" in json.dumps(statuses) and "dispatching" in json.dumps(statuses)

        data = sample_zip()
        session = ok("POST", "/asset-uploads", contract.UPLOAD_SESSION, status=201,
                     json={"filename": "inputs.zip", "mime_type": "application/zip",
                           "size_bytes": len(data)})
        assert session["upload_url"].startswith("https://" if mode == "tls" else "http")
        stored = httpx.put(session["upload_url"], content=data, verify=verify,
                           headers={"Content-Type": "application/zip"})
        assert stored.is_success
        asset = ok("POST", f"/asset-uploads/{session['asset_id']}/confirmations", contract.ASSET,
                   status=201, json={})
        ok("GET", f"/assets/{asset['id']}", contract.ASSET)

        body = {"input": {"zip_url": asset["url"], **MEMBERS}, "callback_url": hook,
                "metadata": {"sku": "A1"}, "client_ref": f"contract-{mode}"}
        created = ok("POST", "/models/runflow/background-replace/runs", run_schema, status=201,
                     json=body)
        assert created["status_code"] == "queued" and created["id"]
        emu.faults.fail_runs(1, status="failed", code="MODEL_ERROR", message="too dark")
        failed = ok("POST", "/models/runflow/background-replace/runs", run_schema, status=201,
                    json={**body, "client_ref": f"contract-{mode}-2"})
        emu.finish_runs()
        done = ok("GET", f"/runs/{created['id']}", run_schema)
        assert done["status_code"] == "succeeded" and done["cost"] and done["completed_at"]
        bad = ok("GET", f"/runs/{failed['id']}", run_schema)
        assert bad["status_code"] == "failed" and bad["failure_code"] == "MODEL_ERROR"

        ok("GET", "/runs", contract.page(run_schema, envelope),
           params={"q": f"client_ref.EQ:'contract-{mode}' OR status_code:failed",
                   "sort_by": "status_code:asc,created_at:desc"})
        projected = ok("GET", "/runs", None, params={"fields": "id,status_code", "limit": 1})
        assert all(item.keys() == {"id", "status_code"} for item in projected["items"])
        ok("GET", f"/runs/{failed['id']}/logs", contract.page(contract.LOG_LINE, envelope))

        for path, params in (("/runs/no-such-run", {}), ("/runs", {"q": "colour:red"}),
                             ("/runs", {"q": "status_code:("}), ("/runs", {"limit": 501})):
            answer = api.get(path, params=params)
            assert answer.status_code in (404, 422), path
            check(contract.ERROR, answer.json(), f"GET {path} {params}")
        unauthorised = httpx.get(emu.base_url + "/v1/runs", verify=verify)
        assert unauthorised.status_code == 401
        check(contract.ERROR, unauthorised.json(), "GET /runs without a key")

        deadline = time.monotonic() + 10
        while len(bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(bodies) == 2
        for payload in bodies:
            check(contract.CALLBACK, payload, f"callback {payload.get('event')}")
        assert {payload["event"] for payload in bodies} == {"run.completed", "run.failed"}
        history = ok("GET", f"/runs/{created['id']}/callback",
                     {"type": "array", "items": contract.DELIVERY})
        assert history and history[0]["attempts"]
        ok("POST", f"/runs/{created['id']}/callback-redeliveries", contract.DELIVERY, status=201)
