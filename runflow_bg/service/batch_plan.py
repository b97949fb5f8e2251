"""Planning a batch, locally and for free: what each photo needs before anything is spent.

Each photo is read, checked and hashed (once, however many scenes it pairs with), and the
journal says what became of each item in earlier runs of the same command: done, to resume,
failed, or new. Items with the same content as an earlier one of the batch follow it instead of
paying again.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, replace as with_changes
from decimal import Decimal
from enum import Enum
from pathlib import Path

from runflow_bg.backdrop import backdrop_problem
from runflow_bg.errors import InputError, RunflowBgError, UnavailableError, UsageError
from runflow_bg.images import InputFile, PreparedImage, read_input
from runflow_bg.journal import FAILED, IN_FLIGHT, SUBMITTED, SUCCEEDED, Entry, Journal
from runflow_bg.naming import OutputFolder, bind_fields, check_replaceable, fields_of, render
from runflow_bg.service.collect import Photo
from runflow_bg.service.inputs import local_source, request_hash
from runflow_bg.pricing import PUBLISHED_PRICE
from runflow_bg.service.replace import ReplaceOptions
from runflow_bg.service.results import Outcome


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
    warning: str | None = None  # its backdrop may spoil the result
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class BatchOptions:
    request: ReplaceOptions
    concurrency: int = 4
    budget: Decimal | None = None  # --max-cost
    retry_failed: bool = False
    local: bool = False  # the built-in emulator: nothing is paid
    keep_profile: bool = False  # --keep-profile
    strict_inputs: bool = False  # --strict-inputs: a backdrop warning refuses the batch
    price: Decimal = PUBLISHED_PRICE  # a run, as Runflow reports it (pricing.py)


@dataclass
class Plan:
    price: Decimal
    job: str
    scene: PreparedImage | None  # --scene; manifest rows may name their own
    scene_source: InputFile | None
    items: list[Item]
    scenes: dict[str, tuple[PreparedImage, InputFile]] = field(default_factory=dict)

    def scene_of(self, photo: Photo) -> tuple[PreparedImage, InputFile]:
        if photo.scene:
            return self.scenes[photo.scene]
        assert self.scene is not None and self.scene_source is not None
        return self.scene, self.scene_source

    def count(self, *actions: Action) -> int:
        return sum(1 for item in self.items if item.action in actions)

    def matrix(self) -> tuple[int, int]:
        """How many photos and how many scenes the items pair."""
        photos = {item.photo.display for item in self.items}
        scenes = {self.scene_of(item.photo)[0].name for item in self.items}
        return len(photos), len(scenes)

    def describe_matrix(self) -> str | None:
        """"12 photos x 3 scenes = 36 requests" when the items pair photos with several scenes."""
        photos, scenes = self.matrix()
        if scenes < 2:
            return None
        counted = f"{photos} photo{'s' * (photos != 1)}"
        if photos * scenes == len(self.items):
            return f"{counted} x {scenes} scenes = {len(self.items)} requests"
        return f"{len(self.items)} requests ({counted}, {scenes} scenes)"

    def warnings(self, *actions: Action) -> list[str]:
        """The backdrop warnings of the items (of those `actions`), once per photo."""
        return list(dict.fromkeys(item.warning for item in self.items if item.warning
                                  and (not actions or item.action in actions)))

    @property
    def runs_to_create(self) -> int:
        """Runs this batch may pay for: new ones, and resumed ones whose create is unconfirmed."""
        return self.count(Action.SUBMIT) + sum(
            1 for i in self.items if i.action is Action.RESUME and i.entry and i.entry.status != SUBMITTED)

    def affordable_runs(self, budget: Decimal | None) -> int:
        """How many of the runs to create fit in the budget (all of them without one)."""
        if budget is None or not self.price:
            return self.runs_to_create
        return min(self.runs_to_create, int(budget // self.price))

    def estimated_cost(self, budget: Decimal | None = None) -> Decimal:
        return self.affordable_runs(budget) * self.price


def job_key(options: ReplaceOptions) -> str:
    """Identifies "the same command": the same output folder and naming."""
    text = f"{options.out_dir.resolve()}\0{options.name_template}"
    return "batch:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def item_options(options: ReplaceOptions, photo: Photo) -> ReplaceOptions:
    """The item's options: its outputs go to the mirrored folder under the output folder, and a
    manifest row's own prompt, name and metadata win over the command line's, and its {row}
    and columns are filled into the name."""
    metadata = {**(options.metadata or {}), **dict(photo.metadata)} or None
    template = bind_fields(photo.name or options.name_template, photo.fields)
    return with_changes(options, out_dir=options.out_dir / photo.folder,
                        prompt=photo.prompt or options.prompt, name_template=template,
                        metadata=metadata)


def _check_photo(photo: Photo) -> tuple[str, str | None]:
    """Read the photo, check that it decodes as an image and look at its backdrop on a small
    copy (decoded small: see reduced.py); returns the digest of its bytes and what about the
    backdrop may spoil the result."""
    from PIL import Image, UnidentifiedImageError

    from runflow_bg.reduced import reduced_copy

    source = read_input(photo.source)
    try:
        with source.open() as stream, Image.open(stream) as image:
            small = reduced_copy(image, 256)
        small.thumbnail((256, 256))
        problem = backdrop_problem(small)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InputError(f"{photo.display}: not an image, or a damaged one.",
                         hint="Use a PNG, JPEG or WebP image.") from None
    return source.digest, problem


def _check_once(photo: Photo, checked: dict) -> tuple[str, str | None]:
    """`_check_photo`, once per file however many scenes (or rows) it pairs with."""
    if photo.source not in checked:
        try:
            checked[photo.source] = _check_photo(photo)
        except (InputError, UnavailableError) as exc:
            checked[photo.source] = exc
    result = checked[photo.source]
    if isinstance(result, RunflowBgError):
        raise result
    return result


def _plan_item(photo: Photo, request: ReplaceOptions, scene: PreparedImage, scene_digest: str,
               checked: dict, latest: dict[str, Entry], outputs: OutputFolder,
               options: BatchOptions) -> Item:
    try:
        photo_digest, problem = _check_once(photo, checked)
    except (InputError, UnavailableError) as exc:  # a URL's host may be down: this item only
        return Item(photo, Action.INVALID, error=exc)
    content_hash = request_hash(local_source(photo_digest, scene_digest, options.keep_profile),
                                request.prompt)
    item = _decide(photo, scene, content_hash, latest, outputs, options, request)
    item.warning = problem and f"{photo.display}: {problem}"
    return item


def _decide(photo: Photo, scene: PreparedImage, content_hash: str, latest: dict[str, Entry],
            outputs: OutputFolder, options: BatchOptions, request: ReplaceOptions) -> Item:
    """What the photo needs (`request`: its options), given what the journal (`latest`: the
    latest row of each item of this command) and the output folder say. An item that may reuse
    an identical request's files is marked CACHED by `_reuse_cached`, once all are decided."""
    entry = latest.get(photo.key)
    if entry is not None and entry.content_hash == content_hash:
        if entry.status == SUCCEEDED and all(Path(p).is_file() for p in entry.outputs):
            return Item(photo, Action.DONE, content_hash, entry)
        if entry.status in IN_FLIGHT:
            return Item(photo, Action.RESUME, content_hash, entry)
        if entry.status == FAILED and not options.retry_failed:
            return Item(photo, Action.FAILED, content_hash, entry)
    stem = photo.path.stem
    try:
        outputs.check(str(photo.folder / render(request.name_template, stem=stem, scene=scene.stem,
                                                 index=0, run_id="run", ext="webp")))
    except InputError as exc:
        return Item(photo, Action.INVALID, error=exc)
    existing = outputs.existing_first_output(str(photo.folder), request.name_template, stem=stem,
                                             scene=scene.stem)
    if existing is not None and not request.overwrite:
        return Item(photo, Action.SKIP, content_hash, entry)
    if existing is not None:
        try:
            check_replaceable(existing)
        except InputError as exc:
            return Item(photo, Action.INVALID, error=exc)
    return Item(photo, Action.SUBMIT, content_hash, entry)


