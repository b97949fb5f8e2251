"""`batch --results FILE`: what became of each request, one row per input row, in a file that
can be fed back as the next `--manifest` (with `--retry-failed`, only its failed rows run)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from runflow_bg.errors import UsageError
from runflow_bg.fsutil import atomic_write_bytes
from runflow_bg.service.collect import Photo

RESULT_COLUMNS = ("status", "run_id", "cost", "outputs", "error")
FORMATS = (".csv", ".jsonl")


def check_format(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--results {path}: expected a .csv or .jsonl file.")


def is_failed(values: dict) -> bool:
    """A row of an earlier results file whose request did not succeed."""
    return str(values.get("status") or "") == "failed" or bool(values.get("error"))


def result_row(photo: Photo, outcome: dict) -> dict:
    """The input row as given (for a photo named on the command line, `photo` and `scene`)
    followed by what became of it; a row paired with one of several scenes names that scene,
    so that, fed back, it is the same request."""
    row = dict(photo.columns) if photo.row else {"photo": photo.display,
                                                 "scene": outcome["scene"]}
    if photo.row and photo.scene:
        row["scene"] = photo.scene
    error = outcome["error"]
    row.update({"status": "failed" if error else outcome["status"], "run_id": outcome["run_id"],
                "cost": outcome["cost"],
                "outputs": [output["path"] for output in outcome["outputs"] if output["path"]],
                "error": error["message"] if error else None})
    return row


def write_results(path: Path, rows: list[dict]) -> None:
    """Written at once, so an interrupted batch never leaves half a file behind."""
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        columns = list(dict.fromkeys(key for row in rows for key in row
                                     if key not in RESULT_COLUMNS)) + list(RESULT_COLUMNS)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(value) for key, value in row.items()})
        text = buffer.getvalue()
    atomic_write_bytes(path, text.encode("utf-8"))


def _cell(value) -> str:
    if value is None:
        return ""
    return " ".join(value) if isinstance(value, list) else str(value)
