"""The small read-only answers: account, balances, pricing, statuses, run logs, readiness, asset types.

Shapes follow Runflow's API reference; where its body is unpublished, a small object stands in.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from runflow_bg.emulator.assets import MAX_UPLOAD_BYTES
from runflow_bg.emulator.listing import Window
from runflow_bg.emulator.runs import MODEL, MODEL_ID, ORG_ID, USER_ID
from runflow_bg.emulator.wire import Response, api_error, json_response

BALANCE_ID = "0195f0c2-7d3a-7c41-9b6e-4a2f3c8d5e13"
PRICING_ID = "0195f0c2-7d3a-7c41-9b6e-4a2f3c8d5e14"
OPENED = "2026-01-01T00:00:00.000Z"  # when the emulator's account, org and balance were made
SCOPES = ("runs:create", "runs:read", "assets:create")
# The documented status_code values, in lifecycle order, and whether a run ends there.
STATUSES = (("queued", False), ("dispatching", False), ("running", False), ("succeeded", True),
            ("partial_succeeded", True), ("failed", True), ("canceled", True))


def me(embed: str | None) -> Response:
    """The current user; memberships only when `?embed=memberships` asks, as the reference does."""
    memberships = None
    if "memberships" in (embed or "").split(","):
        org = {"id": ORG_ID, "name": "Runflow emulator", "slug": "runflow-emulator", "plan_code": "free"}
        memberships = [{"org": org, "role_code": "admin", "scopes": list(SCOPES)}]
    return json_response(200, {
        "id": USER_ID, "email": "emulator@localhost", "first_name": "Runflow", "last_name": "Emulator",
        "avatar_url": None, "timezone": "UTC", "locale_code": "en", "email_verified_at": OPENED,
        "memberships": memberships,
    })


def balance(amount: Decimal | None) -> Response:
    if amount is None:
        return _no_balance()
    return json_response(200, {"id": BALANCE_ID, "org_id": ORG_ID, "balance": f"{amount:.2f}",
                               "low_balance_threshold": None, "low_balance_notified_at": None,
                               "created_at": OPENED, "updated_at": OPENED})


def credit_balances(amount: Decimal | None) -> Response:
    """The undocumented route Runflow's plugin reads, in the shape it reads."""
    if amount is None:
        return _no_balance()
    return json_response(200, {"items": [{"balance_usd": f"{amount:.2f}", "balance": f"{amount:.2f}"}]})


def pricing(model: str, price: Decimal, window: Window, envelope: str) -> Response:
    """The model's one price: per request, in USD; the model named by owner/slug or by its uuid."""
    if model not in (MODEL, MODEL_ID):
        return api_error(404, "MODEL_NOT_FOUND", f"No model named {model!r}.")
    item = {"id": PRICING_ID, "model_id": MODEL_ID, "pricing_model_code": "per_request",
            "dimension_code": "request", "price": f"{price:.2f}", "currency_code": "USD",
            "unit_code": "request"}
    return json_response(200, window.page([item], envelope))


def run_statuses() -> Response:
    return json_response(200, {"items": [{"code": code, "is_terminal": terminal}
                                         for code, terminal in STATUSES]})


def run_logs(view: dict, window: Window, envelope: str) -> Response:
    """A few lines told by the run's own record: queued, started, and how it ended."""
    run_id, status = view["id"], view["status_code"]
    lines = [("info", "Run queued.", view["created_at"], {"status_code": "queued"})]
    if view["started_at"]:
        lines.append(("info", "Run started.", view["started_at"], {"status_code": "running"}))
    if view["completed_at"]:
        meta = {"status_code": status}
        if view["failure_code"]:
            meta.update(failure_code=view["failure_code"], failure_stage_code=view["failure_stage_code"])
            lines.append(("error", view["failure_message"] or f"Run {status}.", view["completed_at"], meta))
        else:
            lines.append(("info", f"Run {status}.", view["completed_at"], meta))
    items = [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"runflow-run-log:{run_id}:{n}")), "run_id": run_id,
              "level_code": level, "message": message, "timestamp": stamp, "meta": meta}
             for n, (level, message, stamp, meta) in enumerate(lines)]
    return json_response(200, window.page(items, envelope))


def readiness() -> Response:
    return json_response(200, {"status": "ready", "checks": {"api": "ok", "storage": "ok", "workers": "ok"}})


def asset_types(types: tuple[str, ...]) -> Response:
    return json_response(200, {"items": [{"mime_type": mime_type, "max_size_bytes": MAX_UPLOAD_BYTES}
                                         for mime_type in types]})


def _no_balance() -> Response:
    return api_error(404, "NOT_FOUND", "This account has no billing balance.")
