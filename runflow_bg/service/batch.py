"""The batch use case: many photos, one scene; every request paid at most once, and resumable.

Planning is local and free: it reads each photo, hashes it and asks the journal what became of
it in earlier runs of the same command. Running then submits only what needs a new run, with at
most `concurrency` runs in flight, and one failed item never stops the others.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace as with_changes
from decimal import Decimal
from enum import Enum
from pathlib import Path

from runflow_bg.client import RunflowClient
from runflow_bg.errors import (BudgetReached, InputError, InsufficientCredit, Interrupted,
                               RunflowBgError, UnavailableError)
from runflow_bg.images import InputFile, PreparedImage, read_input
from runflow_bg.journal import CREATING, FAILED, SUBMITTED, SUCCEEDED, Entry, Journal
from runflow_bg.models import Run
from runflow_bg.naming import existing_first_output
from runflow_bg.progress import Reporter
from runflow_bg.service.collect import Photo
from runflow_bg.service.inputs import Inputs, digest, local_inputs, local_source, request_hash
from runflow_bg.service.replace import PRICE_USD, Outcome, ReplaceOptions, copy_outputs, finish, submit

_RATE_LIMIT_ROUNDS = 6


class Action(str, Enum):
    """What a batch item needs, decided before anything is spent."""

    SUBMIT = "submit"      # a new run
    RESUME = "resume"      # submitted (or being created) by an earlier run of this command
    FOLLOW = "follow"      # same content as an earlier item of this batch: reuse its result
    CACHED = "cached"      # an identical request succeeded before: reuse its saved files
    DONE = "done"          # saved by an earlier run of this command
    SKIP = "skip"          # its output exists and --overwrite was not given
    FAILED = "failed"      # failed in an earlier run; --retry-failed submits it again
    INVALID = "invalid"    # cannot be read as an image


SPENDING = frozenset({Action.SUBMIT, Action.RESUME})


@dataclass
class Item:
    photo: Photo
    action: Action
    content_hash: str = ""
    entry: Entry | None = None
    error: RunflowBgError | None = None
    leader: Item | None = None
    outcome: Outcome | None = None
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class BatchOptions:
    request: ReplaceOptions
    concurrency: int = 4
    max_runs: int | None = None
    retry_failed: bool = False


@dataclass
class Plan:
    job: str
    scene: PreparedImage
    scene_source: InputFile
    items: list[Item]

    def count(self, *actions: Action) -> int:
        return sum(1 for item in self.items if item.action in actions)

    @property
    def runs_to_create(self) -> int:
        """Runs this batch may pay for: new ones, and resumed ones whose create is unconfirmed."""
        return self.count(Action.SUBMIT) + sum(
            1 for i in self.items if i.action is Action.RESUME and i.entry and i.entry.status == CREATING)

    def estimated_cost(self, max_runs: int | None = None) -> Decimal:
        runs = self.runs_to_create if max_runs is None else min(max_runs, self.runs_to_create)
        return runs * PRICE_USD


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    runs_created: int
    spent: Decimal
    left_over: int
    interrupted: bool = False
    in_flight: list[str] = field(default_factory=list)
    stopped_by: RunflowBgError | None = None

    def count(self, kind: str) -> int:
        checks = {
            "succeeded": lambda o: o.error is None and not o.skipped and not o.cached,
            "failed": lambda o: o.error is not None,
            "skipped": lambda o: o.skipped,
            "cached": lambda o: o.cached,
        }
        return sum(1 for outcome in self.outcomes if checks[kind](outcome))


def job_key(options: ReplaceOptions) -> str:
    """Identifies "the same command": the same output folder and naming."""
    text = f"{options.out_dir.resolve()}\0{options.name_template}"
    return "batch:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def item_options(options: ReplaceOptions, photo: Photo) -> ReplaceOptions:
    """The item's options: its outputs go to the mirrored folder under the output folder."""
    return with_changes(options, out_dir=options.out_dir / photo.folder)