def _reuse_cached(items: list[Item], requests: list[ReplaceOptions], journal: Journal) -> None:
    """Items to submit whose identical request succeeded before (and whose files are still
    there) reuse those files: the journal is asked about all of them at once."""
    wanted = [item for item, request in zip(items, requests)
              if item.action is Action.SUBMIT and request.use_cache]
    succeeded = journal.succeeded_with_hashes({item.content_hash for item in wanted})
    for item in wanted:
        cached = succeeded.get(item.content_hash)
        if cached is not None and all(Path(p).is_file() for p in cached.outputs):
            item.action, item.entry = Action.CACHED, cached


def _item_requests(options: ReplaceOptions, photos: list[Photo]) -> list[ReplaceOptions]:
    """`item_options` of each photo, made once for each distinct folder, prompt, name and
    metadata: the photos of a folder share theirs."""
    made: dict[tuple, ReplaceOptions] = {}
    requests = []
    for photo in photos:
        template = bind_fields(photo.name or options.name_template, photo.fields)
        key = (photo.folder, photo.prompt, template, photo.metadata)
        if key not in made:
            made[key] = item_options(options, photo)
        requests.append(made[key])
    return requests


def _refuse_shared_outputs(photos: list[Photo], requests: list[ReplaceOptions],
                           plan: Plan) -> None:
    """Two items whose --name gives the same file would pay twice for one file: refuse first."""
    seen: dict[str, Photo] = {}
    for photo, options in zip(photos, requests):
        name = render(options.name_template, stem=photo.path.stem,
                      scene=plan.scene_of(photo)[0].stem, index=0, run_id="run", ext="ext")
        key = str(options.out_dir / name)
        other = seen.setdefault(key, photo)
        if other is not photo:
            hint = "Put {stem} in --name, or give them different folders."
            if other.display == photo.display:  # one photo in two scenes
                hint = ("Put {scene} in --name." if "scene" not in fields_of(options.name_template)
                        else "Give the scenes different file names: their stems fill {scene}.")
            raise UsageError(f"{other.label} and {photo.label} would both be saved as "
                             f"{key.removesuffix('.ext')}.*.", hint=hint)


