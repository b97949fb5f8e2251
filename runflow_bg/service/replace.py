"""The replace use case: checks against the journal and the disk, submit once, settle the run."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace as with_changes
from decimal import Decimal
from pathlib import Path

from runflow_bg.client import RunflowClient
from runflow_bg.download import OutputNaming, SavedFile, reuse_output
from runflow_bg.errors import InputError, Interrupted, RunFailed
from runflow_bg.fsutil import remove_stale_parts
from runflow_bg.journal import FAILED, IN_FLIGHT, SUCCEEDED, Entry, Journal, Request
from runflow_bg.models import Run
from runflow_bg.naming import (DEFAULT_TEMPLATE, check_replaceable, existing_first_output,
                               output_path, render)
from runflow_bg.polling import PollSchedule
from runflow_bg.outputs import Delivery
from runflow_bg.progress import Reporter
from runflow_bg.service.inputs import MODEL, Inputs
from runflow_bg.service.results import Outcome
from runflow_bg.service.settle import Waiting, settle
from runflow_bg.service.submit import outputs_present, submit

@dataclass(frozen=True)
class ReplaceOptions:
    """How to run one request; plain values resolved by the CLI."""

    out_dir: Path = Path(".")
    prompt: str | None = None
    name_template: str = DEFAULT_TEMPLATE
    overwrite: bool = False
    wait: bool = True
    timeout: float | None = 600.0
    poll: PollSchedule = PollSchedule()
    callback_url: str | None = None
    metadata: dict | None = None
    use_cache: bool = True
    delivery: Delivery | None = None

    def naming(self, inputs: Inputs) -> OutputNaming:
        delivery = self.delivery and with_changes(
            self.delivery, source_name=inputs.photo, copyright=inputs.rights[0],
            creator=inputs.rights[1])
        return OutputNaming(self.out_dir, self.name_template, inputs.stem, inputs.scene_stem,
                            self.overwrite, delivery)

    def waiting(self) -> Waiting:
        return Waiting(wait=True, timeout=self.timeout, poll=self.poll)

    def outcome(self, inputs: Inputs, **fields) -> Outcome:
        """An outcome of this request for these inputs."""
        return Outcome(photo=inputs.photo, scene=inputs.scene, prompt=self.prompt, **fields)


def dry_run_summary(inputs: Inputs, options: ReplaceOptions, *, price: Decimal,
                    local: bool = False, model: str = MODEL) -> dict:
    """What a real run would send and cost; computed without any network call."""
    members = [{"name": n, "bytes": s} for n, s in inputs.package.members] if inputs.package else []
    return {
        "dry_run": True,
        "model": model,
        "photo": inputs.photo,
        "scene": inputs.scene,
        "zip_url": inputs.zip_url,
        "zip_bytes": inputs.package.size if inputs.package else None,
        "members": members,
        "input": inputs.run_input("<uploaded zip>" if inputs.package else inputs.zip_url or "",
                                  options.prompt),
        "prompt": options.prompt,
        "estimated_cost": "0.00" if local else f"{price:.2f}",
        "currency": "USD",
        "local": local,
        "out_dir": str(options.out_dir),
    }


def copy_outputs(previous: list[str], run_id: str, inputs: Inputs, options: ReplaceOptions,
                 reporter: Reporter) -> list[SavedFile]:
    """Save already paid-for outputs under this request's names: made afresh from the kept
    originals when this request asks for another delivery, else copied."""
    naming = options.naming(inputs)
    saved = []
    for index, source in enumerate(previous):
        target = reuse_output(Path(source), naming, index, run_id)
        saved.append(SavedFile("", target))
        reporter.on_saved(str(target))
    return saved


def request_for(inputs: Inputs, options: ReplaceOptions) -> Request:
    """The journal's view of a `replace`: its content, in its output folder."""
    content_hash = inputs.content_hash(options.prompt)
    return Request(content_hash=content_hash, job="replace",
                   item=f"{content_hash}:{options.out_dir.resolve()}", photo=inputs.photo,
                   scene=inputs.scene, prompt=options.prompt, out_dir=str(options.out_dir),
                   name_template=options.name_template)


