"""`runflow-bg emulator`: serve the built-in Runflow-compatible API until Ctrl-C."""

from __future__ import annotations

import importlib
import math
import signal
import threading
from typing import List, Optional

import typer

from runflow_bg.errors import UsageError

TLS_HELP = ("Serve https with a throwaway CA, and print SSL_CERT_FILE and NODE_EXTRA_CA_CERTS for "
            "clients to trust it (needs the tls extra).")
FAIL_HELP = ("Answer the next requests to ENDPOINT with STATUS: ENDPOINT=STATUS[xCOUNT][@RETRY_AFTER], "
             "e.g. run_create=503x2@1. Repeatable.")


def parse_fail_spec(spec: str) -> tuple[str, int, int, Optional[float]]:
    """`run_create=503x2@1` -> ("run_create", 503, 2, 1.0)."""
    invalid = UsageError(f"Invalid --fail {spec!r}; expected ENDPOINT=STATUS[xCOUNT][@RETRY_AFTER].")
    endpoint, sep, rest = spec.partition("=")
    rest, _, after = rest.partition("@")
    status_text, _, times = rest.partition("x")
    try:
        status = int(status_text)
        count = int(times) if times else 1
        retry_after = float(after) if after else None
    except ValueError:
        raise invalid from None
    if not sep or not endpoint or not 100 <= status <= 599 or count < 1:
        raise invalid
    return endpoint, status, count, retry_after


def parse_delay_spec(spec: str) -> tuple[str, float]:
    """`run_get=2.5` -> ("run_get", 2.5)."""
    endpoint, _, seconds = spec.partition("=")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if not endpoint or value < 0:
        raise UsageError(f"Invalid --delay {spec!r}; expected ENDPOINT=SECONDS.")
    return endpoint, value


def require_trustme() -> None:
    """--tls makes its certificates with trustme, an optional extra: say how to get it."""
    try:
        importlib.import_module("trustme")
    except ImportError:
        raise UsageError("--tls needs the trustme package, which is not installed.",
                         hint="pip install 'runflow-bg[tls]'") from None