def _check_photo(photo: Photo) -> str:
    """Read the photo and check that it opens as an image; returns the digest of its bytes."""
    from PIL import Image, UnidentifiedImageError

    source = read_input(str(photo.path))
    try:
        with Image.open(io.BytesIO(source.data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(f"{photo.display}: not an image, or a damaged one.",
                         hint="Use a PNG, JPEG or WebP image.") from None
    return digest(source.data)


def _plan_item(photo: Photo, scene: PreparedImage, scene_digest: str, journal: Journal,
               job: str, options: BatchOptions) -> Item:
    request = options.request
    try:
        photo_digest = _check_photo(photo)
    except InputError as exc:
        return Item(photo, Action.INVALID, error=exc)
    content_hash = request_hash(local_source(photo_digest, scene_digest), request.prompt)
    entry = journal.latest_for_item(job, photo.key)
    if entry is not None and entry.content_hash == content_hash:
        if entry.status == SUCCEEDED and all(Path(p).is_file() for p in entry.outputs):
            return Item(photo, Action.DONE, content_hash, entry)
        if entry.status in (SUBMITTED, CREATING):
            return Item(photo, Action.RESUME, content_hash, entry)
        if entry.status == FAILED and not options.retry_failed:
            return Item(photo, Action.FAILED, content_hash, entry)
    out_dir = item_options(request, photo).out_dir
    if not request.overwrite and existing_first_output(
            out_dir, request.name_template, stem=photo.path.stem, scene=scene.stem) is not None:
        return Item(photo, Action.SKIP, content_hash, entry)
    if request.use_cache:
        cached = journal.succeeded_with_hash(content_hash)
        if cached is not None and all(Path(p).is_file() for p in cached.outputs):
            return Item(photo, Action.CACHED, content_hash, cached)
    return Item(photo, Action.SUBMIT, content_hash, entry)


def plan_batch(photos: list[Photo], scene: PreparedImage, scene_source: InputFile,
               journal: Journal, options: BatchOptions) -> Plan:
    """Decide, locally and for free, what each photo needs."""
    job = job_key(options.request)
    scene_digest = digest(scene_source.data)
    items = [_plan_item(photo, scene, scene_digest, journal, job, options) for photo in photos]
    leaders: dict[str, Item] = {}
    for item in items:
        if item.action in (Action.SUBMIT, Action.RESUME):
            leader = leaders.setdefault(item.content_hash, item)
            if leader is not item and item.action is Action.SUBMIT:
                item.action, item.leader = Action.FOLLOW, leader
    return Plan(job, scene, scene_source, items)


class _Gate:
    """Shared by the workers: the run budget, and a pause after the service says 429."""

    def __init__(self, max_runs: int | None, stop: threading.Event) -> None:
        self._lock = threading.Lock()
        self._left = max_runs
        self._not_before = 0.0
        self._stop = stop
        self.created = 0
        self.closed_by: RunflowBgError | None = None

    @property
    def closed(self) -> bool:
        return self.closed_by is not None or self._left == 0

    def close(self, reason: RunflowBgError) -> None:
        self.closed_by = self.closed_by or reason

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def before_create(self) -> None:
        """Wait out a rate-limit pause, then take one run from the budget (or refuse)."""
        while True:
            delay = self._not_before - time.monotonic()
            if delay <= 0:
                break
            if self._stop.wait(delay):
                raise KeyboardInterrupt
        with self._lock:
            if self.closed_by is not None:
                raise self.closed_by
            if self._left is not None:
                if self._left <= 0:
                    raise BudgetReached("--max-cost reached; the item was not submitted.")
                self._left -= 1
            self.created += 1

    def refund(self) -> None:
        with self._lock:
            self.created -= 1
            if self._left is not None:
                self._left += 1


class _ItemReporter:
    """Prefixes the replace use case's reports with the item's photo."""

    def __init__(self, reporter: Reporter, photo: str) -> None:
        self._reporter, self._photo = reporter, photo

    def on_stage(self, message: str) -> None:
        self._reporter.on_stage(f"{self._photo}: {message}")

    def on_notice(self, message: str) -> None:
        self._reporter.on_notice(f"{self._photo}: {message}")

    def on_status(self, run: Run, elapsed: float) -> None:
        self._reporter.on_stage(f"{self._photo}: run {run.id} {run.status}")

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
        self.stop = threading.Event()
        self.gate = _Gate(options.max_runs, self.stop)
        self._left_over = 0
        self._lock = threading.Lock()
        self._in_flight: dict[str, str] = {}
        client.sleep = self._sleep

    def in_flight_count(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise KeyboardInterrupt

    def _submit(self, item: Item, inputs: Inputs, options: ReplaceOptions,
                reporter: Reporter) -> tuple[str, Run]:
        """Submit with the shared gate; a 429 pauses every worker's creates, then tries again."""
        for round_ in range(1, _RATE_LIMIT_ROUNDS + 1):
            reserved = []

            def before_create() -> None:
                self.gate.before_create()
                reserved.append(True)

            try:
                return submit(self.client, self.journal, inputs, options, reporter,
                              job=self.plan.job, item=item.photo.key, before_create=before_create)
            except RunflowBgError as exc:
                if reserved and exc.status is not None:
                    self.gate.refund()  # the service answered: no run was created
                if not isinstance(exc, UnavailableError) or exc.status != 429 \
                        or round_ == _RATE_LIMIT_ROUNDS:
                    raise
                self.gate.pause(self.client.retry.delay(round_ + 2))
        raise AssertionError("unreachable")

    def _paid(self, item: Item) -> Outcome:
        """Submit (or resume) the item's run, wait for it and save its outputs."""
        options = item_options(self.options.request, item.photo)
        reporter = _ItemReporter(self.reporter, item.photo.display)
        inputs = local_inputs(item.photo.display, self.plan.scene, self.plan.scene_source, None,
                              reporter)
        client_ref, run = self._submit(item, inputs, options, reporter)
        with self._lock:
            self._in_flight[item.photo.display] = run.id
        try:
            outcome = finish(self.client, self.journal, client_ref, run, inputs, options, reporter)
        except Interrupted:
            raise  # still in flight: reported with the command to resume
        except BaseException:
            self._forget(item)
            raise
        self._forget(item)
        return outcome

    def _forget(self, item: Item) -> None:
        with self._lock:
            self._in_flight.pop(item.photo.display, None)

    def _follow(self, item: Item) -> Outcome:
        """Wait for the leader with the same content, then reuse its outputs."""
        leader = item.leader
        assert leader is not None
        while not leader.finished.wait(0.1):
            if self.stop.is_set():
                raise Interrupted("Interrupted.")
        inputs = Inputs.unread(item.photo.display, self.plan.scene.name)
        done = leader.outcome
        if done is None or done.error is not None or done.run is None:
            raise InputError(f"{item.photo.display} has the same content as {leader.photo.display}, "
                             "whose run did not succeed.", run_id=done.run.id if done and done.run else None)
        options = item_options(self.options.request, item.photo)
        saved = copy_outputs([str(s.path) for s in done.saved], done.run.id, inputs, options,
                             self.reporter)
        return Outcome(inputs, options.prompt, done.client_ref, done.run, saved, cached=True)

    def _unpaid(self, item: Item) -> Outcome:
        """Items that need no run: done, skipped, cached, failed earlier or unreadable."""
        inputs = Inputs.unread(item.photo.display, self.plan.scene.name)
        prompt = self.options.request.prompt
        entry = item.entry
        run = Run(id=entry.run_id, status=SUCCEEDED) if entry and entry.run_id else None
        if item.action is Action.INVALID:
            return Outcome(inputs, prompt, error=item.error)
        if item.action is Action.FAILED:
            failed = Run(id=entry.run_id, status=FAILED) if entry.run_id else None
            error = InputError(f"{item.photo.display} failed in an earlier run "
                               f"({entry.error or 'no details'}).", code="FAILED_EARLIER",
                               hint="Add --retry-failed to submit it again.")
            return Outcome(inputs, prompt, entry.client_ref, failed, error=error)
        if item.action is Action.CACHED:
            options = item_options(self.options.request, item.photo)
            saved = copy_outputs(list(entry.outputs), entry.run_id or "run", inputs, options,
                                 self.reporter)
            return Outcome(inputs, prompt, entry.client_ref, run, saved, cached=True)
        if item.action is Action.DONE:
            from runflow_bg.download import SavedFile

            saved = [SavedFile("", Path(p)) for p in entry.outputs]
            return Outcome(inputs, prompt, entry.client_ref, run, saved, skipped=True)
        return Outcome(inputs, prompt, skipped=True)

    def _process(self, item: Item) -> Outcome:
        if item.action is Action.FOLLOW:
            return self._follow(item)
        if item.action not in SPENDING:
            return self._unpaid(item)
        if self.gate.closed and not (item.entry and item.entry.status == SUBMITTED):
            with self._lock:
                self._left_over += 1
            error = self.gate.closed_by or BudgetReached("--max-cost reached; not submitted.")
            return Outcome(Inputs.unread(item.photo.display, self.plan.scene.name),
                           self.options.request.prompt, error=error)
        return self._paid(item)

    def _work(self, work: queue.Queue) -> None:
        while not self.stop.is_set():
            try:
                item = work.get_nowait()
            except queue.Empty:
                return
            try:
                outcome = self._process(item)
            except Interrupted as exc:
                item.outcome = Outcome(Inputs.unread(item.photo.display, self.plan.scene.name),
                                       self.options.request.prompt, error=exc)
                item.finished.set()
                return
            except RunflowBgError as exc:
                if isinstance(exc, (InsufficientCredit, BudgetReached)):
                    self.gate.close(exc)
                    if isinstance(exc, BudgetReached):
                        with self._lock:
                            self._left_over += 1
                outcome = Outcome(Inputs.unread(item.photo.display, self.plan.scene.name),
                                  self.options.request.prompt, error=exc)
            except Exception as exc:  # one broken item never stops the others
                outcome = Outcome(Inputs.unread(item.photo.display, self.plan.scene.name),
                                  self.options.request.prompt,
                                  error=RunflowBgError(f"{item.photo.display}: internal error "
                                                       f"({type(exc).__name__})."))
            item.outcome = outcome
            item.finished.set()
            self.on_outcome(item, outcome)

    def run(self) -> BatchResult:
        """Process every item; Ctrl-C stops submitting and reports what is in flight."""
        work: queue.Queue = queue.Queue()
        for item in self.plan.items:  # leaders before their followers, by construction
            work.put(item)
        workers = [threading.Thread(target=self._work, args=(work,), daemon=True,
                                    name=f"runflow-bg-batch-{n}")
                   for n in range(max(1, self.options.concurrency))]
        for worker in workers:
            worker.start()
        interrupted = False
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)
        except KeyboardInterrupt:
            interrupted = True
            self.stop.set()
            deadline = time.monotonic() + 3
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))
        outcomes = [item.outcome for item in self.plan.items if item.outcome is not None]
        with self._lock:
            in_flight = sorted(set(self._in_flight.values()))
        return BatchResult(outcomes, self.gate.created, self.gate.created * PRICE_USD,
                           self._left_over, interrupted or self.stop.is_set(), in_flight,
                           self.gate.closed_by)
