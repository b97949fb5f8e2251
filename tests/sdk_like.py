"""A small client that behaves as Runflow's own JavaScript SDK does (runflow-io/runflow-js,
packages/sdk/src: client.ts, assets.ts), to walk the SDK's flows against the emulator.

What it copies on purpose, because that is what breaks an emulator that is not faithful:
an upload URL that is not https is refused; a run id is read from `id` only; `wait` ends only on
`succeeded`, `failed` or `canceled` and keeps polling through 5xx; an error body is read from
`error.message`, else `message`; a failed run's message comes from `error.message`.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx

TERMINAL = ("succeeded", "failed", "canceled")


class SdkError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


class RunFailed(SdkError):
    pass


class RunTimeout(SdkError):
    pass


class SdkLike:
    def __init__(self, api_key: str, api_base: str, *, verify, poll_seconds: float = 0.05,
                 timeout_seconds: float = 20.0):
        self.base = api_base.rstrip("/")
        self.http = httpx.Client(verify=verify, timeout=30)
        self.auth = {"Authorization": f"Bearer {api_key}"}
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds

    def request(self, method: str, path: str, body=None):
        headers = {"Accept": "application/json", **self.auth}
        answer = self.http.request(method, self.base + path, json=body, headers=headers)
        if not answer.is_success:
            try:
                parsed = answer.json()
            except ValueError:
                parsed = None
            parsed = parsed if isinstance(parsed, dict) else {}
            error = parsed.get("error") if isinstance(parsed.get("error"), dict) else {}
            message = error.get("message") or parsed.get("message") or answer.text[:300]
            raise SdkError(f"HTTP {answer.status_code}: {message}", status=answer.status_code,
                           code=error.get("code"))
        if "application/json" in answer.headers.get("content-type", ""):
            return answer.json()
        return answer.text

    def health(self):
        return self.request("GET", "/v1/health")

    def upload(self, data: bytes, filename: str, mime_type: str = ""):
        mime_type = mime_type or "application/octet-stream"
        session = self.request("POST", "/v1/asset-uploads",
                               {"filename": filename, "mime_type": mime_type,
                                "size_bytes": len(data)})
        if not session.get("asset_id") or not session.get("upload_url"):
            raise SdkError("upload session response missing asset_id/upload_url")
        if not session["upload_url"].startswith("https://"):
            raise SdkError("assets.upload: refusing a non-https upload URL")
        put = self.http.put(session["upload_url"], content=data,
                            headers={"Content-Type": mime_type})
        if not put.is_success:
            raise SdkError(f"storage PUT failed (HTTP {put.status_code})", status=put.status_code)
        asset = self.request("POST", f"/v1/asset-uploads/{quote(session['asset_id'], safe='')}"
                                     "/confirmations", {"folder_id": None})
        if not asset.get("id") or not asset.get("url"):
            raise SdkError("confirmation response missing id/url")
        return {**asset, "ref": f"runflow://assets/{asset['id']}"}

    def run(self, model: str, body: dict) -> dict:
        parts = model.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise SdkError(f"invalid model id {model!r}")
        return self.request("POST", "/v1/models/" + "/".join(quote(p, safe="") for p in parts)
                            + "/runs", body)

    def get(self, run_id: str) -> dict:
        if not run_id or "/" in run_id or run_id in (".", ".."):
            raise SdkError(f"invalid run id {run_id!r}")
        return self.request("GET", f"/v1/runs/{quote(run_id, safe='')}")

    def wait(self, run_id: str) -> dict:
        deadline = time.monotonic() + self.timeout_seconds
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.get(run_id)
            except SdkError as exc:
                if (exc.status or 0) >= 500:
                    time.sleep(self.poll_seconds)
                    continue
                raise
            if last["status_code"] in TERMINAL:
                break
            time.sleep(self.poll_seconds)
        else:
            raise RunTimeout(f"Run {run_id} did not finish")
        if last["status_code"] in ("failed", "canceled"):
            error = last.get("error") or {}
            raise RunFailed(error.get("message") or f"Run {run_id} {last['status_code']}")
        return last
