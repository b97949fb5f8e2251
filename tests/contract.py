"""JSON Schemas of Runflow's answers, written from its API reference (docs.runflow.io/api-reference,
as summarised with sources in the project's API notes), to hold the emulator to them.

Each schema requires what the reference shows and allows more (answers grow), so a schema fails
only when a documented field is missing or of the wrong type.
"""

from __future__ import annotations

STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
NINT = {"type": ["integer", "null"]}
NOBJ = {"type": ["object", "null"]}
BOOL = {"type": "boolean"}
STAMP = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$"}
NSTAMP = {"anyOf": [STAMP, {"type": "null"}]}
DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}


def obj(required: dict, **optional) -> dict:
    return {"type": "object", "required": sorted(required),
            "properties": {**required, **optional}}


STATUSES = ["queued", "dispatching", "running", "succeeded", "partial_succeeded", "failed",
            "canceled", "cancelled"]

OUTPUT = {"anyOf": [
    {"type": "null"},
    obj({"image_urls": {"type": "array", "items": STR}}),
    obj({"outputs": {"type": "array", "items": obj({"url": STR, "type": STR})}}),
    obj({"code": NSTR, "message": NSTR}),  # a failed run's error envelope (callbacks)
]}

RUN = obj({
    "id": STR, "flow_id": NSTR, "model_id": NSTR, "comfyui_workflow_id": NSTR,
    "target_type": NSTR, "target_version": NSTR, "org_id": NSTR,
    "status_code": {"enum": STATUSES}, "source_code": NSTR, "input": NOBJ, "output": OUTPUT,
    "context": NOBJ, "duration_ms": NINT, "cost": {"anyOf": [DECIMAL, {"type": "null"}]},
    "cost_breakdown": {"type": ["object", "array", "null"]}, "nodes_total": NINT,
    "nodes_completed": NINT, "resolved_template_id": NSTR, "batch_id": NSTR, "client_ref": NSTR,
    "jurisdiction_code": NSTR, "flow_version_id": NSTR, "request_id": NSTR, "created_by": NSTR,
    "created_at": STAMP, "started_at": NSTAMP, "completed_at": NSTAMP, "callback_url": NSTR,
    "metadata": NOBJ, "has_logs": BOOL, "has_node_runs": BOOL,
    "links": {"type": ["object", "array", "null"]}, "failure_code": NSTR, "failure_message": NSTR,
    "failure_stage_code": NSTR, "node_runs": {"type": "array"},
})

SDK_RUN = {"allOf": [RUN, obj({"finished_at": NSTAMP, "error": NOBJ, "model": STR})]}


def page(item: dict, envelope: str) -> dict:
    cursors = ({"first": NSTR, "next": NSTR, "previous": NSTR} if envelope == "reference"
               else {"next_pq": NSTR, "prev_pq": NSTR})
    return obj({"items": {"type": "array", "items": item}, **cursors})


ERROR = obj({"code": STR, "message": STR},
            errors={"type": ["array", "null"], "items": obj({"msg": STR})})

UPLOAD_SESSION = obj({"asset_id": STR, "upload_url": STR})

ASSET = obj({"id": STR, "org_id": NSTR, "folder_id": NSTR, "name": STR, "r2_key": NSTR, "url": STR,
             "thumbnail_url": NSTR, "mime_type": STR, "size_bytes": {"type": "integer"},
             "asset_type": NSTR, "source_type": NSTR, "source_id": NSTR, "created_by": NSTR,
             "created_at": STAMP, "updated_at": STAMP})

HEALTH = {"anyOf": [obj({"ok": {"const": True}}), obj({"status": {"const": "ok"}})]}

ME = obj({"id": STR, "email": STR, "first_name": NSTR, "last_name": NSTR, "avatar_url": NSTR,
          "timezone": NSTR, "locale_code": NSTR, "email_verified_at": NSTAMP,
          "memberships": {"anyOf": [{"type": "null"}, {"type": "array", "items": obj({
              "org": obj({"id": STR, "name": STR, "slug": STR, "plan_code": NSTR}),
              "role_code": STR, "scopes": {"type": "array", "items": STR}})}]}})

BALANCE = obj({"id": STR, "org_id": STR, "balance": {"anyOf": [DECIMAL, {"type": "null"}]},
               "low_balance_threshold": {"anyOf": [DECIMAL, {"type": ["number", "null"]}]},
               "low_balance_notified_at": NSTAMP, "created_at": STAMP, "updated_at": STAMP})

CREDIT_BALANCES = obj({"items": {"type": "array", "items": {"anyOf": [
    obj({"balance_usd": {"type": ["string", "number"]}}),
    obj({"balance": {"type": ["string", "number"]}})]}}})

PRICE = obj({"id": STR, "model_id": STR, "pricing_model_code": STR, "dimension_code": NSTR,
             "price": DECIMAL, "currency_code": {"const": "USD"}, "unit_code": STR})

LOG_LINE = obj({"id": STR, "run_id": STR, "level_code": STR, "message": STR, "timestamp": STAMP,
                "meta": NOBJ})

ATTEMPT = obj({"id": STR, "delivery_id": STR, "attempt_number": {"type": "integer"},
               "status_code": NINT, "response_body": NSTR, "response_time_ms": NINT,
               "error_message": NSTR, "created_at": STAMP})

DELIVERY = obj({"id": STR, "run_id": STR, "callback_url": STR, "payload_bytes": NSTR,
                "payload": {"type": "object"}, "signing_secret_id": NSTR, "is_automatic": BOOL,
                "status_code": STR, "failure_reason_code": NSTR, "failure_detail": NSTR,
                "attempt_count": {"type": "integer"}, "max_attempts": {"type": "integer"},
                "next_attempt_at": NSTAMP, "created_at": STAMP, "updated_at": STAMP,
                "completed_at": NSTAMP, "attempts": {"type": "array", "items": ATTEMPT}})

CALLBACK = obj({"event": {"enum": ["run.completed", "run.failed", "run.cancelled",
                                   "run.partial_succeeded"]},
                "run_id": STR, "status": {"enum": STATUSES}, "output": OUTPUT,
                "duration_ms": NINT, "created_at": STAMP, "completed_at": NSTAMP,
                "metadata": NOBJ})
