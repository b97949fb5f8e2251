"""Running a batch plan: every request paid at most once, at most `concurrency` in flight.

Worker threads take the items in order; one failed item never stops the others, a 429 pauses
every worker (the client's transport is shared), and Ctrl-C stops the clock every worker waits
on, so submitting stops at once and the runs still in flight are reported.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from runflow_bg.client import RunflowClient
from runflow_bg.cores import one_core
from runflow_bg.download import SavedFile
from runflow_bg.errors import (BudgetReached, CreateUnknown, InputError, InsufficientCredit,
                               Interrupted, RunFailed, RunflowBgError, UnavailableError)
from runflow_bg.fsutil import remove_stale_parts
from runflow_bg.journal import (FAILED, RECENT_RUNS, SUBMITTED, SUCCEEDED, Entry, Journal,
                                Request)
from runflow_bg.models import Run
from runflow_bg.pricing import cost_of
from runflow_bg.progress import Reporter
from runflow_bg.service.batch_plan import SPENDING, Action, BatchOptions, Item, Plan, item_options
from runflow_bg.service.collect import Photo
from runflow_bg.service.inputs import Inputs, local_inputs
from runflow_bg.service.replace import copy_outputs
from runflow_bg.service.results import Outcome
from runflow_bg.service.settle import settle
from runflow_bg.service.submit import submit


@dataclass
class BatchResult:
    """What became of a batch: each item's outcome, the runs created and the money spent."""

    outcomes: list[Outcome]
    runs_created: int
    spent: Decimal
    left_over: int
    interrupted: bool = False
    in_flight: list[str] = field(default_factory=list)
    stopped_by: RunflowBgError | None = None
    local: bool = False

    def count(self, kind: str) -> int:
        checks = {
            "succeeded": lambda o: o.error is None and not o.skipped and not o.cached,
            "failed": lambda o: o.error is not None,
            "skipped": lambda o: o.skipped,
            "cached": lambda o: o.cached,
        }
        return sum(1 for outcome in self.outcomes if checks[kind](outcome))

    def failure(self) -> RunflowBgError | None:
        """The error the batch as a whole ends with (None when every item is done): an
        interruption, then lack of credit or budget, then the items' own failures."""
        ids = ", ".join(self.in_flight) or "none"
        if self.interrupted:
            return Interrupted(f"Interrupted; runs still in flight: {ids}.",
                               hint="Run the same command again to resume; nothing is paid twice.")
        if isinstance(self.stopped_by, InsufficientCredit):
            return InsufficientCredit(f"Runflow refused further runs for lack of credit; "
                                      f"{self.left_over} items were not submitted.")
        if self.left_over:
            return BudgetReached(f"--max-cost reached; {self.left_over} items were not submitted.")
        failures = [o.error for o in self.outcomes if o.error is not None]
        if failures and all(isinstance(e, CreateUnknown) for e in failures):
            return CreateUnknown(f"{len(failures)} items stopped: whether their runs were created "
                                 "is unknown.")
        if failures and all(isinstance(e, UnavailableError) for e in failures):
            return UnavailableError(f"{len(failures)} items failed: Runflow stayed unavailable.")
        if failures:
            return RunFailed(f"{len(failures)} of {len(self.outcomes)} items failed.",
                             hint="Fix what the messages above say, then run again with "
                                  "--retry-failed.")
        return None

    def raise_for_failure(self) -> None:
        """Raise `failure()`, if there is one."""
        error = self.failure()
        if error is not None:
            raise error


