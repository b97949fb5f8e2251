"""A batch from what was asked to what became of it, for `runflow-bg batch` and `Runflow.batch`.

`BatchJob.plan` reads and checks every photo, scene and manifest row, the report and results
paths, and what the journal says of earlier runs: locally and for free. Only `run` spends, after
`connect` has read the price Runflow charges (and the balance, for a confirmation).
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, replace as with_changes
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from runflow_bg.choices import (DeliveryChoice, Duration, file_like_warning, is_file_like,
                                resolve_delivery, resolve_request)
from runflow_bg.errors import InputError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from runflow_bg.client import RunflowClient
    from runflow_bg.service.batch import BatchRunner
    from runflow_bg.progress import Reporter
    from runflow_bg.service.batch import BatchResult
    from runflow_bg.service.batch_plan import BatchOptions, Item, Plan
    from runflow_bg.service.results import Outcome
    from runflow_bg.workspace import Workspace

OutcomeCallback = Callable[["Item", "Outcome"], None]


@dataclass(frozen=True)
class BatchRequest:
    """What a batch is asked to do: photos (files, folders, globs) or a manifest, with one scene
    or several; the rest as the options of `runflow-bg batch` of the same names."""

    photos: tuple[str, ...] = ()
    manifest: str | os.PathLike | None = None
    scenes: tuple[str, ...] = ()
    out: str | os.PathLike | None = None
    name: str | None = None
    prompt: str | None = None
    overwrite: bool = False
    timeout: Duration = None
    poll_interval: Duration = None
    callback_url: str | None = None
    metadata: Mapping[str, object] | Iterable[str] | None = None
    use_cache: bool = True
    delivery: DeliveryChoice | None = None
    concurrency: int | None = None
    max_cost: Decimal | str | float | None = None
    retry_failed: bool = False
    skip_bad_rows: bool = False
    include_outputs: bool = False
    shard: str | None = None  # "K/N"
    local: bool = False
    keep_profile: bool = False
    strict_inputs: bool = False
    results: str | os.PathLike | None = None
    report: str | os.PathLike | None = None
    dry_run: bool = False  # plan only: the output folder is not even created


def parse_budget(max_cost: Decimal | str | float | None) -> Decimal | None:
    """`--max-cost`: an amount in USD (`10`, `$10`, `2.5`), or None for no cap."""
    if max_cost is None:
        return None
    try:
        budget = Decimal(str(max_cost).lstrip("$"))
    except InvalidOperation:
        budget = Decimal(-1)
    if not budget.is_finite() or budget < 0:
        raise UsageError(f"Invalid --max-cost {max_cost!r}.",
                         hint="Give an amount in USD, e.g. --max-cost 10.")
    return budget


def check_writable(path: Path, option: str) -> None:
    """The report (or results file) can be written: refused before anything is spent, not after."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder.", hint="Name a file.")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: the folder {folder} does not exist or is not "
                         "writable.", hint="Name a file in a writable folder.")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path} is not writable.", hint="Name another file.")


def outcome_record(item: Item, outcome: Outcome, signed_urls: bool = False) -> dict:
    """An item's outcome as JSON; a manifest row's adds its number and its other columns."""
    from runflow_bg.service.manifest import extra_columns

    data = outcome.to_json(signed_urls)
    if item.photo.row:
        data.update({"row": item.photo.row, "columns": extra_columns(item.photo)})
    return data


