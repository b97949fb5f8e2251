"""What planning a batch asks of the output folder and the journal for thousands of items at once
gives the answers the one-item questions give: `OutputFolder` against `output_path` and
`existing_first_output`, `Journal.succeeded_with_hashes` against `succeeded_with_hash`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runflow_bg.errors import InputError
from runflow_bg.journal import FAILED, SUCCEEDED, Journal, Request
from runflow_bg.naming import OutputFolder, existing_first_output, output_path

TEMPLATES = ["{stem}-bg{n}.{ext}", "{scene}/{stem}{n}.{ext}", "{ext}/{stem}.{ext}",
             "{stem:/>8}.{ext}"]


@pytest.fixture
def out(tmp_path, monkeypatch):
    """An output folder (reached through a link to it, from the working directory) with folders,
    files and links to inside, outside, nowhere and themselves."""
    monkeypatch.chdir(tmp_path)
    real, elsewhere = tmp_path / "real-out", tmp_path / "elsewhere"
    for folder in ("shelf", "shelf/deep", "beach", "webp", "other"):
        (real / folder).mkdir(parents=True)
    elsewhere.mkdir()
    (real / "shelf" / "mug-bg.webp").write_bytes(b"x")
    (real / "shelf" / "cup-bg.png").mkdir()
    (real / "beach" / "mug.jpg").write_bytes(b"x")
    (real / "webp" / "mug.webp").write_bytes(b"x")
    (real / "shelf" / "vase-bg.webp").symlink_to(elsewhere / "vase.webp")
    (real / "shelf" / "lamp-bg.webp").symlink_to("nowhere.webp")
    (real / "shelf" / "self-bg.webp").symlink_to("self-bg.webp")
    (real / "shelf" / "up-bg.webp").symlink_to("../other/up.webp")
    (real / "outside").symlink_to(elsewhere)
    (real / "inside").symlink_to("shelf")
    (real / "loop").symlink_to("loop")
    (real / "afile").write_bytes(b"x")
    Path("out").symlink_to(real)
    return Path("out")


FOLDERS = [".", "shelf", "shelf/deep", "beach", "outside", "inside", "loop", "afile", "missing",
           "missing/deeper", "webp"]
STEMS = ["mug", "cup", "vase", "lamp", "self", "up", "new"]


def refusal(check, *args) -> str | None:
    try:
        check(*args)
    except InputError as exc:
        return exc.message
    return None


def test_the_check_refuses_what_output_path_refuses(out):
    outputs = OutputFolder(out)
    refused = 0
    for folder in FOLDERS:
        for stem in STEMS:
            for name in (f"{stem}-bg.webp", f"beach/{stem}.webp", "..", ".", ""):
                relative = os.path.normpath(os.path.join(folder, name))
                expected = refusal(output_path, out, relative)
                assert refusal(outputs.check, relative) == expected, relative
                refused += expected is not None
    assert refused > 10


@pytest.mark.parametrize("template", TEMPLATES)
def test_existing_outputs_are_those_existing_first_output_finds(out, template):
    outputs = OutputFolder(out)
    found = 0
    for folder in FOLDERS:
        for stem in STEMS:
            for scene in ("beach", "loft"):
                expected = existing_first_output(out / folder, template, stem=stem, scene=scene)
                assert outputs.existing_first_output(folder, template, stem=stem,
                                                     scene=scene) == expected
                found += expected is not None
    assert found


def remember(journal: Journal, number: int, content_hash: str, status: str) -> None:
    request = Request(content_hash, "batch:x", f"item-{number}", "p.png", "s.jpg", None, "out",
                      "{stem}")
    journal.claim(request, f"ref-{number}")
    journal.record_finish(f"ref-{number}", status, outputs=[f"out/{number}.webp"])


def test_the_journal_answers_many_hashes_as_it_answers_each(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    for number in range(1_300):  # more hashes than one query takes
        status = FAILED if number % 7 == 0 else SUCCEEDED
        remember(journal, number, f"hash-{number % 1_100}", status)
    hashes = {f"hash-{number}" for number in range(0, 1_200, 3)} | {"never"}
    expected = {each: journal.succeeded_with_hash(each) for each in hashes}
    assert journal.succeeded_with_hashes(hashes) == {
        each: entry for each, entry in expected.items() if entry is not None}
    assert journal.succeeded_with_hashes(set()) == {}
