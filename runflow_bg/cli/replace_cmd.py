"""`runflow-bg replace`: one photo, one scene, end to end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from runflow_bg.cli import options as opt


def replace(
    ctx: typer.Context,
    photo: Optional[str] = typer.Argument(None, metavar="PHOTO",
                                          help="Product photo (PNG, JPEG, WebP; - for stdin)."),
    scene: Optional[str] = typer.Argument(None, metavar="SCENE",
                                          help="Scene image to place the product in."),
    prompt: Optional[str] = opt.PROMPT,
    out: Optional[Path] = opt.OUT,
    name: Optional[str] = opt.NAME,
    overwrite: bool = opt.OVERWRITE,
    no_wait: bool = typer.Option(False, "--no-wait", help="Submit, print the run id, exit 0."),
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
    zip_url: Optional[str] = typer.Option(None, "--zip-url", metavar="URL",
                                          help="Use a zip already online instead of PHOTO SCENE."),
    image: Optional[str] = typer.Option(None, "--image", metavar="NAME",
                                        help="With --zip-url: the photo's member name."),
    reference: Optional[str] = typer.Option(None, "--reference", metavar="NAME",
                                            help="With --zip-url: the scene's member name."),
) -> None:
    """Replace the background of PHOTO with SCENE: pack, upload, run, wait, download."""
    from dataclasses import replace as with_changes

    from runflow_bg.errors import RunflowBgError
    from runflow_bg.service import inputs as checks
    from runflow_bg.service.replace import check_outputs, dry_run_summary, replace as run_replace
    from runflow_bg.service.results import Outcome

    invocation = ctx.obj
    terminal = invocation.terminal.configure(quiet=quiet, verbose=verbose or invocation.debug)
    settings = opt.resolve_common(invocation.settings, out=out, name=name, timeout=timeout,
                                  poll_interval=poll_interval, metadata=metadata,
                                  callback_url=callback_url, prompt=prompt, overwrite=overwrite,
                                  wait=not no_wait, use_cache=not no_cache)
    delivery = opt.resolve_delivery(invocation.settings, terminal, locals())
    settings = with_changes(settings, delivery=delivery)
    reporter = terminal.reporter()
    inputs = outcome = None
    try:
        inputs = _inputs(photo, scene, zip_url, image, reference, reporter, keep_profile,
                         strict_inputs)
        opt.warn_if_file_like(terminal, settings.out_dir)
        checks.check_output_dir(settings.out_dir, create=not dry_run)
        if dry_run:
            journal = invocation.open_journal(local=local)
            try:
                check_outputs(journal, inputs, settings)
            finally:
                journal.close()
            price = invocation.price(local=local).amount
            _print_dry_run(terminal, dry_run_summary(inputs, settings, price=price, local=local),
                           as_json)
            return
        with invocation.open_session(local=local) as session:
            outcome = run_replace(session.client, session.journal, inputs, settings, reporter)
    except RunflowBgError as exc:
        reporter.close()
        if as_json:
            photo_name = inputs.photo if inputs else photo
            scene_name = inputs.scene if inputs else scene
            terminal.out_json(Outcome(photo=photo_name or "", scene=scene_name or "",
                                      prompt=settings.prompt, error=exc).to_json(signed_urls))
        raise
    finally:
        reporter.close()
    if as_json:
        terminal.out_json(outcome.to_json(signed_urls))
    elif not settings.wait:
        terminal.out_lines([outcome.run.id])
    else:
        terminal.out_lines([str(saved.path) for saved in outcome.saved])


def _inputs(photo, scene, zip_url, image, reference, reporter, keep_profile, strict):
    from runflow_bg.errors import UsageError
    from runflow_bg.service import inputs as checks

    if zip_url:
        if photo or scene:
            raise UsageError("Give either PHOTO SCENE or --zip-url, not both.")
        return checks.zip_url_inputs(zip_url, image, reference)
    if not photo or not scene:
        raise UsageError("Missing PHOTO or SCENE.",
                         hint="Usage: runflow-bg replace PHOTO SCENE [options].")
    stdin = sys.stdin.buffer if "-" in (photo, scene) else None
    return checks.replace_inputs(photo, scene, stdin, reporter, keep_profile=keep_profile,
                                 strict=strict)


def _print_dry_run(terminal, summary: dict, as_json: bool) -> None:
    if as_json:
        terminal.out_json(summary)
        return
    from runflow_bg.urls import redact_url

    lines = ["dry run: nothing was sent", f"model   {summary['model']}"]
    if summary["zip_url"]:
        lines.append(f"zip     {redact_url(summary['zip_url'])}")
    else:
        lines.append(f"zip     inputs.zip ({summary['zip_bytes']:,} bytes)")
        lines.extend(f"  {m['name']:<18} {m['bytes']:>12,} bytes" for m in summary["members"])
    lines.append(f"prompt  {summary['prompt'] or '(the model default)'}")
    if summary["local"]:
        lines.append("cost    none: --local runs on this machine, for free")
    else:
        lines.append(f"cost    ${summary['estimated_cost']} (estimated, one run)")
    terminal.out_lines(lines)
