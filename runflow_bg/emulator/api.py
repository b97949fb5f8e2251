"""The endpoints: each turns a Request into a Response the way the Runflow API answers it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from urllib.parse import urlsplit

from runflow_bg.emulator import endpoints
from runflow_bg.emulator.assets import MAX_UPLOAD_BYTES, accepted_types, resolve_zip_url
from runflow_bg.emulator.corrupt import corrupt_run
from runflow_bg.emulator.faults import Faults
from runflow_bg.emulator.idempotency import IdempotencyKeys
from runflow_bg.emulator.listing import Window, checked
from runflow_bg.emulator.outputs import serve_output
from runflow_bg.emulator.query import DEFAULT_SORT, parse_fields, parse_q, parse_sort, project, sort_rows
from runflow_bg.emulator.runs import MODEL, ORG_ID, PRICE, USER_ID, Run
from runflow_bg.emulator.signing import Links
from runflow_bg.emulator.state import Asset, Blob, State
from runflow_bg.emulator.wire import (EXPIRED, Reject, Request, Response, api_error, json_response,
                                     storage_error)
from runflow_bg.emulator.worker import Worker

PUBLIC_ENDPOINTS = frozenset({"health", "readiness", "storage_put", "asset_file", "output", "unknown"})


class Api:
    """One method per endpoint name; API errors come back in the docs' form."""

    def __init__(self, *, api_key: str, state: State, faults: Faults, links: Links, worker: Worker,
                 run_seconds: float, price: Decimal = PRICE):
        self.api_key = api_key
        self.state = state
        self.faults = faults
        self.links = links
        self.worker = worker
        self.run_seconds = run_seconds
        self.price = price
        self.idempotency = IdempotencyKeys()

    def handle(self, endpoint: str, request: Request) -> Response:
        if endpoint not in PUBLIC_ENDPOINTS and not self._authorized(request):
            return api_error(401, "UNAUTHORIZED", "Missing or invalid API key.")
        try:
            return getattr(self, endpoint)(request)
        except Reject as exc:
            return exc.response

    def view(self, run: Run, now: float | None = None) -> dict:
        """The run as the API shows it now, in the shape the knobs ask for."""
        return run.view(time.monotonic() if now is None else now, self.links, self.faults.shape())

    # -- account ------------------------------------------------------------------------------

    def health(self, request: Request) -> Response:
        return json_response(200, {"ok": True, "status": "ok"})

    def readiness(self, request: Request) -> Response:
        return endpoints.readiness()

    def me(self, request: Request) -> Response:
        return endpoints.me(request.query.get("embed"))

    def balance(self, request: Request) -> Response:
        return endpoints.balance(self.state.balance)

    def credit_balances(self, request: Request) -> Response:
        return endpoints.credit_balances(self.state.balance)

    def pricing(self, request: Request) -> Response:
        return endpoints.pricing(request.params["model"], self.price, Window.from_query(request.query),
                                 self.faults.list_envelope)

    def unknown(self, request: Request) -> Response:
        return api_error(404, "NOT_FOUND", f"No route for {request.method} {request.path}.")

    # -- assets -------------------------------------------------------------------------------

    def asset_create(self, request: Request) -> Response:
        data = _json_object(request)
        filename, mime_type, size = data.get("filename"), data.get("mime_type"), data.get("size_bytes")
        problems, types = [], accepted_types(self.faults)
        if not isinstance(filename, str) or not filename.strip() or len(filename) > 500:
            problems.append(("filename", "must be a non-empty string of at most 500 characters"))
        if mime_type not in types:
            problems.append(("mime_type", f"must be one of {', '.join(types)} (GET /v1/assets/types)"))
        if not _is_int(size) or size < 1:
            problems.append(("size_bytes", "must be a positive integer"))
        elif size > MAX_UPLOAD_BYTES:
            problems.append(("size_bytes", f"must be at most {MAX_UPLOAD_BYTES} (50 MiB)"))
        _refuse(problems)
        asset = Asset(filename, mime_type, size)
        self.state.add_asset(asset)
        return json_response(201, {"asset_id": asset.id, "upload_url": self.links.upload_url(asset.id)})

    def asset_types(self, request: Request) -> Response:
        return endpoints.asset_types(accepted_types(self.faults))

    def storage_put(self, request: Request) -> Response:
        if self.faults.take("expire", "storage_put"):
            return storage_error(403, *EXPIRED)
        problem = self.links.check(request.path, request.query)
        if problem:
            return storage_error(403, *problem)
        asset = self.state.asset(request.params["asset_id"])
        if asset is None:
            return storage_error(404, "NoSuchUpload", "The specified upload does not exist.")
        upload = request.upload or Blob(request.body)
        if upload.size != asset.size_bytes:
            return storage_error(400, "IncompleteBody", f"Received {upload.size} bytes; "
                                                        f"the upload declared size_bytes {asset.size_bytes}.")
        self.state.store_upload(asset.id, upload)
        etag = hashlib.md5(usedforsecurity=False)
        with upload.open() as stream:
            while chunk := stream.read(1024 * 1024):
                etag.update(chunk)
        return Response(200, headers={"ETag": f'"{etag.hexdigest()}"'})

    def asset_confirm(self, request: Request) -> Response:
        asset = self._asset(request)
        if not self.state.confirm(asset.id):
            return api_error(409, "UPLOAD_INCOMPLETE",
                             "Nothing has been uploaded to this asset's upload_url yet.")
        return json_response(201, self._asset_view(asset))

    def asset_get(self, request: Request) -> Response:
        asset = self._asset(request)
        if not asset.confirmed:
            return api_error(404, "ASSET_NOT_FOUND", f"No asset with id {asset.id}.")
        return json_response(200, self._asset_view(asset))

    def asset_file(self, request: Request) -> Response:
        problem = self.links.check(request.path, request.query)
        if problem:
            return storage_error(403, *problem)
        asset = self.state.asset(request.params["asset_id"])
        if asset is None or asset.data is None or asset.filename != request.params["filename"]:
            return storage_error(404, "NoSuchKey", "The specified key does not exist.")
        return Response(200, asset.data.read(), {"Content-Type": asset.mime_type})

    # -- runs ---------------------------------------------------------------------------------

    def run_create(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is None or self.faults.ignore_idempotency:
            view = self._new_run(request)
        else:
            view = self.idempotency.once(key, request.body, lambda: self._new_run(request))
        return self._run_answer("run_create", 201, view)

    def run_get(self, request: Request) -> Response:
        return self._run_answer("run_get", 200, self.view(self._run(request)))

    def run_cancel(self, request: Request) -> Response:
        """The admin cancel: 201 when it ends an unfinished run, 200 and the run unchanged otherwise."""
        run = self._run(request)
        reason = (_json_object(request) if request.body.strip() else {}).get("reason")
        if reason is not None and (not isinstance(reason, str) or not 3 <= len(reason) <= 500):
            _refuse([("reason", "must be a string of 3 to 500 characters or null")])
        return json_response(201 if self.worker.cancel(run) else 200, self.view(run))

    def run_list(self, request: Request) -> Response:
        query = request.query
        match, sort, fields, window = checked(
            lambda: parse_q(query.get("q", "")), lambda: parse_sort(query.get("sort_by") or DEFAULT_SORT),
            lambda: parse_fields(query.get("fields", "")), lambda: Window.parse(query))
        now = time.monotonic()
        lag = self.faults.listing_lag
        runs = [run for run in self.state.runs() if now - run.created >= lag]
        if sort[0][1]:  # ties keep creation order, newest first when the first key descends
            runs.reverse()
        views = sort_rows([view for view in (self.view(run, now) for run in runs) if match(view)], sort)
        answer = window.page(views, self.faults.list_envelope)
        answer["items"] = [project(view, fields) for view in answer["items"]]
        return json_response(200, answer)

    def run_statuses(self, request: Request) -> Response:
        return endpoints.run_statuses()

    def run_logs(self, request: Request) -> Response:
        view = self.view(self._run(request))
        return endpoints.run_logs(view, Window.from_query(request.query), self.faults.list_envelope)

    def output(self, request: Request) -> Response:
        return serve_output(request, self.state, self.faults, self.links)

    # -- callbacks ----------------------------------------------------------------------------

    def callback_history(self, request: Request) -> Response:
        run = self._run(request)
        return json_response(200, [delivery.view() for delivery in self.state.deliveries(run.id)])

    def callback_redeliver(self, request: Request) -> Response:
        run = self._run(request)
        if not run.callback_url:
            return api_error(409, "NO_CALLBACK_URL", f"Run {run.id} has no callback_url.")
        if not run.is_finished(time.monotonic()):
            return api_error(409, "RUN_NOT_FINISHED", f"Run {run.id} has not finished yet.")
        return json_response(201, self.worker.redeliver(run).view())

    # -- helpers ------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        given = token.strip().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self.api_key.encode())

    def _asset(self, request: Request) -> Asset:
        asset = self.state.asset(request.params["asset_id"])
        if asset is None:
            raise Reject(api_error(404, "ASSET_NOT_FOUND", f"No asset with id {request.params['asset_id']}."))
        return asset

    def _asset_view(self, asset: Asset) -> dict:
        """The Asset as the confirmation and `GET /v1/assets/{id}` answer it; `url` freshly signed."""
        stamp = asset.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {"id": asset.id, "org_id": ORG_ID, "folder_id": None, "name": asset.filename,
                "r2_key": f"assets/{asset.id}/{asset.filename}",
                "url": self.links.asset_url(asset.id, asset.filename), "thumbnail_url": None,
                "mime_type": asset.mime_type, "size_bytes": asset.size_bytes,
                "asset_type": "file", "source_type": "upload", "source_id": None,
                "created_by": USER_ID, "created_at": stamp, "updated_at": stamp}

    def _new_run(self, request: Request) -> dict:
        """Create, charge and start a run; its view is the create's answer (kept for replays)."""
        model = request.params["model"]
        if model != MODEL:
            raise Reject(api_error(404, "MODEL_NOT_FOUND", f"No model named {model!r}."))
        data = _json_object(request)
        resolve_zip_url(data, self.state, self.links, self.faults)
        _refuse(_run_problems(data))
        run = Run(input=dict(data["input"]), run_seconds=self.run_seconds,
                  callback_url=data.get("callback_url"), metadata=data.get("metadata"),
                  client_ref=data.get("client_ref"), price=self.price, override=self.faults.override)
        if self.faults.run_id_prefix:
            run.id = self.faults.run_id_prefix + run.id
        if not self.state.add_run(run):
            message = (f"The balance ({self.state.balance:.2f} USD) does not cover a run "
                       f"({self.price:.2f} USD). Top up to continue.")
            raise Reject(api_error(402, "INSUFFICIENT_CREDIT", message))
        self.worker.start(run, self.faults.take("run"))
        view = self.view(run, now=run.created)
        if self.faults.sdk_shape:
            view["run_id"] = run.id
        return view

    def _run_answer(self, endpoint: str, status: int, view: dict) -> Response:
        """The run as JSON, unless corrupt_runs asks for a broken body in its place."""
        mode = self.faults.take("corrupt", endpoint)
        return corrupt_run(mode, status, view) if mode else json_response(status, view)

    def _run(self, request: Request) -> Run:
        run = self.state.run(request.params["run_id"])
        if run is None:
            raise Reject(api_error(404, "RUN_NOT_FOUND", f"No run with id {request.params['run_id']}."))
        return run


def _json_object(request: Request) -> dict:
    try:
        data = json.loads(request.body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        _refuse([("body", "must be a JSON object")])
    return data


def _run_problems(data: dict) -> list[tuple[str, str]]:
    """Every field of a create body that the API would refuse, with why."""
    problems = []
    run_input = data.get("input")
    if not isinstance(run_input, dict):
        problems.append(("input", "must be an object"))
    else:
        if not _is_http_url(run_input.get("zip_url")):
            problems.append(("input.zip_url", "must be an http(s) URL"))
        for name in ("file_image", "file_reference"):
            if not isinstance(run_input.get(name), str) or not run_input[name].strip():
                problems.append((f"input.{name}", "must be a non-empty string"))
        if not isinstance(run_input.get("prompt"), (str, type(None))):
            problems.append(("input.prompt", "must be a string or null"))
    if data.get("callback_url") is not None and not _is_http_url(data["callback_url"]):
        problems.append(("callback_url", "must be an http(s) URL or null"))
    if not isinstance(data.get("metadata"), (dict, type(None))):
        problems.append(("metadata", "must be an object or null"))
    client_ref = data.get("client_ref")
    if client_ref is not None and (not isinstance(client_ref, str) or len(client_ref) > 255):
        problems.append(("client_ref", "must be a string of at most 255 characters or null"))
    return problems


def _refuse(problems: list[tuple[str, str]]) -> None:
    if problems:
        message = "Invalid request: " + "; ".join(f"{name} {why}" for name, why in problems) + "."
        errors = [{"field": name, "msg": why} for name, why in problems]
        raise Reject(api_error(422, "VALIDATION_ERROR", message, errors))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
