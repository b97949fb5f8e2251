"""The tolerant parsers accept every shape runflow-api.md lists."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from runflow_bg.errors import ProtocolError
from runflow_bg.models import (
    RunState,
    classify_status,
    extract_output_urls,
    parse_asset,
    parse_error_body,
    parse_run,
    parse_run_page,
    parse_upload_session,
)
from runflow_bg.transport import RetryPolicy, parse_retry_after


@pytest.mark.parametrize("status,state", [
    ("queued", RunState.PENDING), ("dispatching", RunState.PENDING),
    ("running", RunState.PENDING), ("warming_up", RunState.PENDING),
    ("succeeded", RunState.SUCCEEDED), ("partial_succeeded", RunState.SUCCEEDED),
    ("SUCCEEDED", RunState.SUCCEEDED),
    ("failed", RunState.FAILED), ("errored", RunState.FAILED),
    ("canceled", RunState.FAILED), ("cancelled", RunState.FAILED),
])
def test_every_status_spelling(status, state):
    assert classify_status(status) is state


@pytest.mark.parametrize("output,urls", [
    ({"image_urls": ["https://a/1.webp", "https://a/2.webp"]}, ("https://a/1.webp", "https://a/2.webp")),
    ({"outputs": [{"url": "https://a/1.webp", "type": "image"}, {"url": "https://a/l.txt", "type": "log"}]},
     ("https://a/1.webp",)),
    ({"image": {"url": "https://a/1.png"}}, ("https://a/1.png",)),
    ({"image": ["https://a/1.png", {"url": "https://a/2.png"}]}, ("https://a/1.png", "https://a/2.png")),
    ({"url": "https://a/1.png"}, ("https://a/1.png",)),
    ({"output_url": "https://a/1.png"}, ("https://a/1.png",)),
    (["https://a/1.png"], ("https://a/1.png",)),
    (None, ()),
    ({}, ()),
])
def test_every_output_shape(output, urls):
    assert extract_output_urls(output) == urls


def test_output_of_wrong_type_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        extract_output_urls(42)


def test_run_accepts_id_or_run_id_and_prefers_id():
    assert parse_run({"id": "a", "run_id": "b", "status_code": "queued"}).id == "a"
    assert parse_run({"run_id": "b", "status_code": "queued"}).id == "b"


def test_run_docs_shape():
    run = parse_run({
        "id": "r1", "status_code": "failed", "client_ref": "ref", "cost": "0.35",
        "duration_ms": 1200, "failure_code": "MODEL_ERROR", "failure_message": "boom",
        "completed_at": "2026-05-06T10:01:42.345+00:00", "metadata": {"a": 1},
    })
    assert run.state is RunState.FAILED and run.finished and not run.canceled
    assert (run.failure_code, run.failure_message, run.cost) == ("MODEL_ERROR", "boom", "0.35")
    assert run.metadata == {"a": 1} and run.duration_ms == 1200


def test_run_sdk_shape():
    run = parse_run({"id": "r1", "status_code": "cancelled", "error": {"code": "C", "message": "m"},
                     "finished_at": "2026-01-01T00:00:00+00:00"})
    assert run.canceled and run.failure_code == "C" and run.failure_message == "m"
    assert run.completed_at == "2026-01-01T00:00:00+00:00"


def test_run_callback_shape():
    run = parse_run({"event": "run.completed", "run_id": "r1", "status": "succeeded",
                     "output": {"image_urls": ["https://a/1.webp"]}})
    assert run.state is RunState.SUCCEEDED and run.output_urls == ("https://a/1.webp",)


def test_outputs_of_unfinished_run_are_ignored():
    assert parse_run({"id": "r", "status_code": "running", "output": {"url": "x"}}).output_urls == ()


@pytest.mark.parametrize("data", [
    None, [], "text", {"status_code": "queued"}, {"id": "", "status_code": "queued"},
    {"id": 5, "status_code": "queued"}, {"id": "r"}, {"id": "r", "status_code": 3},
])
def test_run_without_id_or_status_is_a_protocol_error(data):
    with pytest.raises(ProtocolError):
        parse_run(data)


def test_wrong_types_in_optional_fields_are_dropped():
    run = parse_run({"id": "r", "status_code": "queued", "cost": {"x": 1}, "duration_ms": "abc",
                     "metadata": [1], "client_ref": None})
    assert run.cost is None and run.duration_ms is None and run.metadata is None


def test_control_characters_never_survive():
    run = parse_run({"id": "r\x1b[31m", "status_code": "failed", "failure_message": "a\x07b\nc"})
    assert "\x1b" not in run.id and "\x07" not in run.failure_message and "\n" not in run.failure_message


def test_run_page_shapes():
    page = parse_run_page({"items": [{"id": "a", "status_code": "queued"}], "next_pq": "c2"})
    assert [r.id for r in page.items] == ["a"] and page.next_cursor == "c2"
    assert parse_run_page([]).items == ()
    assert parse_run_page({"items": [], "next_pq": None}).next_cursor is None
    with pytest.raises(ProtocolError):
        parse_run_page({"items": "nope"})


def test_upload_and_asset_answers():
    session = parse_upload_session({"asset_id": "a1", "upload_url": "https://s/put?sig=x"})
    assert session.asset_id == "a1"
    asset = parse_asset({"id": "a1", "url": "https://s/a.zip?sig=x", "size_bytes": 10})
    assert asset.url.startswith("https://") and asset.size_bytes == 10
    with pytest.raises(ProtocolError):
        parse_upload_session({"asset_id": "a1"})
    with pytest.raises(ProtocolError):
        parse_asset({"url": "https://x"})


@pytest.mark.parametrize("body,code,message", [
    ({"code": "RATE_LIMITED", "message": "slow down", "errors": None}, "RATE_LIMITED", "slow down"),
    ({"code": "VALIDATION", "message": "bad", "errors": [{"field": "input.zip_url", "msg": "required"}]},
     "VALIDATION", "bad; input.zip_url: required"),
    ({"error": {"code": "INSUFFICIENT_CREDITS", "message": "top up"}}, "INSUFFICIENT_CREDITS", "top up"),
    ({"error": "text", "code": "X"}, "X", "text"),
    ({"detail": "Not authenticated"}, None, "Not authenticated"),
    ({"detail": [{"loc": ["body", "input"], "msg": "field required"}]}, None, "body.input: field required"),
])
def test_every_error_body_shape(body, code, message):
    parsed = parse_error_body(json.dumps(body).encode())
    assert parsed.code == code and parsed.describe() == message


def test_plain_text_error_body():
    parsed = parse_error_body(b"<html>Bad Gateway</html>")
    assert parsed.code is None and parsed.message == "<html>Bad Gateway</html>"
    assert parse_error_body(b"").describe() == ""


def test_retry_after_forms():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now) == 5.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_capped_and_jittered():
    policy = RetryPolicy(base_delay=1, max_delay=32, jitter=1)
    assert 1 <= policy.delay(1) <= 2 and 2 <= policy.delay(2) <= 3
    assert 32 <= policy.delay(10) <= 33
    assert policy.delay(1, retry_after=7) == 7
    assert policy.delay(1, retry_after=10_000) == policy.max_retry_after


def test_outputs_typed_with_an_image_mime_type_are_kept():
    output = {"outputs": [{"url": "https://cdn/a.webp", "type": "image/webp"},
                          {"url": "https://cdn/b.mp4", "type": "video"},
                          {"url": "https://cdn/c.png", "type": "IMAGE/PNG"}]}
    assert extract_output_urls(output) == ("https://cdn/a.webp", "https://cdn/c.png")


@pytest.mark.parametrize("data", [
    {"failure_code": "MODEL_ERROR", "failure_message": "bad input"},
    {"error": {"code": "MODEL_ERROR", "message": "bad input"}},
    {"output": {"code": "MODEL_ERROR", "message": "bad input"}},  # the callback's error envelope
])
def test_a_failure_reason_is_read_wherever_it_is_given(data):
    run = parse_run({"id": "r", "status_code": "failed", **data})
    assert (run.failure_code, run.failure_message) == ("MODEL_ERROR", "bad input")
