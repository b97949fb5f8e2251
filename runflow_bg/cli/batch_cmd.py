"""`runflow-bg batch`: many photos, one scene or several; exactly once, resumable, within a
budget."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from runflow_bg.cli import options as opt


def batch(
    ctx: typer.Context,
    photos: Optional[List[str]] = typer.Argument(
        None, metavar="[PHOTO]...",
        help="Photos: files, folders (recursed), quoted globs or https URLs."),
    scene: List[str] = typer.Option(
        [], "--scene", metavar="SCENE",
        help="A scene image, its https URL, or a folder of them (recursed). Repeatable: every "
             "photo (every row without its own scene) runs with every scene; then --name needs "
             "{scene} (default {stem}-{scene}-bg{n}.{ext})."),
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
    shard: Optional[str] = typer.Option(
        None, "--shard", metavar="K/N",
        help="Process only items (a photo with one scene) with index mod N == K-1."),
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
    """Replace the background of many photos with one scene, or each with several; resumable,
    paid once per photo and scene."""
    from runflow_bg.batch_job import outcome_record
    from runflow_bg.choices import DeliveryChoice
    from runflow_bg.cli.batch_view import BatchView
    from runflow_bg.cli.terminal import PlainReporter
    from runflow_bg.errors import UsageError

    invocation = ctx.obj
    terminal = invocation.terminal.configure(quiet=quiet, verbose=verbose or invocation.debug)
    notes = PlainReporter(terminal)
    with invocation.plan_batch(
            photos or (), scenes=scene, manifest=manifest, out=out, name=name, prompt=prompt,
            overwrite=overwrite, timeout=timeout, poll_interval=poll_interval,
            callback_url=callback_url, metadata=metadata, use_cache=not no_cache,
            delivery=DeliveryChoice.from_flags(locals()), concurrency=concurrency,
            max_cost=max_cost, retry_failed=retry_failed, skip_bad_rows=skip_bad_rows,
            include_outputs=include_outputs, shard=shard, local=local, keep_profile=keep_profile,
            strict_inputs=strict_inputs, results=results, report=report, dry_run=dry_run,
            on_progress=notes) as job:
        plan, options = job.plan, job.options
        if dry_run:
            job.estimate()
            _print_dry_run(terminal, plan, options, as_json)
            return
        paying = plan.runs_to_create > 1 and not local
        if paying and not yes and not sys.stdin.isatty():
            raise UsageError(f"Refusing to submit {plan.runs_to_create} runs "
                             f"(${plan.estimated_cost(options.budget):.2f}) without confirmation.",
                             hint="Add --yes to spend from a script, or --dry-run to see the plan.")
        job.connect()
        if paying and not yes:
            _confirm(plan, options)
        view = BatchView(terminal, len(plan.items), as_json=as_json,
                         github=invocation.settings.github_actions)
        view.start()
        view.in_flight = job.in_flight_count
        terminal.when_stdout_closes(invocation.clock.stop)  # `| head`: submit nothing more
        try:
            result = job.run(reporter=view, on_outcome=lambda item, outcome: view.on_outcome(
                outcome_record(item, outcome, signed_urls)))
        finally:
            view.close()
    _finish(invocation, result)


def _confirm(plan, options) -> None:
    from runflow_bg.errors import Interrupted

    cost = plan.estimated_cost(options.budget)
    if not typer.confirm(f"Submit up to {plan.runs_to_create} runs for about ${cost:.2f}?",
                         default=False, err=True):
        raise Interrupted("Cancelled; nothing was submitted.")


def _print_dry_run(terminal, plan, options, as_json: bool) -> None:
    from runflow_bg.service.replace import MODEL

    rows = [{"photo": item.photo.display, "scene": plan.scene_of(item.photo)[0].name,
             "action": item.action.value,
             "out_dir": str(options.request.out_dir / item.photo.folder)} for item in plan.items]
    photos, scenes = plan.matrix()
    summary = {"dry_run": True, "model": MODEL, "photos": photos, "scenes": scenes,
               "items": len(plan.items), "local": options.local,
               "runs_to_create": plan.runs_to_create,
               "estimated_cost": f"{plan.estimated_cost(options.budget):.2f}",
               "price": f"{plan.price:.2f}", "currency": "USD"}
    if as_json:
        for row in [*rows, summary]:
            terminal.out_json(row)
        return
    labels = [row["photo"] + (f" + {row['scene']}" if scenes > 1 else "") for row in rows]
    width = max(map(len, labels), default=5)
    lines = ["dry run: nothing was sent"]
    lines += [f"{label:<{width}}  {row['action']:<8} -> {row['out_dir']}"
              for label, row in zip(labels, rows)]
    cost = "free (--local)" if options.local else f"estimated cost ${summary['estimated_cost']}"
    matrix = plan.describe_matrix()
    lines.append((f"{matrix}; " if matrix else "") + f"{summary['runs_to_create']} runs, {cost}")
    terminal.out_lines(lines)


def _finish(invocation, result) -> None:
    from runflow_bg.cli.batch_view import append_step_summary, print_summary, summary_rows
    from runflow_bg.errors import OutputClosed

    counts = {name: result.count(name) for name in ("succeeded", "failed", "skipped", "cached")}
    rows = summary_rows(counts, result.runs_created, None if result.local else result.spent)
    print_summary(invocation.terminal, rows)
    append_step_summary(invocation.settings.environ, rows)
    if invocation.terminal.stdout_closed:
        raise OutputClosed(f"stdout was closed, so no new run was submitted; runs still in "
                           f"flight: {', '.join(result.in_flight) or 'none'}.",
                           hint="Run the same command again to resume; nothing is paid twice.")
    result.raise_for_failure()
