"""`runflow-bg runs`: show, list, wait for and download runs submitted earlier."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from runflow_bg.cli import options as opt

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

RUN_IDS = typer.Argument(..., metavar="RUN_ID", help="Run ids, as printed by replace --no-wait.")
JSON_LINES = typer.Option(False, "--json", help="One JSON object per run on stdout (JSON Lines).")


@app.command("get")
def get(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="The run to show."),
    as_json: bool = opt.JSON,
    signed_urls: bool = opt.SIGNED_URLS,
) -> None:
    """Show one run: its status, cost, outputs, and what this machine saved from it."""
    invocation = ctx.obj
    outcome = invocation.get_run(run_id)
    if as_json:
        invocation.terminal.out_json(outcome.to_json(signed_urls))
    else:
        invocation.terminal.out(_summary(outcome))


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs to show, newest first."),
    status: Optional[str] = typer.Option(None, "--status", metavar="STATUS",
                                         help="Only runs with this status (e.g. succeeded, failed)."),
    as_json: bool = JSON_LINES,
    signed_urls: bool = opt.SIGNED_URLS,
) -> None:
    """The account's recent runs: a table on a terminal, tab-separated lines elsewhere."""
    invocation = ctx.obj
    outcomes = invocation.list_runs(limit=limit, status=status)
    if as_json:
        for outcome in outcomes:
            invocation.terminal.out_json(outcome.to_json(signed_urls))
    else:
        _print_table(invocation.terminal, outcomes)


@app.command("logs")
def logs(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="The run whose log to show."),
    tail: Optional[int] = typer.Option(None, "--tail", metavar="N", min=1,
                                       help="Only the last N lines."),
    as_json: bool = JSON_LINES,
) -> None:
    """A run's log lines, oldest first: what the model and Runflow said while it ran."""
    invocation = ctx.obj
    lines = invocation.run_logs(run_id)
    lines = lines[-tail:] if tail else lines
    if as_json:
        for line in lines:
            invocation.terminal.out_json({"timestamp": line.timestamp, "level": line.level,
                                          "message": line.message})
    else:
        invocation.terminal.out_lines([line.describe() for line in lines])


@app.command("wait")
def wait(
    ctx: typer.Context,
    run_ids: List[str] = RUN_IDS,
    out: Optional[Path] = opt.OUT,
    name: Optional[str] = opt.NAME,
    overwrite: bool = opt.OVERWRITE,
    timeout: Optional[str] = opt.TIMEOUT,
    poll_interval: Optional[str] = opt.POLL_INTERVAL,
    as_json: bool = JSON_LINES,
    signed_urls: bool = opt.SIGNED_URLS,
    format: Optional[str] = opt.FORMAT,
    quality: Optional[int] = opt.QUALITY,
    max_bytes: Optional[str] = opt.MAX_BYTES,
    fill: Optional[str] = opt.FILL,
    size: Optional[str] = opt.SIZE,
    max_side: Optional[int] = opt.MAX_SIDE,
    fit: Optional[str] = opt.FIT,
    pad_color: Optional[str] = opt.PAD_COLOR,
    preset: Optional[str] = opt.PRESET,
    no_ai_label: bool = opt.NO_AI_LABEL,
    sidecar: bool = opt.SIDECAR,
    quiet: bool = opt.QUIET,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Wait for runs to finish, then download their outputs (exit 6 if any failed, 7 on --timeout)."""
    from runflow_bg.choices import DeliveryChoice

    _fetch(ctx, run_ids, dict(wait=True, out=out, name=name, overwrite=overwrite, timeout=timeout,
                              poll_interval=poll_interval,
                              delivery=DeliveryChoice.from_flags(locals())),
           as_json=as_json, quiet=quiet, verbose=verbose, signed_urls=signed_urls)


@app.command("download")
def download(
    ctx: typer.Context,
    run_ids: List[str] = RUN_IDS,
    out: Optional[Path] = opt.OUT,
    name: Optional[str] = opt.NAME,
    overwrite: bool = opt.OVERWRITE,
    as_json: bool = JSON_LINES,
    signed_urls: bool = opt.SIGNED_URLS,
    format: Optional[str] = opt.FORMAT,
    quality: Optional[int] = opt.QUALITY,
    max_bytes: Optional[str] = opt.MAX_BYTES,
    fill: Optional[str] = opt.FILL,
    size: Optional[str] = opt.SIZE,
    max_side: Optional[int] = opt.MAX_SIDE,
    fit: Optional[str] = opt.FIT,
    pad_color: Optional[str] = opt.PAD_COLOR,
    preset: Optional[str] = opt.PRESET,
    no_ai_label: bool = opt.NO_AI_LABEL,
    sidecar: bool = opt.SIDECAR,
    quiet: bool = opt.QUIET,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Download the outputs of finished runs (expired output URLs are fetched afresh)."""
    from runflow_bg.choices import DeliveryChoice

    _fetch(ctx, run_ids, dict(wait=False, out=out, name=name, overwrite=overwrite,
                              delivery=DeliveryChoice.from_flags(locals())),
           as_json=as_json, quiet=quiet, verbose=verbose, signed_urls=signed_urls)


def _fetch(ctx, run_ids, options: dict, *, as_json, quiet, verbose, signed_urls):
    from runflow_bg.service.runs import exit_code

    invocation = ctx.obj
    terminal = invocation.terminal.configure(quiet=quiet, verbose=verbose or invocation.debug)
    reporter = terminal.reporter()
    outcomes = []
    try:
        for outcome in invocation.fetch(run_ids, **options, on_progress=reporter):
            outcomes.append(outcome)
            if as_json:
                terminal.out_json(outcome.to_json(signed_urls))
            else:
                terminal.out_lines([str(saved.path) for saved in outcome.saved])
            if outcome.error is not None:
                reporter.close()
                terminal.error(outcome.error, debug=invocation.debug)
    finally:
        reporter.close()
    code = exit_code(outcomes)
    if code:
        raise typer.Exit(code)


def _summary(outcome) -> str:
    """`runs get` for a person: one `label  value` line per known fact."""
    from runflow_bg.urls import redact_url

    run = outcome.run
    rows = [("run", run.id), ("status", run.status), ("created", run.created_at),
            ("completed", run.completed_at),
            ("duration", f"{run.duration_ms / 1000:.1f} s" if run.duration_ms is not None else None),
            ("cost", f"{run.cost} USD" if run.cost else None), ("client_ref", run.client_ref)]
    rows += [("photo", outcome.photo), ("scene", outcome.scene), ("prompt", outcome.prompt)]
    if outcome.error is not None:
        rows.append(("failure", outcome.error.message))
    for output in outcome.outputs():
        rows.append(("output", redact_url(output["url"])))
        rows.append(("saved", output["path"]))
    return "".join(f"{label:<11}{value}\n" for label, value in rows if value)


def _print_table(terminal, outcomes) -> None:
    columns = ("RUN ID", "STATUS", "CREATED", "DURATION", "COST", "PHOTO")
    rows = [_row(outcome) for outcome in outcomes]
    if not terminal.stdout_is_terminal:
        terminal.out_lines(["\t".join(row) for row in rows])
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*map(Text, row), style="red" if row[1] in ("failed", "errored") else None)
    Console(file=terminal.stdout, highlight=False).print(table)


def _row(outcome) -> tuple[str, ...]:
    run = outcome.run
    created = (run.created_at or "")[:19].replace("T", " ")
    duration = f"{run.duration_ms / 1000:.1f} s" if run.duration_ms is not None else ""
    return (run.id, run.status, created, duration, run.cost or "", outcome.photo or "")