class _Gate:
    """Shared by the workers: the budget in money, and a stop for good after a 402.

    Each run created here is counted at the price when it is sent and corrected by the cost
    it reports once it has succeeded, so --max-cost and "money spent" follow Runflow's figures.
    """

    def __init__(self, budget: Decimal | None, price: Decimal) -> None:
        self._lock = threading.Lock()
        self._budget, self._price = budget, price
        self.spent = Decimal(0)
        self.created = 0
        self.closed_by: RunflowBgError | None = None

    @property
    def closed(self) -> bool:
        return self.closed_by is not None or not self._affordable()

    def _affordable(self) -> bool:
        return self._budget is None or self.spent + self._price <= self._budget

    def close(self, reason: RunflowBgError) -> None:
        self.closed_by = self.closed_by or reason

    def before_create(self) -> None:
        """Commit one run's price, or refuse."""
        with self._lock:
            if self.closed_by is not None:
                raise self.closed_by
            if not self._affordable():
                raise BudgetReached("--max-cost reached; the item was not submitted.")
            self.spent += self._price
            self.created += 1

    def refund(self) -> None:
        """The service answered a create with an error: no run, no cost."""
        with self._lock:
            self.created -= 1
            self.spent -= self._price

    def reported(self, cost: Decimal | None) -> None:
        """A run created here reported what it cost."""
        if cost is not None:
            with self._lock:
                self.spent += cost - self._price


class _ItemReporter:
    """Prefixes the replace use case's reports with the item (its photo, and its scene when it
    has one of its own); a notice about the photo itself (it starts with the photo's name: a
    conversion, a grey backdrop) is said once, not again for each of its scenes."""

    def __init__(self, reporter: Reporter, photo: Photo, said: set[str],
                 lock: threading.Lock) -> None:
        self._reporter, self._photo, self._label = reporter, photo.display, photo.label
        self._said, self._lock = said, lock

    def on_stage(self, message: str) -> None:
        self._reporter.on_stage(f"{self._label}: {message}")

    def on_notice(self, message: str) -> None:
        if not message.startswith(f"{self._photo}: "):
            self._reporter.on_notice(f"{self._label}: {message}")
            return
        with self._lock:
            if message in self._said:
                return
            self._said.add(message)
        self._reporter.on_notice(f"{self._photo}: {message}")

    def on_status(self, run: Run, elapsed: float) -> None:
        self._reporter.on_stage(f"{self._label}: run {run.id} {run.status}")

    def on_bytes(self, label: str, done: int, total: int) -> None:
        pass

    def on_saved(self, path: str) -> None:
        self._reporter.on_saved(path)


