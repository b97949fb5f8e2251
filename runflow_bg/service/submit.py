"""Submitting a request exactly once, even with two processes, a lost answer or Ctrl-C.

The journal's claim decides who works on a request. The owner uploads, records that a create
is being sent, creates, and records the run. Another process that meets a live owner's claim
waits for its result instead of paying again; a dead owner's claim is taken over, and a create
it may have sent is looked for over the grace window before anything else is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runflow_bg.client import RunflowClient, new_client_ref
from runflow_bg.errors import CreateUnknown, InputError, Interrupted
from runflow_bg.journal import CREATING, FAILED, SUBMITTED, SUCCEEDED, UNKNOWN, Entry, Journal, Request
from runflow_bg.models import Run
from runflow_bg.progress import Reporter, human_size
from runflow_bg.service.inputs import MODEL, Inputs

OWNER_POLL_SECONDS = 0.2  # a local SQLite read: cheap, and the wait ends sooner


@dataclass(frozen=True)
class Claimed:
    """This process owns the request, and its run exists."""

    client_ref: str
    run: Run


def outputs_present(entry: Entry) -> bool:
    return bool(entry.outputs) and all(Path(path).is_file() for path in entry.outputs)


def submit(client: RunflowClient, journal: Journal, request: Request, inputs: Inputs,
           reporter: Reporter, *, callback_url: str | None, metadata: dict | None,
           retry_failed: bool, before_create: Callable[[], None] | None = None
           ) -> Claimed | Entry:
    """The request's run, created at most once; or its finished row, to reuse as it is.

    A finished row comes back when the request was done before (its outputs still in place),
    failed before (without `retry_failed`), or was finished meanwhile by another process.
    `before_create` runs right before a paid create (a budget may refuse there).
    """
    entry = _claim(client, journal, request, retry_failed, reporter, started=time.time())
    if entry.status in (SUCCEEDED, FAILED):
        return entry
    client_ref = entry.client_ref
    if entry.status == SUBMITTED and entry.run_id:
        reporter.on_notice(f"resuming run {entry.run_id}, submitted earlier")
        return Claimed(client_ref, client.get_run(entry.run_id))
    if entry.status in (CREATING, UNKNOWN):
        since = time.time() - (entry.sent_at or entry.updated_at)
        found = client.find_created(client_ref, client.create_grace - since)
        if found is not None:
            reporter.on_notice(f"resuming run {found.id}, created earlier")
            journal.record_run(client_ref, found.id)
            return Claimed(client_ref, found)
        # No lookup made over the grace window found it: the earlier create made nothing.
    zip_url = inputs.zip_url
    if inputs.package is not None:
        asset = client.upload(inputs.package.file, "inputs.zip",
                              on_bytes=lambda done, total: reporter.on_bytes("upload", done, total))
        reporter.on_stage(f"uploaded inputs.zip ({human_size(inputs.package.size)})")
        zip_url = asset.url
    if client.clock.stopped:  # interrupted meanwhile: no new create after a signal
        raise KeyboardInterrupt
    if before_create is not None:
        before_create()
    journal.record_sending(client_ref)
    try:
        run = client.create_run(inputs.run_input(zip_url, request.prompt), model=MODEL,
                                client_ref=client_ref, callback_url=callback_url,
                                metadata=metadata)
    except KeyboardInterrupt:
        raise Interrupted(
            f"Interrupted while creating the run (client_ref {client_ref}); it may exist.",
            hint="Run the same command again: it looks the run up instead of paying twice.") from None
    except CreateUnknown as exc:
        journal.record_unknown(client_ref, exc.message)
        raise
    except InputError as exc:  # refused for good: nothing was created, and retrying won't help
        journal.record_finish(client_ref, FAILED, error=exc.message)
        raise
    journal.record_run(client_ref, run.id)
    return Claimed(client_ref, run)


def _claim(client: RunflowClient, journal: Journal, request: Request, retry_failed: bool,
           reporter: Reporter, *, started: float) -> Entry:
    """Claim the request, waiting while another live process holds it."""
    def renew(entry: Entry) -> bool:
        if entry.status == FAILED:  # one that failed while this process waited is not retried
            return retry_failed and entry.updated_at < started
        return not outputs_present(entry)

    told = False
    while True:
        entry = journal.claim(request, new_client_ref(), renew)
        if not entry.held_by_another(journal.owner):
            return entry
        if not told:
            owner = entry.owned_by
            reporter.on_notice(f"another runflow-bg process (pid {owner.pid}) is working on this "
                               "request; waiting for its result instead of paying again")
            told = True
        client.clock.sleep(OWNER_POLL_SECONDS)
