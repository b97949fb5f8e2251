"""Which photos a batch covers: files, folders and globs, in a stable order, mirrored to outputs;
and with several scenes, every photo paired with every scene.

Outputs mirror the photos' folders relative to the working directory (or, for photos outside
it, relative to the folder or glob that named them), so same-named photos never collide.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, replace as with_changes
from functools import cached_property
from pathlib import Path, PurePosixPath

from runflow_bg.errors import UsageError
from runflow_bg.images import IMAGE_SUFFIXES
from runflow_bg.naming import FIELDS, bind_fields, fields_of, first_output_names, url_file_name
from runflow_bg.urls import input_label, is_url, redact_url

_GLOB_MAGIC = frozenset("*?[")
MATRIX_TEMPLATE = "{stem}-{scene}-bg{n}.{ext}"  # the default --name with several scenes


@dataclass(frozen=True)
class Photo:
    """One photo of a batch and where its outputs go, relative to the output folder.

    A photo given by URL has the URL's file name as its `path` (what its outputs are named
    after) and the URL without its query as its `display`; `url` is what is fetched.
    """

    path: Path
    display: str
    folder: PurePosixPath
    named: bool = False  # given by its own name, not found in a folder or by a glob
    row: int = 0  # its manifest row; the fields below are that row's own choices
    scene: str | None = None  # the row's own scene, or the one of several --scene it pairs with
    prompt: str | None = None
    name: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    columns: tuple[tuple[str, str], ...] = ()  # the row as given, echoed into the results
    position: int = 0  # 1-based place among the photos named on the command line
    url: str | None = None

    @property
    def source(self) -> str:
        """What to read: the file, or the whole URL."""
        return self.url or self.display

    @cached_property  # planning asks for it several times an item
    def key(self) -> str:
        """Identifies the item across runs of the same command: its mirrored location, or for a
        manifest row what the request is made of, so a reordered manifest still resumes."""
        if self.row:
            return "\0".join((self.display, input_label(self.scene or ""), self.prompt or "",
                               self.name or "", str(self.folder)))
        key = str(self.folder / self.path.stem)
        # one --scene: the key it always had; a URL scene without its query (a signature)
        return f"{key}\0{input_label(self.scene)}" if self.scene else key

    @property
    def label(self) -> str:
        """How messages name the item: its photo, and its scene when it has one of its own."""
        return f"{self.display} + {input_label(self.scene)}" if self.scene else self.display

    @property
    def fields(self) -> dict:
        """Values for --name beyond the photo's own: {row} and a manifest row's columns."""
        columns = {key: value for key, value in self.columns if key not in FIELDS}
        return {**columns, "row": self.row or self.position}


def _resolve(path: Path | str) -> Path:
    """The real path; a link loop resolves as far as it can, and fails later as its own item."""
    path = Path(path)
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()


class _RealPaths:
    """Real paths of files, as strings, each folder resolved once: a catalogue's 10,000 photos
    sit in a few hundred folders, and resolving every file's path component by component
    dominated planning. A file's name is joined to its folder's real path unless the file is a
    link (or a name such as `..`), which is resolved whole."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def folder(self, path: str) -> str:
        found = self._folders.get(path)
        if found is None:
            found = self._folders[path] = str(_resolve(path))
        return found

    def file(self, path: str) -> str:
        folder, name = os.path.split(path)
        if name in ("", ".", "..") or os.path.islink(path):
            return str(_resolve(path))
        return os.path.join(self.folder(folder), name)


def url_photo(url: str, folder: PurePosixPath = PurePosixPath(), **fields) -> Photo:
    """A photo given by URL; its outputs are named after the URL's file name."""
    return Photo(Path(url_file_name(url)), redact_url(url), folder, named=True, url=url, **fields)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith(".")


def _walk(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root, name) for name in sorted(files) if _is_image(name))
    return found


