"""`runflow-bg batch`: many photos, one scene; exactly once, resumable, within a budget."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from runflow_bg.cli import options as opt


def batch(
    ctx: typer.Context,
    photos: Optional[List[str]] = typer.Argument(
        None, metavar="[PHOTO]...", help="Photos: files, folders (recursed) or quoted globs."),
    scene: Optional[str] = typer.Option(None, "--scene", metavar="SCENE",
                                        help="The scene image (for rows without their own)."),
    manifest: Optional[Path] = typer.Option(
        None, "--manifest", metavar="FILE",
        help="A .csv or .jsonl catalogue: one request per row (photo, scene, prompt, name, out, "
             "metadata.KEY)."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows",
                                       help="Submit a manifest's good rows even if some are bad."),
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
    results: Optional[Path] = typer.Option(
        None, "--results", metavar="FILE",
        help="Write each row's status, run, cost and outputs (.csv or .jsonl); "
             "usable as the next --manifest."),
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
    keep_profile: bool = opt.KEEP_PROFILE,
    strict_inputs: bool = opt.STRICT_INPUTS,
    include_outputs: bool = typer.Option(
        False, "--include-outputs",
        help="Also take files that look like earlier outputs from folders and globs."),
    timeout: Optional[str] = opt.TIMEOUT,
    poll_interval: Optional[str] = opt.POLL_INTERVAL,
    callback_url: Optional[str] = opt.CALLBACK_URL,
    metadata: List[str] = opt.METADATA,
    as_json: bool = opt.JSON,
    signed_urls: bool = opt.SIGNED_URLS,
    dry_run: bool = opt.DRY_RUN,
    local: bool = opt.LOCAL,
    no_cache: bool = opt.NO_CACHE,
    quiet: bool = opt.QUIET,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Replace the background of many photos with one scene; resumable, paid once per photo."""
    from dataclasses import replace as with_changes

    from runflow_bg.cli.batch_view import BatchView
    from runflow_bg.cli.terminal import PlainReporter
    from runflow_bg.errors import UsageError
    from runflow_bg.service import collect, manifest as manifest_rows
    from runflow_bg.service.batch import BatchRunner
    from runflow_bg.service.batch_plan import BatchOptions, plan_batch
    from runflow_bg.service.inputs import check_output_dir, load_image

    invocation = ctx.obj
    settings = invocation.settings
    terminal = invocation.terminal.configure(quiet=quiet, verbose=verbose or invocation.debug)
    rows = manifest_rows.read_rows(manifest) if manifest is not None else []
    request = opt.resolve_common(settings, out=out, name=name, timeout=timeout,
                                 poll_interval=poll_interval, metadata=metadata,
                                 callback_url=callback_url, prompt=prompt, overwrite=overwrite,
                                 wait=True, use_cache=not no_cache,
                                 name_columns=frozenset(manifest_rows.column_names(rows)))
    request = with_changes(request, delivery=opt.resolve_delivery(settings, terminal, locals()))
    options = BatchOptions(request, concurrency=settings.concurrency(concurrency),
                           budget=None if local else _budget(max_cost),
                           retry_failed=retry_failed, local=local, keep_profile=keep_profile,
                           strict_inputs=strict_inputs,
                           price=invocation.price(local=local).amount)
    shard_spec = collect.parse_shard(shard)
    notes = PlainReporter(terminal)
    if bool(photos) == bool(manifest):
        raise UsageError("Give photos or --manifest, not both nor neither.")
    if scene is None and manifest is None:
        raise UsageError("Missing option '--scene'.")
    scene_image, scene_source = (load_image(scene, None, notes, keep_profile=keep_profile)
                                 if scene is not None else (None, None))
    opt.warn_if_file_like(terminal, request.out_dir)
    check_output_dir(request.out_dir, create=not dry_run)
    if report is not None:
        check_report_path(report)
    if results is not None:
        from runflow_bg.service.results_file import check_format

        check_format(results)
        check_report_path(results, "--results")
    scenes, excluded = {}, 0
    if manifest is not None:
        found = _manifest_rows(manifest, rows, scene, scenes, request.name_template, notes,
                               keep_profile, skip_bad_rows, retry_failed)
    journal = invocation.open_journal(local=local, shard=shard_spec)
    try:
        if manifest is None:
            found = collect.collect_photos(photos, Path.cwd())
        if manifest is None and not include_outputs:
            found, excluded = collect.drop_earlier_outputs(
                found, journal.recorded_outputs(), request.out_dir, request.name_template,
                scene_image.stem)
        plan = plan_batch(collect.take_shard(found, shard_spec), scene_image, scene_source,
                          journal, options, scenes)
        _announce(plan, options, notes, excluded)
        if dry_run:
            _estimate(plan, options, notes)
            _print_dry_run(terminal, plan, options, as_json)
            return
        if plan.runs_to_create > 1 and not (yes or local) and not sys.stdin.isatty():
            raise UsageError(f"Refusing to submit {plan.runs_to_create} runs "
                             f"(${plan.estimated_cost(options.budget):.2f}) without confirmation.",
                             hint="Add --yes to spend from a script, or --dry-run to see the plan.")
        view = BatchView(terminal, len(plan.items), as_json=as_json,
                         github=settings.github_actions)
        with invocation.open_client(local=local, connections=options.concurrency) as client:
            if plan.runs_to_create and not local:
                plan.price = invocation.price(client).amount
                options = with_changes(options, price=plan.price)
            _estimate(plan, options, notes)
            if plan.runs_to_create and not local:
                _confirm(plan, options, client, yes, notes)
            view.start()
            outcomes: list[dict] = []
            runner = BatchRunner(plan, client, journal, options, view,
                                 on_outcome=lambda item, outcome: _record(item, outcome, outcomes,
                                                                          view, signed_urls))
            view.in_flight = runner.in_flight_count
            terminal.when_stdout_closes(client.clock.stop)  # `| head`: submit nothing more
            try:
                result = runner.run()
            finally:
                view.close()
    finally:
        journal.close()
    if results is not None:
        from runflow_bg.service.results_file import result_row, write_results

        write_results(results, [result_row(item.photo, item.outcome.to_json())
                                for item in plan.items if item.outcome is not None])
    _finish(invocation, result, outcomes, scene, report, request.delivery.preset)


