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
                                          help="Product photo (PNG, JPEG, WebP; an https URL; "
                                               "- for stdin)."),
    scene: Optional[str] = typer.Argument(None, metavar="SCENE",
                                          help="Scene image (or its https URL) to place the "
                                               "product in."),
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
    from runflow_bg.choices import DeliveryChoice
    from runflow_bg.errors import RunflowBgError
    from runflow_bg.service.results import Outcome
    from runflow_bg.urls import input_label

    invocation = ctx.obj
    terminal = invocation.terminal.configure(quiet=quiet, verbose=verbose or invocation.debug)
    reporter = terminal.reporter()
    stdin = sys.stdin.buffer if "-" in (photo, scene) else None
    request = dict(zip_url=zip_url, image=image, reference=reference, out=out, prompt=prompt,
                   name=name, overwrite=overwrite, wait=not no_wait, timeout=timeout,
                   poll_interval=poll_interval, callback_url=callback_url, metadata=metadata,
                   use_cache=not no_cache, local=local, keep_profile=keep_profile,
                   strict_inputs=strict_inputs, delivery=DeliveryChoice.from_flags(locals()),
                   stdin=stdin, on_progress=reporter)
    try:
        if dry_run:
            _print_dry_run(terminal, invocation.preview_replace(photo, scene, **request), as_json)
            return
        outcome = invocation.replace(photo, scene, **request)
    except RunflowBgError as exc:
        reporter.close()
        if as_json:
            terminal.out_json(Outcome(photo=input_label(photo or image or ""),
                                      scene=input_label(scene or reference or ""),
                                      prompt=prompt or None, error=exc).to_json(signed_urls))
        raise
    finally:
        reporter.close()
    if as_json:
        terminal.out_json(outcome.to_json(signed_urls))
    elif no_wait:
        terminal.out_lines([outcome.run.id])
    else:
        terminal.out_lines([str(saved.path) for saved in outcome.saved])


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
