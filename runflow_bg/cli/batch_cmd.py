"""`runflow-bg batch`: many photos, one scene; exactly once, resumable, within a budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from runflow_bg.cli import options as opt

HELP = "Replace the background of many photos with one scene; resumable, paid once per photo."


def batch(
    ctx: typer.Context,
    photos: List[str] = typer.Argument(..., metavar="PHOTO",
                                       help="Photos: files, folders (recursed) or quoted globs."),
    scene: str = typer.Option(..., "--scene", metavar="SCENE", help="The scene image for every photo."),
    prompt: Optional[str] = opt.PROMPT,
    out: Optional[Path] = opt.OUT,
    name: Optional[str] = opt.NAME,
    overwrite: bool = opt.OVERWRITE,
    concurrency: Optional[int] = typer.Option(None, "-j", "--concurrency", metavar="N",
                                              help="Runs in flight at once (default 4)."),
    yes: bool = typer.Option(False, "--yes", help="Spend without asking (required off a terminal)."),
    max_cost: Optional[str] = typer.Option(None, "--max-cost", metavar="USD",
                                           help="Never submit past this projected spend."),
    shard: Optional[str] = typer.Option(None, "--shard", metavar="K/N",
                                        help="Process only items with index mod N == K-1."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Submit again the items whose runs failed."),
    report: Optional[Path] = typer.Option(None, "--report", metavar="FILE.html",
                                          help="Write a contact sheet of photo, scene and result."),
    timeout: Optional[str] = opt.TIMEOUT,
    poll_interval: Optional[str] = opt.POLL_INTERVAL,
    callback_url: Optional[str] = opt.CALLBACK_URL,
    metadata: List[str] = opt.METADATA,
    as_json: bool = opt.JSON,
    dry_run: bool = opt.DRY_RUN,
    local: bool = opt.LOCAL,
    no_cache: bool = opt.NO_CACHE,
    quiet: bool = opt.QUIET,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Replace the background of many photos with one scene; resumable, paid once per photo."""
    from runflow_bg.cli.batch_view import BatchView
    from runflow_bg.cli.session import open_client, open_journal
    from runflow_bg.cli.terminal import PlainReporter
    from runflow_bg.service import collect
    from runflow_bg.service.batch import BatchRunner
    from runflow_bg.service.batch_plan import BatchOptions, plan_batch
    from runflow_bg.service.inputs import check_output_dir, load_image

    request = opt.resolve_common(out=out, name=name, timeout=timeout, poll_interval=poll_interval,
                                 metadata=metadata, callback_url=callback_url, prompt=prompt,
                                 overwrite=overwrite, wait=True, use_cache=not no_cache)
    options = BatchOptions(request, concurrency=_concurrency(concurrency),
                           max_runs=_max_runs(max_cost), retry_failed=retry_failed)
    shard_spec = collect.parse_shard(shard)
    found = collect.take_shard(collect.collect_photos(photos, Path.cwd()), shard_spec)
    notes = PlainReporter(quiet=quiet)
    scene_image, scene_source = load_image(scene, None, notes)
    check_output_dir(request.out_dir, create=not dry_run)
    interactive = sys.stderr.isatty() and not _no_color()
    journal = open_journal(local=local, shard=shard_spec)
    try:
        plan = plan_batch(found, scene_image, scene_source, journal, options)
        _announce(plan, options, notes)
        if dry_run:
            _print_dry_run(plan, options, as_json)
            return
        if plan.runs_to_create > 1 and not yes and not sys.stdin.isatty():
            raise _usage(f"Refusing to submit {plan.runs_to_create} runs "
                         f"(${plan.estimated_cost(options.max_runs):.2f}) without confirmation.",
                         "Add --yes to spend from a script, or --dry-run to see the plan.")
        view = BatchView(len(plan.items), as_json=as_json, quiet=quiet,
                         verbose=verbose or ctx.obj.debug, interactive=interactive)
        with open_client(api_key_flag=ctx.obj.api_key, base_url_flag=ctx.obj.base_url,
                         local=local, log=view.on_log) as client:
            if plan.runs_to_create:
                _confirm(plan, options, client, yes, notes)
            view.start()
            outcomes: list[dict] = []
            runner = BatchRunner(plan, client, journal, options, view,
                                 on_outcome=lambda item, outcome: _record(outcome, outcomes, view))
            view.in_flight = runner.in_flight_count
            try:
                result = runner.run()
            finally:
                view.close()
    finally:
        journal.close()
    _finish(result, outcomes, scene, report, interactive=interactive, quiet=quiet)


def _no_color() -> bool:
    import os

    return "NO_COLOR" in os.environ


def _usage(message: str, hint: str):
    from runflow_bg.errors import UsageError

    return UsageError(message, hint=hint)


def _concurrency(value: int | None) -> int:
    from runflow_bg import config

    value = value if value is not None else config.config_value("concurrency") or 4
    if int(value) < 1:
        raise _usage("-j/--concurrency must be at least 1.", "For example -j 4.")
    return int(value)