class BatchJob:
    """A planned batch, holding the journal (and, once connected, a client) until closed."""

    def __init__(self, workspace: Workspace, request: BatchRequest, plan: Plan,
                 options: BatchOptions, journal, reporter: Reporter, excluded: int,
                 held: ExitStack) -> None:
        self.workspace, self.request, self.plan, self.options = workspace, request, plan, options
        self.excluded = excluded  # earlier outputs left out of folders and globs
        self._journal, self._reporter = journal, reporter
        self._held = held  # the journal and the URL reader, closed with the job
        self._client: RunflowClient | None = None
        self._runner: BatchRunner | None = None

    # -- planning: free --------------------------------------------------------------------

    @classmethod
    def plan_for(cls, workspace: Workspace, request: BatchRequest, reporter: Reporter) -> BatchJob:
        """Check everything and decide what each item needs; raises before anything is spent.
        Inputs by URL are read while the job is open (planning checks the bytes runs send)."""
        held = ExitStack()
        held.enter_context(workspace.url_inputs(refetch=not request.use_cache))
        try:
            return cls._plan(workspace, request, reporter, held)
        except BaseException:
            held.close()
            raise

    @classmethod
    def _plan(cls, workspace: Workspace, request: BatchRequest, reporter: Reporter,
              held: ExitStack) -> BatchJob:
        from runflow_bg.service import collect, manifest as manifest_rows
        from runflow_bg.service.batch_plan import BatchOptions, plan_batch
        from runflow_bg.service.inputs import check_output_dir, load_image

        settings = workspace.settings
        manifest = Path(request.manifest) if request.manifest is not None else None
        if bool(request.photos) == bool(manifest):
            raise UsageError("Give photos or --manifest, not both nor neither.")
        rows = manifest_rows.read_rows(manifest) if manifest is not None else []
        delivery = resolve_delivery(settings, request.delivery, workspace.warn)
        options = resolve_request(
            settings, out=request.out, name=request.name, timeout=request.timeout,
            poll_interval=request.poll_interval, metadata=request.metadata,
            callback_url=request.callback_url, prompt=request.prompt, overwrite=request.overwrite,
            use_cache=request.use_cache, delivery=delivery,
            name_columns=frozenset(manifest_rows.column_names(rows)))
        scene_names = collect.collect_scenes(list(request.scenes))
        options = with_changes(options, name_template=collect.matrix_template(
            options.name_template, len(scene_names),
            chosen=bool(request.name) or settings.setting("name") is not None))
        local = request.local
        batch_options = BatchOptions(
            options, concurrency=settings.concurrency(request.concurrency),
            budget=None if local else parse_budget(request.max_cost),
            retry_failed=request.retry_failed, local=local, keep_profile=request.keep_profile,
            strict_inputs=request.strict_inputs, price=workspace.price(local=local).amount)
        shard = collect.parse_shard(request.shard)
        if not scene_names and manifest is None:
            raise UsageError("Missing option '--scene'.")
        scenes = {each: load_image(each, None, reporter, keep_profile=request.keep_profile)
                  for each in scene_names}  # each read and checked once, however many photos
        scene_image, scene_source = (scenes[scene_names[0]] if len(scene_names) == 1
                                     else (None, None))
        if is_file_like(options.out_dir):
            workspace.warn(file_like_warning(options.out_dir))
        check_output_dir(options.out_dir, create=not request.dry_run)
        for path, option in ((request.report, "--report"), (request.results, "--results")):
            if path is not None:
                check_writable(Path(path), option)
        if request.results is not None:
            from runflow_bg.service.results_file import check_format

            check_format(Path(request.results))
        found, excluded = [], 0
        if manifest is not None:
            found = _manifest_items(manifest, rows, scene_names, scenes, options.name_template,
                                    reporter, request)
        journal = workspace.open_journal(local=local, shard=shard)
        held.callback(journal.close)
        if manifest is None:
            found = collect.collect_photos(list(request.photos), Path.cwd())
            if not request.include_outputs:
                found, excluded = collect.drop_earlier_outputs(
                    found, journal.recorded_outputs(), options.out_dir, options.name_template,
                    [scenes[each][0].stem for each in scene_names])
            found = collect.pair_with_scenes(found, scene_names)
        plan = plan_batch(collect.take_shard(found, shard), scene_image, scene_source,
                          journal, batch_options, scenes)
        job = cls(workspace, request, plan, batch_options, journal, reporter, excluded, held)
        job.announce()
        return job

    def announce(self) -> None:
        """What the plan holds, in one line, then each backdrop warning."""
        from runflow_bg.service.batch_plan import Action

        plan = self.plan
        parts = [plan.describe_matrix() or f"{len(plan.items)} photos",
                 f"{plan.runs_to_create} to submit"]
        if self.excluded:
            parts.append(f"{self.excluded} excluded (earlier outputs; --include-outputs takes "
                         "them)")
        warned = plan.warnings()
        if warned:
            parts.append(f"{len(warned)} with backdrop warnings")
        for action, label in ((Action.RESUME, "to resume"), (Action.DONE, "done before"),
                              (Action.CACHED, "cached"), (Action.FOLLOW, "duplicates"),
                              (Action.SKIP, "skipped (output exists)"),
                              (Action.FAILED, "failed before"), (Action.INVALID, "unreadable")):
            if plan.count(action):
                parts.append(f"{plan.count(action)} {label}")
        self._reporter.on_stage(", ".join(parts))
        for warning in warned:
            self._reporter.on_notice(warning)

    def estimate(self) -> None:
        """The runs to be created and what they cost at the price Runflow reports."""
        plan, options = self.plan, self.options
        if options.local:
            self._reporter.on_stage(f"{plan.runs_to_create} local runs, on this machine and free")
            return
        runs = plan.affordable_runs(options.budget)
        cap = ""
        if runs < plan.runs_to_create:
            cap = f" (capped by --max-cost; {plan.runs_to_create - runs} left for later)"
        self._reporter.on_stage(
            f"{runs} runs will be created, estimated cost "
            f"${plan.estimated_cost(options.budget):.2f} at ${plan.price:.2f} a run{cap}")

    # -- running: spends -------------------------------------------------------------------

    def connect(self) -> Decimal | None:
        """Open the client, take the price Runflow charges now, and say what the plan costs;
        returns the account's balance when runs are to be paid for (None if unknown)."""
        if self._client is None:
            self._client = self._held.enter_context(self.workspace.open_client(
                local=self.options.local, connections=self.options.concurrency))
        paying = bool(self.plan.runs_to_create) and not self.options.local
        if paying:
            self.plan.price = self.workspace.price(self._client).amount
            self.options = with_changes(self.options, price=self.plan.price)
        self.estimate()
        if not paying:
            return None
        balance = self._client.balance()
        if balance is not None:
            self._reporter.on_stage(f"balance ${balance:.2f}")
        return balance

    def in_flight_count(self) -> int:
        return self._runner.in_flight_count() if self._runner is not None else 0

    def run(self, *, reporter: Reporter | None = None,
            on_outcome: OutcomeCallback | None = None) -> BatchResult:
        """Carry the plan out, then write the results file and the report if asked for."""
        from runflow_bg.service.batch import BatchRunner

        if self._client is None:
            self.connect()
        assert self._client is not None
        records: list[dict] = []

        def record(item: Item, outcome: Outcome) -> None:
            records.append(outcome_record(item, outcome))
            if on_outcome is not None:
                on_outcome(item, outcome)

        runner = self._runner = BatchRunner(self.plan, self._client, self._journal, self.options,
                                            reporter or self._reporter, on_outcome=record)
        result = runner.run()
        self._write_files(records)
        return result

    def _write_files(self, records: list[dict]) -> None:
        request = self.request
        if request.results is not None:
            from runflow_bg.service.results_file import result_row, write_results

            write_results(Path(request.results),
                          [result_row(item.photo, item.outcome.to_json())
                           for item in self.plan.items if item.outcome is not None])
        if request.report is not None:
            from runflow_bg.presets import PRESETS
            from runflow_bg.report import write_report

            delivery = self.options.request.delivery
            preset = delivery.preset if delivery else None
            write_report(Path(request.report), records,
                         preset=PRESETS.get(preset) if preset else None)

    def close(self) -> None:
        self._client = None
        self._held.close()

    def __enter__(self) -> BatchJob:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _manifest_items(manifest: Path, rows: list, scene_names: list[str], scenes: dict,
                    template: str, reporter: Reporter, request: BatchRequest) -> list:
    """The manifest's rows as batch items (a row without a scene, once per scene), every one
    checked before anything is spent."""
    from runflow_bg.service.collect import pair_with_scenes
    from runflow_bg.service.manifest import check_rows, count_rows, from_manifest, refuse_bad_rows

    read = pair_with_scenes(from_manifest(rows, failed_only=request.retry_failed), scene_names)
    default = scene_names[0] if len(scene_names) == 1 else None
    good, bad = check_rows(read, scenes, default, template, reporter, request.keep_profile)
    if bad and not request.skip_bad_rows:
        refuse_bad_rows(bad, manifest)
    if bad:
        reporter.on_notice(f"skipped {count_rows(bad)} bad rows: " + "; ".join(map(str, bad)))
    return good
