"""Catalogues: one request per manifest row (CSV or JSONL), each row checked before anything is
spent, so a typo in row 800 is found before row 1 is paid for.

A row names its `photo` and may choose its own `scene`, `prompt`, `name` template, `out`
subfolder and `metadata.KEY` values; any other column is carried into the results. A row without
a scene runs with the --scene, or with each of several (one item per scene).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runflow_bg.errors import InputError, RunflowBgError, UsageError
from runflow_bg.images import InputFile, PreparedImage
from runflow_bg.naming import bind_fields, check_template, render
from runflow_bg.service.collect import Photo, url_photo
from runflow_bg.service.inputs import load_image
from runflow_bg.service.results_file import RESULT_COLUMNS, is_failed
from runflow_bg.urls import is_url

OWN_COLUMNS = frozenset({"photo", "scene", "prompt", "name", "out"})
METADATA_PREFIX = "metadata."
Scenes = dict[str, tuple[PreparedImage, InputFile]]


@dataclass(frozen=True)
class BadRow:
    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(row number, values) for each row: a CSV's header is row 1, a JSONL's first line row 1."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read --manifest {path}: {exc}.") from None
    if path.suffix.lower() == ".jsonl":
        return [(number, _json_row(line)) for number, line in enumerate(text.splitlines(), 1)
                if line.strip()]
    if path.suffix.lower() != ".csv":
        raise UsageError(f"--manifest {path}: expected a .csv or .jsonl file.")
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # one column, or too little text to tell
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    return [(number, {k: v for k, v in row.items() if k is not None})
            for number, row in enumerate(reader, 2)]


def extra_columns(photo: Photo) -> dict:
    """The row's columns that are not part of its request: echoed into the results."""
    return {key: value for key, value in photo.columns
            if key not in OWN_COLUMNS and not key.startswith(METADATA_PREFIX)}


def _json_row(line: str) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        return {}  # reported as a row without a photo
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def column_names(rows: list[tuple[int, dict]]) -> set[str]:
    """The manifest's columns, fields for --name."""
    return {key for _, values in rows for key in values if key not in RESULT_COLUMNS}


def from_manifest(rows: list[tuple[int, dict]], failed_only: bool) -> list[Photo]:
    """The manifest's rows as batch items; of an earlier results file, with `failed_only`, only
    the rows that failed."""
    if failed_only and any("status" in values for _, values in rows):
        rows = [(number, values) for number, values in rows if is_failed(values)]
    return [to_photo(number, values) for number, values in rows]


def to_photo(number: int, values: dict) -> Photo:
    """The row as a batch item; blank cells fall back to the command-line options; the columns
    of an earlier results file are left out."""
    values = {key: value for key, value in values.items() if key not in RESULT_COLUMNS}
    own = {key: _text(values.get(key)) or None for key in OWN_COLUMNS}
    metadata = tuple((key[len(METADATA_PREFIX):], _text(value)) for key, value in values.items()
                     if key.startswith(METADATA_PREFIX) and _text(value))
    columns = tuple((key, _text(value)) for key, value in values.items())
    fields = dict(row=number, scene=own["scene"], prompt=own["prompt"], name=own["name"],
                  metadata=metadata, columns=columns)
    folder = PurePosixPath(own["out"] or "")
    if is_url(own["photo"] or ""):
        return url_photo(own["photo"], folder, **fields)
    path = Path(own["photo"] or "")
    return Photo(path, os.path.normpath(str(path)), folder, named=True, **fields)


def check_rows(photos: list[Photo], scenes: Scenes, default_scene: str | None, template: str,
               reporter, keep_profile: bool) -> tuple[list[Photo], list[BadRow]]:
    """Split the rows (a row paired with several scenes, each pair) into good and bad, reading
    every photo once and every scene (free, local); `scenes` gains each scene the good rows use.
    A reason is given once for a row, however many of its pairs it spoils."""
    good, bad, writes, photos_read = [], {}, {}, {}
    for photo in photos:
        try:
            scene = _check_row(photo, scenes, default_scene, photos_read, reporter, keep_profile)
            own = bind_fields(photo.name or template, photo.fields)
            target = str(photo.folder / render(own, stem=photo.path.stem, scene=scene.stem,
                                               index=0, run_id="run", ext="ext"))
        except RunflowBgError as exc:
            bad.setdefault((photo.row, exc.message), None)
            continue
        other = writes.setdefault(target, photo)
        if other is not photo:
            pair = f" with {other.scene}" if other.row == photo.row else ""
            bad.setdefault((photo.row, f"writes {target.removesuffix('.ext')}.* like row "
                                       f"{other.row}{pair}"), None)
            continue
        good.append(photo)
    return good, [BadRow(row, reason) for row, reason in bad]


def _check_row(photo: Photo, scenes: Scenes, default_scene: str | None, photos_read: dict,
               reporter, keep_profile: bool) -> PreparedImage:
    if not photo.display or photo.display == ".":
        raise UsageError("no photo")
    folder = PurePosixPath(photo.folder)
    if folder.is_absolute() or ".." in folder.parts:
        raise UsageError(f"out {folder} must stay inside the output folder")
    if photo.name is not None:
        check_template(photo.name, {key for key, _ in photo.columns})
    if photo.source not in photos_read:  # what became of reading it; the image is not kept
        try:
            load_image(photo.source, None, reporter, keep_profile=keep_profile)
            photos_read[photo.source] = None
        except RunflowBgError as exc:
            photos_read[photo.source] = exc
    if photos_read[photo.source] is not None:
        raise photos_read[photo.source]
    name = photo.scene or default_scene
    if name is None:
        raise UsageError("no scene, and no --scene")
    if name not in scenes:
        scenes[name] = load_image(name, None, reporter, keep_profile=keep_profile)
    return scenes[name][0]


def refuse_bad_rows(bad: list[BadRow], manifest: Path) -> None:
    """Nothing is spent on a manifest with bad rows unless the user said to skip them."""
    shown = "; ".join(str(row) for row in bad[:10]) + ("; ..." if len(bad) > 10 else "")
    raise InputError(f"{manifest}: {count_rows(bad)} bad rows ({shown}). Nothing was submitted.",
                     hint="Fix them, or add --skip-bad-rows to submit the others.")


def count_rows(bad: list[BadRow]) -> int:
    """How many rows are bad (a row paired with several scenes may be bad for more reasons)."""
    return len({row.row for row in bad})