def plan_batch(photos: list[Photo], scene: PreparedImage | None, scene_source: InputFile | None,
               journal: Journal, options: BatchOptions, scenes: dict | None = None) -> Plan:
    """Decide, locally and for free, what each item needs; `scene` is the only --scene (None with
    several), `scenes` the others, by the name the items' own `scene` gives."""
    plan = Plan(options.price, job_key(options.request), scene, scene_source, [], scenes or {})
    requests = _item_requests(options.request, photos)
    _refuse_shared_outputs(photos, requests, plan)
    checked: dict = {}
    latest = journal.latest_by_item(plan.job)
    outputs = OutputFolder(options.request.out_dir)
    for photo, request in zip(photos, requests):
        prepared, source = plan.scene_of(photo)
        plan.items.append(_plan_item(photo, request, prepared, source.digest, checked, latest,
                                     outputs, options))
    _reuse_cached(plan.items, requests, journal)
    items = plan.items
    warned = plan.warnings(*SPENDING)
    if warned and options.strict_inputs:
        raise InputError(f"{len(warned)} photos may come back useless: " + "; ".join(warned[:5])
                         + ("; ..." if len(warned) > 5 else "") + ". Nothing was submitted.",
                         hint="Photograph products on plain white, or leave out --strict-inputs "
                              "to be warned only.")
    leaders: dict[str, Item] = {}
    for item in items:
        if item.action in (Action.SUBMIT, Action.RESUME):
            leader = leaders.setdefault(item.content_hash, item)
            if leader is not item and item.action is Action.SUBMIT:
                item.action, item.leader = Action.FOLLOW, leader
    return plan