def finished_outcome(entry: Entry, options: ReplaceOptions, inputs: Inputs) -> Outcome:
    """A request finished before, here or by another process: its files, or its failure."""
    run = Run(id=entry.run_id or "", status=entry.status, client_ref=entry.client_ref)
    if entry.status == FAILED:
        error = RunFailed(f"{inputs.photo}: the run {entry.run_id or ''} failed "
                          f"({entry.error or 'no details'}).".replace("run  ", "run "),
                          run_id=entry.run_id, code="FAILED_EARLIER",
                          hint="Run the command again to submit it anew.")
        return options.outcome(inputs, client_ref=entry.client_ref, run=run, error=error)
    saved = [SavedFile("", Path(path)) for path in entry.outputs]
    return options.outcome(inputs, client_ref=entry.client_ref, run=run, saved=saved, skipped=True)


def check_outputs(journal: Journal, inputs: Inputs, options: ReplaceOptions) -> Outcome | None:
    """Before anything is spent: this request's own outputs in place mean it is done (None when
    it is not); a file left by this request's run while the journal lags is not in the way
    (settling the run finds the same bytes there); anything else at the first output's name is
    refused without --overwrite."""
    output_path(options.out_dir, render(options.name_template, stem=inputs.stem,
                                        scene=inputs.scene_stem, index=0, run_id="run", ext="webp"))
    existing = existing_first_output(options.out_dir, options.name_template, stem=inputs.stem,
                                     scene=inputs.scene_stem)
    if existing is None:
        return None
    request = request_for(inputs, options)
    entry = journal.latest_for_item(request.job, request.item)
    if entry is not None and entry.content_hash == request.content_hash:
        recorded = {os.path.abspath(path) for path in entry.outputs}
        if (entry.status == SUCCEEDED and os.path.abspath(existing) in recorded
                and outputs_present(entry)):
            return finished_outcome(entry, options, inputs)
        if entry.status in IN_FLIGHT:
            return None
    if options.overwrite:
        check_replaceable(existing)
        return None
    raise InputError(f"{existing} already exists.",
                     hint="Add --overwrite to replace it, or choose another --name or --out.")


def _reuse_cached(journal: Journal, inputs: Inputs, options: ReplaceOptions,
                  reporter: Reporter) -> Outcome | None:
    """The saved outputs of an identical request that already succeeded, if still there."""
    entry = journal.succeeded_with_hash(inputs.content_hash(options.prompt))
    if entry is None or not outputs_present(entry):
        return None
    saved = copy_outputs(list(entry.outputs), entry.run_id or "run", inputs, options, reporter)
    reporter.on_notice(f"reused the result of run {entry.run_id} (identical request; "
                       "--no-cache pays for a new run)")
    run = Run(id=entry.run_id or "", status=SUCCEEDED, client_ref=entry.client_ref)
    return options.outcome(inputs, client_ref=entry.client_ref, run=run, saved=saved, cached=True)


def replace(client: RunflowClient, journal: Journal, inputs: Inputs, options: ReplaceOptions,
            reporter: Reporter) -> Outcome:
    """One photo, one scene: done already, reuse an identical result, or submit, wait, save."""
    remove_stale_parts(options.out_dir)
    done = check_outputs(journal, inputs, options)
    if done is not None:
        reporter.on_notice(f"already done by run {done.id}; its outputs are in place")
        return done
    if options.use_cache:
        cached = _reuse_cached(journal, inputs, options, reporter)
        if cached is not None:
            return cached
    try:
        submitted = submit(client, journal, request_for(inputs, options), inputs, reporter,
                           callback_url=options.callback_url, metadata=options.metadata,
                           retry_failed=True)
    except KeyboardInterrupt:
        raise Interrupted("Interrupted before the run was submitted; nothing was spent.") from None
    if isinstance(submitted, Entry):
        outcome = finished_outcome(submitted, options, inputs)
        if outcome.error is not None:
            raise outcome.error
        return outcome
    if not options.wait:
        return options.outcome(inputs, client_ref=submitted.client_ref, run=submitted.run)
    run, saved = settle(client, journal, submitted.run, options.naming(inputs), reporter,
                        options.waiting(), client_ref=submitted.client_ref)
    return options.outcome(inputs, client_ref=submitted.client_ref, run=run, saved=saved)
