"""The Python API: what the command line does, for pipelines written in Python.

    from runflow_bg import Runflow

    rf = Runflow()                      # the key as the CLI finds it (RUNFLOW_API_KEY, ...)
    done = rf.replace("photo.png", "scene.png", out="out")
    print(done.paths, done.run.cost)

Every method runs the same use cases as the matching command, with the same checks before
anything is paid for, the same journal (a request is paid once, across processes and across
the CLI and Python), the same cache and the same settings. Failures raise the tool's own
exceptions (`runflow_bg.errors`), each with the exit code the CLI would end with; progress
reaches an `on_progress` callback as `Progress` events.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Union, cast

from runflow_bg.choices import (DeliveryChoice, Duration, file_like_warning, is_file_like,
                                resolve_delivery, resolve_request)
from runflow_bg.clock import Clock
from runflow_bg.errors import UsageError
from runflow_bg.workspace import Workspace

if TYPE_CHECKING:
    from runflow_bg.batch_job import BatchJob, OutcomeCallback
    from runflow_bg.models import LogLine, Run
    from runflow_bg.service.batch import BatchResult
    from runflow_bg.progress import Reporter
    from runflow_bg.service.results import Outcome


@dataclass(frozen=True)
class Progress:
    """One thing that happened: `kind` is stage, notice, status, bytes or saved."""

    kind: str
    message: str = ""
    run: Run | None = None  # status: the run as last read
    elapsed: float = 0.0  # status: seconds waited so far
    done: int = 0  # bytes: transferred so far, of `total`
    total: int = 0
    path: str | None = None  # saved: the file now in place


ProgressCallback = Callable[[Progress], None]
Listener = Union[ProgressCallback, "Reporter", None]


class _CallbackReporter:
    """The use cases' reporter, turned into `Progress` events for a callback."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback

    def _emit(self, progress: Progress) -> None:
        if self._callback is not None:
            self._callback(progress)

    def on_stage(self, message: str) -> None:
        self._emit(Progress("stage", message))

    def on_notice(self, message: str) -> None:
        self._emit(Progress("notice", message))

    def on_status(self, run: Run, elapsed: float) -> None:
        self._emit(Progress("status", f"run {run.id} {run.status}", run=run, elapsed=elapsed))

    def on_bytes(self, label: str, done: int, total: int) -> None:
        self._emit(Progress("bytes", label, done=done, total=total))

    def on_saved(self, path: str) -> None:
        self._emit(Progress("saved", path, path=path))


