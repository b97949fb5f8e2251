"""Broken run bodies for the corrupt_runs knob, so clients can be tested against a faulty API or proxy."""

from __future__ import annotations

from runflow_bg.emulator.wire import Response, json_response

CORRUPT_MODES = ("not_json", "not_object", "missing_id", "missing_status", "wrong_types",
                 "output_wrong_type")
_ID_KEYS = ("id", "run_id")
_FAILURE_KEYS = ("failure_code", "failure_message", "failure_stage_code", "error")
_HTML = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>502 Bad Gateway</h1>"
         b"<p>The upstream server sent an invalid response.</p></body></html>\n")


def corrupt_run(mode: str, status: int, view: dict) -> Response:
    """The broken answer `mode` names, in place of a run `view` that would have gone out with `status`."""
    if mode == "not_json":
        return Response(status, _HTML, {"Content-Type": "text/html; charset=utf-8"})
    if mode == "not_object":
        return json_response(status, [view])
    broken = dict(view)
    if mode == "missing_id":
        for key in _ID_KEYS:
            broken.pop(key, None)
    elif mode == "missing_status":
        broken.pop("status_code")
    elif mode == "wrong_types":
        for key in _ID_KEYS:
            if key in broken:
                broken[key] = 12345
        broken.update(status_code=[broken["status_code"]], output="1234567890",
                      cost={"amount": broken["cost"], "currency": "USD"})
    else:
        broken.update(status_code="succeeded", output=42)
        broken.update((key, None) for key in _FAILURE_KEYS if key in broken)
    return json_response(status, broken)