def _glob_base(pattern: str) -> Path:
    parts = []
    for part in PurePosixPath(pattern).parts:
        if _GLOB_MAGIC & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _inside(path: str, folder: str) -> bool:
    """Whether a real path lies in (or is) a real folder."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def collect_photos(args: list[str], cwd: Path) -> list[Photo]:
    """Every photo named by `args`, deduplicated, sorted; missing files are kept (they fail)."""
    photos: dict[str, Photo] = {}
    real = _RealPaths()
    real_cwd = real.folder(str(cwd))
    mirrored: dict[tuple[str, str], PurePosixPath] = {}

    def mirror(folder: str, base: str) -> PurePosixPath:
        """The folder's place under the output folder: its real path relative to `base`'s."""
        key = (folder, base)
        if key not in mirrored:
            real_folder, real_base = real.folder(folder), real.folder(base)
            inside = real_folder != real_base and _inside(real_folder, real_base)
            mirrored[key] = (PurePosixPath(real_folder[len(real_base.rstrip(os.sep)) + 1:])
                             if inside else PurePosixPath())
        return mirrored[key]

    def add(path: Path, base: Path, named: bool = False) -> None:
        """Mirror the folder relative to the working directory, else relative to `base`."""
        text = str(path)
        resolved = real.file(text)
        if resolved not in photos:
            folder = mirror(os.path.dirname(text), str(cwd) if _inside(resolved, real_cwd)
                            else str(base))
            photos[resolved] = Photo(path, os.path.normpath(text), folder, named)

    for arg in args:
        path = Path(arg)
        if is_url(arg):
            photos.setdefault(arg, url_photo(arg))
        elif path.is_dir():
            for found in _walk(path):
                add(found, path)
        elif _GLOB_MAGIC & set(arg) and not path.exists():
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
            base = _glob_base(arg)
            for found in matches:
                if found.is_file() and _is_image(found.name):
                    add(found, base)
            if not matches:
                raise UsageError(f"No photo matches {arg!r}.")
        else:
            add(path, path.parent, named=True)
    ordered = [with_changes(photo, position=number) for number, photo in
               enumerate(sorted(photos.values(), key=lambda photo: photo.display), 1)]
    _refuse_collisions(ordered)
    return ordered


def _refuse_collisions(photos: list[Photo]) -> None:
    seen: dict[str, Photo] = {}
    for photo in photos:
        other = seen.setdefault(photo.key, photo)
        if other is not photo:
            hint = ("Give them in a --manifest with an `out` or `name` column for each."
                    if photo.url or other.url else "Rename one, or put them in different folders.")
            raise UsageError(
                f"{other.display} and {photo.display} would be saved under the same name.",
                hint=hint)


def collect_scenes(args: list[str]) -> list[str]:
    """The scenes named by --scene: URLs, files, and the images in folders (recursed, hidden
    files skipped, sorted); the same file named twice counts once. Missing files are kept (they fail
    when read, before anything is spent)."""
    scenes: dict[Path | str, str] = {}
    for arg in args:
        if is_url(arg):
            scenes.setdefault(arg, arg)
            continue
        path = Path(arg)
        found = _walk(path) if path.is_dir() else [path]
        if not found:
            raise UsageError(f"No scene image in the folder {arg}.",
                             hint="Put PNG, JPEG or WebP scenes in it, or name the files.")
        for scene in found:
            scenes.setdefault(_resolve(scene), os.path.normpath(str(scene)))
    return list(scenes.values())


def matrix_template(template: str, scenes: int, chosen: bool) -> str:
    """The --name for items that pair with one of `scenes` scenes: with several, the default
    gains {scene}, so one photo's results in each scene keep apart; a chosen template without
    {scene} would write them all to one file, and is refused before anything is spent."""
    if scenes < 2 or "scene" in fields_of(template):
        return template
    if not chosen:
        return MATRIX_TEMPLATE
    raise UsageError(f"--name {template!r} has no {{scene}}, so each photo's results in the "
                     f"{scenes} scenes would be saved under one name.",
                     hint="Put {scene} in --name, e.g. --name \"{stem}-{scene}{n}.{ext}\".")


def pair_with_scenes(photos: list[Photo], scenes: list[str]) -> list[Photo]:
    """Every photo without a scene of its own with each of several scenes, photo by photo. With
    one scene, photos named on the command line stay as they are (their items keep their
    journal keys), and a manifest row without a scene takes it, so that its results row names
    the scene and, fed back, is the same request."""
    if len(scenes) == 1:
        return [with_changes(photo, scene=scenes[0]) if photo.row and not photo.scene else photo
                for photo in photos]
    if not scenes:
        return photos
    paired: list[Photo] = []
    for photo in photos:
        paired += [photo] if photo.scene else [with_changes(photo, scene=s) for s in scenes]
    return paired


def drop_earlier_outputs(photos: list[Photo], recorded: set[str], out_dir: Path, template: str,
                         scene_stems: list[str]) -> tuple[list[Photo], int]:
    """Leave out of folder and glob inputs what the tool itself saved: files the journal recorded
    as outputs, and files standing where another photo's output goes.

    A photo named on the command line is kept whatever it is. Returns the photos kept and how
    many were left out.
    """
    real = _RealPaths()
    paths = [None if photo.named else real.file(str(photo.path)) for photo in photos]
    photo_folders = {os.path.dirname(path) for path in paths if path is not None}
    root = real.folder(str(out_dir))
    left_out = {real.file(path) for path in recorded}
    for photo in photos:
        folder = os.path.normpath(os.path.join(root, str(photo.folder)))
        own = bind_fields(template, photo.fields)
        if "/" not in own and folder not in photo_folders:
            continue  # its outputs would stand in a folder that holds no photo
        for scene_stem in scene_stems:
            # rendered names are normalised: no empty, `.` or `..` parts
            left_out.update(os.path.join(folder, name)
                            for name in first_output_names(own, photo.path.stem, scene_stem))
    kept = [photo for photo, path in zip(photos, paths) if path is None or path not in left_out]
    return kept, len(photos) - len(kept)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`K/N` -> (K, N) with 1 <= K <= N."""
    if text is None:
        return None
    k, sep, n = text.partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = (0, 0)
    if not sep or not 1 <= shard[0] <= shard[1]:
        raise UsageError(f"Invalid --shard {text!r}; expected K/N with 1 <= K <= N, e.g. 2/3.")
    return shard


def take_shard(photos: list[Photo], shard: tuple[int, int] | None) -> list[Photo]:
    """The items whose index mod N == K-1, so N jobs together cover each item exactly once."""
    if shard is None:
        return photos
    k, n = shard
    return [photo for index, photo in enumerate(photos) if index % n == k - 1]