def _max_runs(max_cost: str | None) -> int | None:
    from decimal import Decimal, InvalidOperation

    from runflow_bg.service.replace import PRICE_USD

    if max_cost is None:
        return None
    try:
        budget = Decimal(max_cost.lstrip("$"))
    except InvalidOperation:
        budget = Decimal(-1)
    if budget < 0:
        raise _usage(f"Invalid --max-cost {max_cost!r}.", "Give an amount in USD, e.g. --max-cost 10.")
    return int(budget // PRICE_USD)


def _announce(plan, options, notes) -> None:
    from runflow_bg.service.batch_plan import Action

    parts = [f"{len(plan.items)} photos", f"{plan.runs_to_create} to submit"]
    for action, label in ((Action.RESUME, "to resume"), (Action.DONE, "done before"),
                          (Action.CACHED, "cached"), (Action.FOLLOW, "duplicates"),
                          (Action.SKIP, "skipped (output exists)"),
                          (Action.FAILED, "failed before"), (Action.INVALID, "unreadable")):
        if plan.count(action):
            parts.append(f"{plan.count(action)} {label}")
    notes.on_stage(", ".join(parts))
    runs = plan.runs_to_create
    if options.max_runs is not None and options.max_runs < runs:
        runs = options.max_runs
        cap = f" (capped by --max-cost; {plan.runs_to_create - runs} left for later)"
    else:
        cap = ""
    notes.on_stage(f"{runs} runs will be created, estimated cost "
                   f"${plan.estimated_cost(options.max_runs):.2f}{cap}")


def _confirm(plan, options, client, yes: bool, notes) -> None:
    from runflow_bg.errors import Interrupted

    balance = client.balance()
    if balance is not None:
        notes.on_stage(f"balance ${balance:.2f}")
    if yes or plan.runs_to_create <= 1:
        return
    cost = plan.estimated_cost(options.max_runs)
    if not typer.confirm(f"Submit up to {plan.runs_to_create} runs for about ${cost:.2f}?",
                         default=False, err=True):
        raise Interrupted("Cancelled; nothing was submitted.")


def _record(outcome, outcomes: list[dict], view) -> None:
    data = outcome.to_json()
    outcomes.append(data)
    view.on_outcome(data)


def _print_dry_run(plan, options, as_json: bool) -> None:
    from runflow_bg.service.replace import MODEL

    rows = [{"photo": item.photo.display, "action": item.action.value,
             "out_dir": str(options.request.out_dir / item.photo.folder)} for item in plan.items]
    summary = {"dry_run": True, "model": MODEL, "items": len(plan.items),
               "runs_to_create": plan.runs_to_create,
               "estimated_cost": f"{plan.estimated_cost(options.max_runs):.2f}", "currency": "USD"}
    if as_json:
        sys.stdout.write("".join(json.dumps(row) + "\n" for row in rows) + json.dumps(summary) + "\n")
        return
    width = max((len(row["photo"]) for row in rows), default=5)
    lines = ["dry run: nothing was sent"]
    lines += [f"{row['photo']:<{width}}  {row['action']:<8} -> {row['out_dir']}" for row in rows]
    lines.append(f"{summary['runs_to_create']} runs, estimated cost ${summary['estimated_cost']}")
    sys.stdout.write("\n".join(lines) + "\n")


def _finish(result, outcomes: list[dict], scene: str, report: Path | None, *, interactive: bool,
            quiet: bool) -> None:
    from runflow_bg.cli.batch_view import append_step_summary, print_summary, summary_rows
    from runflow_bg.errors import (BudgetReached, InsufficientCredit, Interrupted, RunFailed,
                                   UnavailableError)

    counts = {name: result.count(name) for name in ("succeeded", "failed", "skipped", "cached")}
    rows = summary_rows(counts, result.runs_created, result.spent)
    print_summary(rows, interactive=interactive, quiet=quiet)
    append_step_summary(rows)
    if report is not None:
        from runflow_bg.report import write_report

        write_report(report, scene, outcomes)
    if result.interrupted:
        ids = ", ".join(result.in_flight) or "none"
        raise Interrupted(f"Interrupted; runs still in flight: {ids}.",
                          hint="Run the same command again to resume; nothing is paid twice.")
    failures = [o.error for o in result.outcomes if o.error is not None]
    if isinstance(result.stopped_by, InsufficientCredit):
        raise InsufficientCredit(f"Runflow refused further runs for lack of credit; "
                                 f"{result.left_over} items were not submitted.")
    if result.left_over:
        raise BudgetReached(f"--max-cost reached; {result.left_over} items were not submitted.")
    if failures and all(isinstance(e, UnavailableError) for e in failures):
        raise UnavailableError(f"{len(failures)} items failed: Runflow stayed unavailable.")
    if failures:
        raise RunFailed(f"{len(failures)} of {len(result.outcomes)} items failed.",
                        hint="Fix what the messages above say, then run again with --retry-failed.")