def _budget(max_cost: str | None):
    from decimal import Decimal, InvalidOperation

    from runflow_bg.errors import UsageError

    if max_cost is None:
        return None
    try:
        budget = Decimal(max_cost.lstrip("$"))
    except InvalidOperation:
        budget = Decimal(-1)
    if not budget.is_finite() or budget < 0:
        raise UsageError(f"Invalid --max-cost {max_cost!r}.",
                         hint="Give an amount in USD, e.g. --max-cost 10.")
    return budget


def check_report_path(report: Path, option: str = "--report") -> None:
    """The report (or results file) can be written: refused before anything is spent, not after."""
    import os

    from runflow_bg.errors import InputError

    folder = report.parent if str(report.parent) else Path(".")
    if report.is_dir():
        raise InputError(f"{option} {report} is a folder.", hint="Name a file.")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{option} {report}: the folder {folder} does not exist or is not "
                         "writable.", hint="Name a file in a writable folder.")
    if report.exists() and not os.access(report, os.W_OK):
        raise InputError(f"{option} {report} is not writable.", hint="Name another file.")


def _announce(plan, options, notes, excluded: int) -> None:
    from runflow_bg.service.batch_plan import Action

    parts = [f"{len(plan.items)} photos", f"{plan.runs_to_create} to submit"]
    if excluded:
        parts.append(f"{excluded} excluded (earlier outputs; --include-outputs takes them)")
    warned = [item.warning for item in plan.items if item.warning]
    if warned:
        parts.append(f"{len(warned)} with backdrop warnings")
    for action, label in ((Action.RESUME, "to resume"), (Action.DONE, "done before"),
                          (Action.CACHED, "cached"), (Action.FOLLOW, "duplicates"),
                          (Action.SKIP, "skipped (output exists)"),
                          (Action.FAILED, "failed before"), (Action.INVALID, "unreadable")):
        if plan.count(action):
            parts.append(f"{plan.count(action)} {label}")
    notes.on_stage(", ".join(parts))
    for warning in warned:
        notes.on_notice(warning)


def _estimate(plan, options, notes) -> None:
    """The runs to be created and what they cost at the price Runflow reports."""
    if options.local:
        notes.on_stage(f"{plan.runs_to_create} local runs, on this machine and free")
        return
    runs = plan.affordable_runs(options.budget)
    cap = ""
    if runs < plan.runs_to_create:
        cap = f" (capped by --max-cost; {plan.runs_to_create - runs} left for later)"
    notes.on_stage(f"{runs} runs will be created, estimated cost "
                   f"${plan.estimated_cost(options.budget):.2f} at ${plan.price:.2f} a run{cap}")


def _confirm(plan, options, client, yes: bool, notes) -> None:
    from runflow_bg.errors import Interrupted

    balance = client.balance()
    if balance is not None:
        notes.on_stage(f"balance ${balance:.2f}")
    if yes or plan.runs_to_create <= 1:
        return
    cost = plan.estimated_cost(options.budget)
    if not typer.confirm(f"Submit up to {plan.runs_to_create} runs for about ${cost:.2f}?",
                         default=False, err=True):
        raise Interrupted("Cancelled; nothing was submitted.")