class Runflow(Workspace):
    """Runflow's background-replace model, as this tool runs it.

    `api_key`, `base_url` and `home` (the folder of the journal, cache and config) default as
    for the CLI: the environment, then the config and credentials files. `environ` replaces
    `os.environ` as the source of settings. `on_progress` hears of every step, unless a call
    names its own.
    """

    on_progress: Listener = None

    def __init__(self, api_key: str | None = None, *, base_url: str | None = None,
                 home: str | os.PathLike | None = None,
                 environ: Mapping[str, str] | None = None,
                 on_progress: Listener = None, clock: Clock | None = None) -> None:
        from runflow_bg.config import HOME_ENV, Settings

        environ = dict(os.environ if environ is None else environ)
        if home is not None:
            environ[HOME_ENV] = os.fspath(home)
        self.on_progress = on_progress
        notices = self._reporter(None)
        super().__init__(Settings(environ, api_key_flag=api_key, base_url_flag=base_url), clock,
                         notice=notices.on_notice, warn=notices.on_notice)

    def _reporter(self, listener: Listener) -> Reporter:
        listener = listener if listener is not None else self.on_progress
        if hasattr(listener, "on_stage"):
            return cast("Reporter", listener)  # already a reporter (the CLI's terminal)
        return _CallbackReporter(cast("ProgressCallback | None", listener))

    # -- one photo -------------------------------------------------------------------------

    def replace(self, photo: str | os.PathLike | None = None,
                scene: str | os.PathLike | None = None, *,
                zip_url: str | None = None, image: str | None = None,
                reference: str | None = None, out: str | os.PathLike | None = None,
                prompt: str | None = None, name: str | None = None, overwrite: bool = False,
                wait: bool = True, timeout: Duration = None, poll_interval: Duration = None,
                callback_url: str | None = None,
                metadata: Mapping[str, object] | Iterable[str] | None = None,
                use_cache: bool = True, local: bool = False, keep_profile: bool = False,
                strict_inputs: bool = False, delivery: DeliveryChoice | None = None,
                stdin: BinaryIO | None = None, on_progress: Listener = None) -> Outcome:
        """Replace the background of `photo` with `scene` (or of the members `image` and
        `reference` of a zip already online at `zip_url`); returns the finished request, its
        files in `.paths`. Raises RunFailed, WaitTimeout, InputError, ... like the CLI's exits.

        With `wait=False` it returns once the run is submitted (`.run.id` to pick it up). An
        identical request that succeeded before is reused unless `use_cache=False`; `local`
        runs on the built-in emulator, for free.
        """
        from runflow_bg.service.replace import replace as run_replace

        reporter = self._reporter(on_progress)
        with self.url_inputs(refetch=not use_cache):
            inputs, options = self._replace_request(
                reporter, photo, scene, zip_url=zip_url, image=image, reference=reference,
                keep_profile=keep_profile, strict_inputs=strict_inputs, stdin=stdin, out=out,
                prompt=prompt, name=name, overwrite=overwrite, wait=wait, timeout=timeout,
                poll_interval=poll_interval, callback_url=callback_url, metadata=metadata,
                use_cache=use_cache, delivery=delivery)
        with self.open_session(local=local) as session:
            return run_replace(session.client, session.journal, inputs, options, reporter)

    def preview_replace(self, photo: str | os.PathLike | None = None,
                        scene: str | os.PathLike | None = None, *, local: bool = False,
                        on_progress: Listener = None, **request) -> dict:
        """What `replace` with the same arguments would send and cost, checked but not sent
        (the CLI's --dry-run): nothing goes over the network."""
        from runflow_bg.service.replace import check_outputs, dry_run_summary

        reporter = self._reporter(on_progress)
        with self.url_inputs(refetch=not request.get("use_cache", True)):
            inputs, options = self._replace_request(reporter, photo, scene, create_out=False,
                                                    **request)
        journal = self.open_journal(local=local)
        try:
            check_outputs(journal, inputs, options)
        finally:
            journal.close()
        return dry_run_summary(inputs, options, price=self.price(local=local).amount, local=local)

    def _replace_request(self, reporter, photo, scene, *, zip_url=None, image=None,
                         reference=None, keep_profile=False, strict_inputs=False, stdin=None,
                         create_out: bool = True, delivery=None, **request):
        """The checked inputs and the resolved options of one request, before anything is paid."""
        from runflow_bg.service import inputs as checks

        options = resolve_request(self.settings, **request,
                                  delivery=resolve_delivery(self.settings, delivery, self.warn))
        if zip_url:
            if photo or scene:
                raise UsageError("Give either PHOTO SCENE or --zip-url, not both.")
            inputs = checks.zip_url_inputs(zip_url, image, reference)
        elif not photo or not scene:
            raise UsageError("Missing PHOTO or SCENE.",
                             hint="Usage: runflow-bg replace PHOTO SCENE [options].")
        else:
            inputs = checks.replace_inputs(os.fspath(photo), os.fspath(scene), stdin, reporter,
                                           keep_profile=keep_profile, strict=strict_inputs)
        if is_file_like(options.out_dir):
            self.warn(file_like_warning(options.out_dir))
        checks.check_output_dir(options.out_dir, create=create_out)
        return inputs, options

    # -- many photos -----------------------------------------------------------------------

    def plan_batch(self, photos: Iterable[str | os.PathLike] = (), *,
                   scenes: str | os.PathLike | Iterable[str | os.PathLike] = (),
                   on_progress: Listener = None, **options) -> BatchJob:
        """Check every input and decide what each item needs, for free (the CLI's --dry-run):
        a `BatchJob` whose `.plan` says what would be paid for, and whose `.run()` pays.
        Use it in a `with` block, which closes the journal it holds.

        `photos` are files, folders or globs (or give `manifest=`); `scenes` one scene or
        several (every photo runs with every scene); `options` are the fields of
        `runflow_bg.batch_job.BatchRequest`, named as the options of `runflow-bg batch`.
        """
        from runflow_bg.batch_job import BatchJob, BatchRequest

        if isinstance(scenes, (str, os.PathLike)):
            scenes = [scenes]
        request = BatchRequest(photos=tuple(str(photo) for photo in photos),
                               scenes=tuple(str(scene) for scene in scenes), **options)
        return BatchJob.plan_for(self, request, self._reporter(on_progress))

    def batch(self, photos: Iterable[str | os.PathLike] = (), *,
              scenes: str | os.PathLike | Iterable[str | os.PathLike] = (),
              on_progress: Listener = None, on_outcome: OutcomeCallback | None = None,
              **options) -> BatchResult:
        """Plan and run a batch: each request paid at most once (across processes too), at
        most `concurrency` in flight, never past `max_cost`. Problems found while planning raise
        before anything is spent; each item's own failure is in its outcome, and
        `result.raise_for_failure()` raises what the CLI would exit with. `on_outcome(item,
        outcome)` hears of each item as it finishes."""
        with self.plan_batch(photos, scenes=scenes, on_progress=on_progress, **options) as job:
            return job.run(on_outcome=on_outcome)

    # -- runs submitted earlier ------------------------------------------------------------

    def get_run(self, run_id: str) -> Outcome:
        """A run as Runflow shows it now, with what this machine recorded about it."""
        from runflow_bg.service.runs import describe

        with self.open_session() as session:
            return describe(session.client, session.journal, run_id)

    def list_runs(self, *, limit: int = 20, status: str | None = None) -> list[Outcome]:
        """The account's most recent runs, newest first, optionally of one status."""
        from runflow_bg.service.runs import list_runs

        with self.open_session() as session:
            return list_runs(session.client, session.journal, limit=limit, status=status)

    def run_logs(self, run_id: str) -> list[LogLine]:
        """A run's log lines, oldest first."""
        with self.open_session() as session:
            return session.client.run_logs(run_id)

    def fetch(self, run_ids: Iterable[str], *, wait: bool = True,
              out: str | os.PathLike | None = None, name: str | None = None,
              overwrite: bool = False, timeout: Duration = None, poll_interval: Duration = None,
              delivery: DeliveryChoice | None = None,
              on_progress: Listener = None) -> Iterator[Outcome]:
        """Each run's outcome once it is settled: waited for (or, without `wait`, required to
        be finished) and its outputs saved. One run's failure is its outcome's `.error` and does
        not stop the others; a refused key ends the iteration."""
        from runflow_bg.naming import check_template
        from runflow_bg.service.runs import FetchOptions, fetch_runs

        common = resolve_request(self.settings, out=out, timeout=timeout if wait else None,
                                 poll_interval=poll_interval if wait else None,
                                 overwrite=overwrite, wait=wait)
        options = FetchOptions(
            out_dir=common.out_dir, name_template=check_template(name) if name else None,
            default_template=common.name_template, overwrite=overwrite, wait=wait,
            timeout=common.timeout, poll=common.poll,
            delivery=resolve_delivery(self.settings, delivery, self.warn))
        if is_file_like(options.out_dir):
            self.warn(file_like_warning(options.out_dir))
        reporter = self._reporter(on_progress)
        with self.open_session() as session:
            yield from fetch_runs(session.client, session.journal, list(run_ids), options,
                                  reporter)

    def wait(self, run_id: str, **options) -> Outcome:
        """Wait for one run and save its outputs; raises its failure (RunFailed, WaitTimeout...).
        Takes the keyword arguments of `fetch`."""
        return _settled(self.fetch([run_id], wait=True, **options))

    def download(self, run_id: str, **options) -> Outcome:
        """Save the outputs of one finished run; raises if it failed or is not finished.
        Takes the keyword arguments of `fetch`."""
        return _settled(self.fetch([run_id], wait=False, **options))


def _settled(outcomes: Iterator[Outcome]) -> Outcome:
    (outcome,) = list(outcomes)
    if outcome.error is not None:
        raise outcome.error
    return outcome