class BatchRunner:
    """Carries a plan out with a pool of worker threads."""

    def __init__(self, plan: Plan, client: RunflowClient, journal: Journal, options: BatchOptions,
                 reporter: Reporter, on_outcome: Callable[[Item, Outcome], None]) -> None:
        self.plan, self.client, self.journal, self.options = plan, client, journal, options
        self.reporter, self.on_outcome = reporter, on_outcome
        self.clock = client.clock
        self.gate = _Gate(options.budget, options.price)
        self._left_over = 0
        self._lock = threading.Lock()
        self._in_flight: dict[str, str] = {}
        self._said: set[str] = set()  # notices about photos, each said once
        # The poll schedule, taught how long this account's runs take: by the journal, then by
        # the batch's own runs as they end (see _learn).
        self._history = journal.recent_run_seconds()
        self._durations: list[float] = []
        self._poll = options.request.poll.learn(self._history)

    def _learn(self, run: Run) -> None:
        """A run of this batch ended: its duration teaches the schedule of the runs after it,
        so that the second wave of a batch is polled as its runs end. The schedule is made
        again for each of the batch's first 8 durations, then at 16 and 32 (each costs a few
        milliseconds)."""
        if not run.duration_ms:
            return
        with self._lock:
            self._durations.insert(0, run.duration_ms / 1000)
            count = len(self._durations)
            if count <= 8 or count in (16, 32):
                self._poll = self.options.request.poll.learn(
                    (self._durations + self._history)[:RECENT_RUNS])

    def in_flight_count(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _outcome(self, item: Item, **fields) -> Outcome:
        return Outcome(photo=item.photo.display, scene=self.plan.scene_of(item.photo)[0].name,
                       prompt=item_options(self.options.request, item.photo).prompt, **fields)

    def _request(self, item: Item) -> Request:
        options = item_options(self.options.request, item.photo)
        return Request(content_hash=item.content_hash, job=self.plan.job, item=item.photo.key,
                       photo=item.photo.display, scene=self.plan.scene_of(item.photo)[0].name,
                       prompt=options.prompt, out_dir=str(options.out_dir),
                       name_template=options.name_template)

    def _paid(self, item: Item) -> Outcome:
        """Submit (or resume) the item's run, wait for it and save its outputs."""
        options = item_options(self.options.request, item.photo)
        reporter = _ItemReporter(self.reporter, item.photo, self._said, self._lock)
        scene, scene_source = self.plan.scene_of(item.photo)
        inputs = local_inputs(item.photo.source, scene, scene_source, None, reporter,
                              keep_profile=self.options.keep_profile)
        reserved = []

        def before_create() -> None:
            self.gate.before_create()
            reserved.append(True)

        try:
            submitted = submit(self.client, self.journal, self._request(item), inputs, reporter,
                               callback_url=options.callback_url, metadata=options.metadata,
                               retry_failed=self.options.retry_failed, before_create=before_create)
        except RunflowBgError as exc:
            if reserved and exc.status is not None:
                self.gate.refund()  # the service answered: no run was created
            raise
        if isinstance(submitted, Entry):  # finished meanwhile, by another process
            return self._shared(item, submitted)
        with self._lock:
            self._in_flight[item.photo.key] = submitted.run.id
            waiting = replace(options.waiting(), poll=self._poll)
        try:
            run, saved = settle(self.client, self.journal, submitted.run, options.naming(inputs),
                                reporter, waiting, client_ref=submitted.client_ref,
                                on_ended=self._learn)
        except Interrupted:
            raise  # still in flight: reported with the command to resume
        except BaseException:
            self._forget(item)
            raise
        self._forget(item)
        if reserved:
            self.gate.reported(cost_of(run.cost))
        return self._outcome(item, client_ref=submitted.client_ref, run=run, saved=saved)

    def _shared(self, item: Item, entry: Entry) -> Outcome:
        """An item another process finished: its files, or its failure; nothing paid here."""
        run = Run(id=entry.run_id or "", status=entry.status, client_ref=entry.client_ref)
        if entry.status == FAILED:
            error = RunFailed(f"{item.photo.display}: its run {entry.run_id} failed in another "
                              f"runflow-bg process ({entry.error or 'no details'}).",
                              run_id=entry.run_id, code="FAILED_ELSEWHERE",
                              hint="Add --retry-failed to submit it again.")
            return self._outcome(item, client_ref=entry.client_ref, run=run, error=error)
        saved = [SavedFile("", Path(path)) for path in entry.outputs]
        for path in entry.outputs:
            self.reporter.on_saved(path)
        return self._outcome(item, client_ref=entry.client_ref, run=run, saved=saved, skipped=True)

    def _forget(self, item: Item) -> None:
        with self._lock:
            self._in_flight.pop(item.photo.key, None)

    def _follow(self, item: Item) -> Outcome:
        """Wait for the leader with the same content, then reuse its outputs."""
        leader = item.leader
        assert leader is not None
        while not leader.finished.wait(0.1):
            if self.clock.stopped:
                raise Interrupted("Interrupted.")
        inputs = Inputs.unread(item.photo.display, self.plan.scene_of(item.photo)[0].name)
        done = leader.outcome
        if done is None or done.error is not None or done.run is None:
            raise InputError(f"{item.photo.display} has the same content as {leader.photo.display}, "
                             "whose run did not succeed.", run_id=done.id if done else None)
        options = item_options(self.options.request, item.photo)
        saved = copy_outputs([str(s.path) for s in done.saved], done.run.id, inputs, options,
                             self.reporter)
        return self._outcome(item, client_ref=done.client_ref, run=done.run, saved=saved,
                             cached=True)

    def _unpaid(self, item: Item) -> Outcome:
        """Items that need no run: done, skipped, cached, failed earlier or unreadable."""
        entry = item.entry
        run = Run(id=entry.run_id, status=SUCCEEDED) if entry and entry.run_id else None
        if item.action is Action.INVALID:
            return self._outcome(item, error=item.error)
        if item.action is Action.FAILED:
            failed = Run(id=entry.run_id, status=FAILED) if entry.run_id else None
            error = InputError(f"{item.photo.display} failed in an earlier run "
                               f"({entry.error or 'no details'}).", code="FAILED_EARLIER",
                               hint="Add --retry-failed to submit it again.")
            return self._outcome(item, client_ref=entry.client_ref, run=failed, error=error)
        if item.action is Action.CACHED:
            options = item_options(self.options.request, item.photo)
            inputs = Inputs.unread(item.photo.display, self.plan.scene_of(item.photo)[0].name)
            saved = copy_outputs(list(entry.outputs), entry.run_id or "run", inputs, options,
                                 self.reporter)
            return self._outcome(item, client_ref=entry.client_ref, run=run, saved=saved,
                                 cached=True)
        if item.action is Action.DONE:
            saved = [SavedFile("", Path(p)) for p in entry.outputs]
            return self._outcome(item, client_ref=entry.client_ref, run=run, saved=saved,
                                 skipped=True)
        return self._outcome(item, skipped=True)

    def _process(self, item: Item) -> Outcome:
        if item.action is Action.FOLLOW:
            return self._follow(item)
        if item.action not in SPENDING:
            return self._unpaid(item)
        if self.gate.closed and not (item.entry and item.entry.status == SUBMITTED):
            with self._lock:
                self._left_over += 1
            error = self.gate.closed_by or BudgetReached("--max-cost reached; not submitted.")
            return self._outcome(item, error=error)
        return self._paid(item)

    def _work(self, work: queue.Queue) -> None:
        while not self.clock.stopped:
            try:
                item = work.get_nowait()
            except queue.Empty:
                return
            try:
                outcome = self._process(item)
            except (Interrupted, KeyboardInterrupt) as exc:
                error = exc if isinstance(exc, Interrupted) else Interrupted("Interrupted.")
                item.outcome = self._outcome(item, error=error)
                item.finished.set()
                return
            except RunflowBgError as exc:
                if isinstance(exc, (InsufficientCredit, BudgetReached)):
                    self.gate.close(exc)
                    if isinstance(exc, BudgetReached):
                        with self._lock:
                            self._left_over += 1
                outcome = self._outcome(item, error=exc)
            except Exception as exc:  # one broken item never stops the others
                outcome = self._outcome(item, error=RunflowBgError(
                    f"{item.photo.display}: internal error ({type(exc).__name__})."))
            item.outcome = outcome
            item.finished.set()
            self.on_outcome(item, outcome)

    def run(self) -> BatchResult:
        """Process every item; Ctrl-C stops submitting and reports what is in flight."""
        remove_stale_parts(self.options.request.out_dir)
        work: queue.Queue = queue.Queue()
        for item in self.plan.items:  # leaders before their followers, by construction
            work.put(item)
        workers = [threading.Thread(target=self._work, args=(work,), daemon=True,
                                    name=f"runflow-bg-batch-{n}")
                   for n in range(max(1, self.options.concurrency))]
        interrupted = False
        with one_core():  # see cores.py
            for worker in workers:
                worker.start()
            try:
                for worker in workers:
                    while worker.is_alive():
                        worker.join(0.2)
            except KeyboardInterrupt:
                interrupted = True
                self.clock.stop()
                deadline = time.monotonic() + 3
                for worker in workers:
                    worker.join(max(0.0, deadline - time.monotonic()))
        outcomes = [item.outcome for item in self.plan.items if item.outcome is not None]
        in_flight = [entry.run_id or f"(client_ref {entry.client_ref}, being created)"
                     for entry in self.journal.in_flight(self.plan.job)]
        return BatchResult(outcomes, self.gate.created, self.gate.spent,
                           self._left_over, interrupted or self.clock.stopped, in_flight,
                           self.gate.closed_by, self.options.local)