def emulator(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to bind; loopback unless you say otherwise."),
    port: int = typer.Option(8787, help="Port to listen on (0 picks a free one)."),
    run_seconds: float = typer.Option(3.0, "--run-seconds", help="How long each run takes."),
    key: Optional[str] = typer.Option(None, "--key", help="API key to accept (default: a random one)."),
    callback_secret: Optional[str] = typer.Option(
        None, "--callback-secret", help="Sign callbacks with this secret (Runflow-Signature)."),
    balance: str = typer.Option("100.00", help="Starting balance in USD; each run costs 0.35."),
    tls: bool = typer.Option(False, "--tls", help=TLS_HELP),
    fail: List[str] = typer.Option([], "--fail", metavar="ENDPOINT=STATUS[xN][@S]", help=FAIL_HELP),
    delay: List[str] = typer.Option([], "--delay", metavar="ENDPOINT=SECONDS",
                                    help="Wait before answering ENDPOINT. Repeatable."),
    drop_after_create: int = typer.Option(
        0, "--drop-after-create", help="Record the next N creates, then drop the connection."),
    fail_runs: int = typer.Option(0, "--fail-runs", help="Make the next N runs finish badly."),
    fail_status: str = typer.Option(
        "failed", "--fail-status",
        help="Status of those runs: failed or canceled (documented); cancelled imitates the older runs "
             "page and the cancel guide; errored is in no doc, only in the terminal set of Runflow's "
             "ad-creative plugin."),
    expire_upload_urls: int = typer.Option(
        0, "--expire-upload-urls", help="Answer the next N storage uploads with 403 (expired)."),
    expire_output_urls: int = typer.Option(
        0, "--expire-output-urls", help="Answer the next N output downloads with 403 (expired)."),
    output_shape: str = typer.Option(
        "image_urls", "--output-shape", help="Run outputs as image_urls or outputs."),
    output_count: int = typer.Option(1, "--output-count", metavar="N", help="Outputs per succeeded run."),
    status_spelling: str = typer.Option(
        "default", "--status-spelling",
        help="default (queued, dispatching, running, then succeeded, failed or canceled), or older-docs: "
             "the older runs page's spelling (cancelled, no dispatching)."),
    partial_success: bool = typer.Option(
        False, "--partial-success",
        help="Runs with more than one output (--output-count) end partial_succeeded, the last one missing."),
    sdk_shape: bool = typer.Option(
        False, "--sdk-shape",
        help="Runs also carry the JS SDK's model, finished_at and error; creates also answer run_id."),
    callback_retry_rule: str = typer.Option(
        "any-failure", "--callback-retry-rule",
        help="any-failure: retry callbacks on any non-2xx answer, timeout or connection error (the "
             "callbacks page); 5xx-and-network: only on 5xx and network errors (the model page)."),
    ignore_idempotency: bool = typer.Option(
        False, "--ignore-idempotency", help="Creates ignore Idempotency-Key: a retry makes another run."),
    listing_lag: float = typer.Option(
        0.0, "--listing-lag", metavar="SECONDS",
        help="Run listings leave out runs younger than SECONDS (GET /v1/runs/{id} still finds them)."),
) -> None:
    """Serve the built-in Runflow-compatible API until Ctrl-C."""
    import secrets

    from runflow_bg.emulator import Emulator
    from runflow_bg.emulator.callbacks import RETRY_RULES
    from runflow_bg.emulator.faults import RUN_FAILURE_STATUSES
    from runflow_bg.emulator.runs import SPELLINGS

    if fail_status not in RUN_FAILURE_STATUSES:
        raise UsageError(f"Invalid --fail-status {fail_status!r}; use {', '.join(RUN_FAILURE_STATUSES)}.")
    if output_shape not in ("image_urls", "outputs"):
        raise UsageError(f"Invalid --output-shape {output_shape!r}; use image_urls or outputs.")
    if output_count < 0:
        raise UsageError(f"Invalid --output-count {output_count}; use 0 or more.")
    if status_spelling not in SPELLINGS:
        raise UsageError(f"Invalid --status-spelling {status_spelling!r}; use {' or '.join(SPELLINGS)}.")
    if callback_retry_rule not in RETRY_RULES:
        raise UsageError(f"Invalid --callback-retry-rule {callback_retry_rule!r}; "
                         f"use {' or '.join(RETRY_RULES)}.")
    if not 0 <= listing_lag < math.inf:
        raise UsageError(f"Invalid --listing-lag {listing_lag:g}; use 0 or more seconds.")
    if tls:
        require_trustme()
    failures = [parse_fail_spec(spec) for spec in fail]
    delays = [parse_delay_spec(spec) for spec in delay]
    api_key = key or f"rf_emu_{secrets.token_hex(12)}"

    emu = Emulator(api_key=api_key, host=host, port=port, run_seconds=run_seconds,
                   callback_secret=callback_secret, balance=balance, tls=tls)
    for endpoint, status, count, retry_after in failures:
        emu.faults.fail_next(endpoint, status, count=count, retry_after=retry_after)
    for endpoint, seconds in delays:
        emu.faults.delay(endpoint, seconds)
    if drop_after_create:
        emu.faults.drop_after_create(drop_after_create)
    if fail_runs:
        emu.faults.fail_runs(fail_runs, status=fail_status)
    if expire_upload_urls:
        emu.faults.expire_upload_urls(expire_upload_urls)
    if expire_output_urls:
        emu.faults.expire_output_urls(expire_output_urls)
    emu.faults.output_shape = output_shape
    emu.faults.output_count = output_count
    emu.faults.status_spelling = status_spelling
    emu.faults.partial_success = partial_success
    emu.faults.sdk_shape = sdk_shape
    emu.faults.callback_retry_rule = callback_retry_rule
    emu.faults.ignore_idempotency = ignore_idempotency
    emu.faults.listing_lag = listing_lag
    try:
        emu.start()
    except OSError as exc:
        raise UsageError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                         hint="Pick another --port, or 0 for any free one.") from None

    terminal = ctx.obj.terminal
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        terminal.out_lines([f"RUNFLOW_BASE_URL={emu.base_url}", f"RUNFLOW_API_KEY={emu.api_key}"])
        if tls:
            terminal.out_lines([f"SSL_CERT_FILE={emu.ca_file}", f"NODE_EXTRA_CA_CERTS={emu.ca_file}"])
            terminal.note("SSL_CERT_FILE makes Python clients (runflow-bg, httpx) trust the emulator's "
                          "throwaway CA, NODE_EXTRA_CA_CERTS makes Node do the same; the file is "
                          "deleted when the emulator stops.")
        terminal.note(f"Runflow emulator listening on {emu.base_url} "
                      f"(runs take {run_seconds:g} s); Ctrl-C stops it.")
        while not stopped.wait(0.5):
            pass
    finally:
        emu.stop()
    terminal.note("emulator stopped")
