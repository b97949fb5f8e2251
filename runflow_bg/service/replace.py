"""The replace use case: upload, create exactly once, then settle the run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from runflow_bg.client import RunflowClient, new_client_ref
from runflow_bg.download import OutputNaming, SavedFile
from runflow_bg.errors import InputError, Interrupted
from runflow_bg.journal import CREATING, FAILED, SUBMITTED, Journal
from runflow_bg.models import Run
from runflow_bg.naming import DEFAULT_TEMPLATE, output_path, render
from runflow_bg.polling import PollSchedule
from runflow_bg.progress import Reporter, human_size
from runflow_bg.service.inputs import MODEL, Inputs
from runflow_bg.service.results import Outcome
from runflow_bg.service.settle import Waiting, settle

PRICE_USD = Decimal("0.35")


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

    def naming(self, inputs: Inputs) -> OutputNaming:
        return OutputNaming(self.out_dir, self.name_template, inputs.stem, inputs.scene_stem,
                            self.overwrite)

    def waiting(self) -> Waiting:
        return Waiting(wait=True, timeout=self.timeout, poll=self.poll)

    def outcome(self, inputs: Inputs, **fields) -> Outcome:
        """An outcome of this request for these inputs."""
        return Outcome(photo=inputs.photo, scene=inputs.scene, prompt=self.prompt, **fields)


def dry_run_summary(inputs: Inputs, options: ReplaceOptions, model: str = MODEL) -> dict:
    """What a real run would send and cost; computed without any network call."""
    members = [{"name": n, "bytes": s} for n, s in inputs.package.members] if inputs.package else []
    return {
        "dry_run": True,
        "model": model,
        "photo": inputs.photo,
        "scene": inputs.scene,
        "zip_url": inputs.zip_url,
        "zip_bytes": len(inputs.package.data) if inputs.package else None,
        "members": members,
        "input": inputs.run_input("<uploaded zip>" if inputs.package else inputs.zip_url or "",
                                  options.prompt),
        "prompt": options.prompt,
        "estimated_cost": str(PRICE_USD),
        "currency": "USD",
        "out_dir": str(options.out_dir),
    }


def copy_outputs(previous: list[str], run_id: str, inputs: Inputs, options: ReplaceOptions,
                 reporter: Reporter) -> list[SavedFile]:
    """Copy already saved outputs to this request's names (a result paid for once, reused)."""
    naming = options.naming(inputs)
    saved = []
    for index, source in enumerate(previous):
        ext = Path(source).suffix.lstrip(".") or "bin"
        relative = render(naming.template, stem=naming.stem, scene=naming.scene, index=index,
                          run_id=run_id, ext=ext)
        target = output_path(options.out_dir, relative)
        if target.resolve() != Path(source).resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        saved.append(SavedFile("", target))
        reporter.on_saved(str(target))
    return saved


def _reuse_cached(journal: Journal, inputs: Inputs, options: ReplaceOptions,
                  reporter: Reporter) -> Outcome | None:
    """The saved outputs of an identical request that already succeeded, if still there."""
    entry = journal.succeeded_with_hash(inputs.content_hash(options.prompt))
    if entry is None or not entry.outputs or not all(Path(p).is_file() for p in entry.outputs):
        return None
    saved = copy_outputs(list(entry.outputs), entry.run_id or "run", inputs, options, reporter)
    reporter.on_notice(f"reused the result of run {entry.run_id} (identical request; "
                       "--no-cache pays for a new run)")
    run = Run(id=entry.run_id or "", status="succeeded", client_ref=entry.client_ref)
    return options.outcome(inputs, client_ref=entry.client_ref, run=run, saved=saved, cached=True)


def submit(client: RunflowClient, journal: Journal, inputs: Inputs, options: ReplaceOptions,
           reporter: Reporter, *, job: str, item: str,
           before_create: Callable[[], None] | None = None) -> tuple[str, Run]:
    """Create the item's run exactly once: resume a recorded one, else upload, record, create.

    A request recorded as submitted is picked up by its run id; one recorded as creating (the
    process died during the create) is looked up by its client_ref before anything is sent.
    `before_create` runs right before a paid create (a budget gate may raise there).
    """
    content_hash = inputs.content_hash(options.prompt)
    pending = journal.latest_for_item(job, item)
    client_ref = None
    if pending is not None and pending.content_hash == content_hash:
        if pending.status == SUBMITTED and pending.run_id:
            reporter.on_notice(f"resuming run {pending.run_id}, submitted earlier")
            return pending.client_ref, client.get_run(pending.run_id)
        if pending.status == CREATING:
            existing = client.find_run_by_client_ref(pending.client_ref)
            if existing is not None:
                reporter.on_notice(f"resuming run {existing.id}, created earlier")
                journal.record_run(pending.client_ref, existing.id)
                return pending.client_ref, existing
            client_ref = pending.client_ref
    zip_url = inputs.zip_url
    if inputs.package is not None:
        asset = client.upload(inputs.package.data, "inputs.zip",
                              on_bytes=lambda done, total: reporter.on_bytes("upload", done, total))
        reporter.on_stage(f"uploaded inputs.zip ({human_size(len(inputs.package.data))})")
        zip_url = asset.url
    assert zip_url is not None
    if before_create is not None:
        before_create()
    if client_ref is None:
        client_ref = new_client_ref()
        journal.record_request(client_ref=client_ref, content_hash=content_hash,
                               photo=inputs.photo, scene=inputs.scene, prompt=options.prompt,
                               out_dir=str(options.out_dir), name_template=options.name_template,
                               job=job, item=item)
    try:
        run = client.create_run(inputs.run_input(zip_url, options.prompt), model=MODEL,
                                client_ref=client_ref, callback_url=options.callback_url,
                                metadata=options.metadata)
    except KeyboardInterrupt:
        raise Interrupted(
            f"Interrupted while creating the run (client_ref {client_ref}); it may exist.",
            hint="Run the same command again: it looks the run up instead of paying twice.") from None
    except InputError as exc:  # refused for good: nothing was created, and retrying won't help
        journal.record_finish(client_ref, FAILED, error=exc.message)
        raise
    journal.record_run(client_ref, run.id)
    return client_ref, run


def replace(client: RunflowClient, journal: Journal, inputs: Inputs, options: ReplaceOptions,
            reporter: Reporter) -> Outcome:
    """One photo, one scene: reuse an identical result, or submit, wait and download."""
    if options.use_cache:
        cached = _reuse_cached(journal, inputs, options, reporter)
        if cached is not None:
            return cached
    item = f"{inputs.content_hash(options.prompt)}:{options.out_dir.resolve()}"
    try:
        client_ref, run = submit(client, journal, inputs, options, reporter, job="replace", item=item)
    except KeyboardInterrupt:
        raise Interrupted("Interrupted before the run was submitted; nothing was spent.") from None
    if not options.wait:
        return options.outcome(inputs, client_ref=client_ref, run=run)
    run, saved = settle(client, journal, run, options.naming(inputs), reporter, options.waiting())
    return options.outcome(inputs, client_ref=client_ref, run=run, saved=saved)
