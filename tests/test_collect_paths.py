"""Which photos a batch finds, where their outputs mirror to, and which earlier outputs it leaves
out, on a tree with links (to files, folders, outside the working directory, to themselves,
to nothing), `..`, hidden files, globs, duplicates and photos outside the working directory.

Collection resolves each folder once and joins names to it; these figures are those of
resolving every file's whole path, as collection first did."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_photo
from runflow_bg.service.collect import collect_photos, drop_earlier_outputs


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """tmp/work (the working directory) and tmp/elsewhere, outside it."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    for rel in ("photos/a.png", "photos/B.JPG", "photos/.hidden.png", "photos/sub/c.webp",
                "photos/sub/deeper/d.png", "photos/.git/x.png", "photos/a-bg.webp",
                "photos/sub/c-bg.png"):
        photo(work / rel)
    (work / "photos" / "notes.txt").write_text("not a photo")
    for rel in ("o.png", "deep/p.png", "deep/q.png"):
        photo(elsewhere / rel)
    photos = work / "photos"
    (photos / "link.png").symlink_to("sub/c.webp")
    (photos / "outside.png").symlink_to(elsewhere / "o.png")
    (photos / "loop.png").symlink_to("loop.png")
    (photos / "dangling.png").symlink_to("nowhere.png")
    (photos / "linkdir").symlink_to("sub")
    (work / "shelf").symlink_to(elsewhere / "deep")
    monkeypatch.chdir(work)
    return work


def photo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_photo(path, size=(8, 6), fmt="PNG")


def described(photos) -> list[tuple]:
    return [(str(p.path), p.display, str(p.folder), p.named, p.position, p.key, p.url)
            for p in photos]


ARGS = ["photos", "photos/a.png", "../elsewhere", "../elsewhere/deep/*.png",
        "photos/sub/../a.png", "missing.png", "shelf", "photos/linkdir/c.webp",
        "https://example.com/x/y.png?sig=1", "{work}/photos/sub/deeper/d.png"]

EXPECTED = [
    ("../elsewhere/deep/p.png", "../elsewhere/deep/p.png", "deep", False, 1, "deep/p", None),
    ("../elsewhere/deep/q.png", "../elsewhere/deep/q.png", "deep", False, 2, "deep/q", None),
    ("y.png", "https://example.com/x/y.png", ".", True, 3, "y",
     "https://example.com/x/y.png?sig=1"),
    ("missing.png", "missing.png", ".", True, 4, "missing", None),
    ("photos/B.JPG", "photos/B.JPG", "photos", False, 5, "photos/B", None),
    ("photos/a-bg.webp", "photos/a-bg.webp", "photos", False, 6, "photos/a-bg", None),
    ("photos/a.png", "photos/a.png", "photos", False, 7, "photos/a", None),
    ("photos/dangling.png", "photos/dangling.png", "photos", False, 8, "photos/dangling", None),
    ("photos/link.png", "photos/link.png", "photos", False, 9, "photos/link", None),
    ("photos/loop.png", "photos/loop.png", "photos", False, 10, "photos/loop", None),
    # a link out of the working directory mirrors from the folder that named it
    ("photos/outside.png", "photos/outside.png", ".", False, 11, "outside", None),
    ("photos/sub/c-bg.png", "photos/sub/c-bg.png", "photos/sub", False, 12, "photos/sub/c-bg",
     None),
    ("photos/sub/deeper/d.png", "photos/sub/deeper/d.png", "photos/sub/deeper", False, 13,
     "photos/sub/deeper/d", None),
]


def test_photos_their_folders_and_keys(tree):
    args = [arg.replace("{work}", str(tree)) for arg in ARGS]
    photos = collect_photos(args, Path.cwd())
    expected = [(str(Path(path)), *rest) for path, *rest in EXPECTED]
    assert described(photos) == expected


def test_photos_outside_the_working_directory_mirror_from_what_named_them(tree):
    named = str(tree.parent / "elsewhere" / "deep" / "q.png")
    photos = collect_photos([named, "shelf", "../elsewhere"], tree / "photos")
    assert [(str(p.path), str(p.folder), p.named) for p in photos] == [
        ("../elsewhere/o.png", ".", False), (named, ".", True), ("shelf/p.png", ".", False)]


@pytest.mark.parametrize("out", [".", "./", "photos/..", "here", "{work}"])
def test_earlier_outputs_are_left_out_however_the_output_folder_is_given(tree, out):
    (tree / "here").symlink_to(".")
    photos = collect_photos(["photos"], Path.cwd())
    recorded = {"photos/link.png", str(tree / "photos" / "sub" / "deeper" / "d.png")}
    kept, left_out = drop_earlier_outputs(photos, recorded, Path(out.format(work=tree)),
                                          "{stem}-bg{n}.{ext}", ["scene"])
    # a-bg.webp stands where a.png's output goes; the other two are recorded as outputs
    assert [str(p.path) for p in kept] == [
        "photos/B.JPG", "photos/a.png", "photos/dangling.png", "photos/loop.png",
        "photos/outside.png", "photos/sub/c-bg.png"]
    assert left_out == 3


def test_photos_named_on_the_command_line_are_kept_whatever_they_are(tree):
    photos = collect_photos(["photos/sub/c.webp", "photos/sub/c-bg.png", "photos"], Path.cwd())
    kept, left_out = drop_earlier_outputs(photos, {"photos/sub/c.webp"}, Path("."),
                                          "{stem}-bg{n}.{ext}", ["scene"])
    assert "photos/link.png" not in [str(p.path) for p in photos], "the same file as c.webp"
    assert {"photos/sub/c.webp", "photos/sub/c-bg.png"} <= {str(p.path) for p in kept}
    assert left_out == 1  # a-bg.webp


def test_outputs_in_another_folder_leave_nothing_out(tree):
    photos = collect_photos(["photos"], Path.cwd())
    kept, left_out = drop_earlier_outputs(photos, set(), Path("out"), "{scene}/{stem}.{ext}",
                                          ["one", "two"])
    assert kept == photos and left_out == 0