def _manifest_rows(manifest: Path, rows: list, scene: str | None, scenes: dict, template: str,
                   notes, keep_profile: bool, skip_bad_rows: bool, retry_failed: bool) -> list:
    """The manifest's rows as batch items, every one checked before anything is spent."""
    from runflow_bg.service.manifest import check_rows, from_manifest, refuse_bad_rows

    read = from_manifest(rows, failed_only=retry_failed)
    good, bad = check_rows(read, scenes, scene, template, notes, keep_profile)
    if bad and not skip_bad_rows:
        refuse_bad_rows(bad, manifest)
    if bad:
        notes.on_notice(f"skipped {len(bad)} bad rows: " + "; ".join(map(str, bad)))
    return good


def _record(item, outcome, outcomes: list[dict], view, signed_urls: bool) -> None:
    from runflow_bg.service.manifest import extra_columns

    data = outcome.to_json(signed_urls)
    if item.photo.row:  # a manifest row: its number and its other columns, for matching up
        data.update({"row": item.photo.row, "columns": extra_columns(item.photo)})
    outcomes.append(data)
    view.on_outcome(data)


def _print_dry_run(terminal, plan, options, as_json: bool) -> None:
    from runflow_bg.service.replace import MODEL

    rows = [{"photo": item.photo.display, "action": item.action.value,
             "out_dir": str(options.request.out_dir / item.photo.folder)} for item in plan.items]
    summary = {"dry_run": True, "model": MODEL, "items": len(plan.items), "local": options.local,
               "runs_to_create": plan.runs_to_create,
               "estimated_cost": f"{plan.estimated_cost(options.budget):.2f}",
               "price": f"{plan.price:.2f}", "currency": "USD"}
    if as_json:
        for row in [*rows, summary]:
            terminal.out_json(row)
        return
    width = max((len(row["photo"]) for row in rows), default=5)
    lines = ["dry run: nothing was sent"]
    lines += [f"{row['photo']:<{width}}  {row['action']:<8} -> {row['out_dir']}" for row in rows]
    cost = "free (--local)" if options.local else f"estimated cost ${summary['estimated_cost']}"
    lines.append(f"{summary['runs_to_create']} runs, {cost}")
    terminal.out_lines(lines)


def _finish(invocation, result, outcomes: list[dict], scene: str, report: Path | None,
            preset: str | None) -> None:
    from runflow_bg.cli.batch_view import append_step_summary, print_summary, summary_rows
    from runflow_bg.errors import (BudgetReached, CreateUnknown, InsufficientCredit, Interrupted,
                                   OutputClosed, RunFailed, UnavailableError)

    counts = {name: result.count(name) for name in ("succeeded", "failed", "skipped", "cached")}
    rows = summary_rows(counts, result.runs_created, None if result.local else result.spent)
    print_summary(invocation.terminal, rows)
    append_step_summary(invocation.settings.environ, rows)
    if report is not None:
        from runflow_bg.report import write_report

        from runflow_bg.presets import PRESETS

        write_report(report, scene, outcomes, preset=PRESETS.get(preset) if preset else None)
    ids = ", ".join(result.in_flight) or "none"
    if invocation.terminal.stdout_closed:
        raise OutputClosed(f"stdout was closed, so no new run was submitted; runs still in "
                           f"flight: {ids}.",
                           hint="Run the same command again to resume; nothing is paid twice.")
    if result.interrupted:
        raise Interrupted(f"Interrupted; runs still in flight: {ids}.",
                          hint="Run the same command again to resume; nothing is paid twice.")
    failures = [o.error for o in result.outcomes if o.error is not None]
    if isinstance(result.stopped_by, InsufficientCredit):
        raise InsufficientCredit(f"Runflow refused further runs for lack of credit; "
                                 f"{result.left_over} items were not submitted.")
    if result.left_over:
        raise BudgetReached(f"--max-cost reached; {result.left_over} items were not submitted.")
    if failures and all(isinstance(e, CreateUnknown) for e in failures):
        raise CreateUnknown(f"{len(failures)} items stopped: whether their runs were created is "
                            "unknown.")
    if failures and all(isinstance(e, UnavailableError) for e in failures):
        raise UnavailableError(f"{len(failures)} items failed: Runflow stayed unavailable.")
    if failures:
        raise RunFailed(f"{len(failures)} of {len(result.outcomes)} items failed.",
                        hint="Fix what the messages above say, then run again with --retry-failed.")
