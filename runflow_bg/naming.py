"""Output file names from the --name template; nothing a server says ever becomes a path."""

from __future__ import annotations

import hashlib
import os
import re
import string
import unicodedata
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from runflow_bg.errors import InputError, UsageError
from runflow_bg.urls import is_url, redact_url

DEFAULT_TEMPLATE = "{stem}-bg{n}.{ext}"
FIELDS = frozenset({"stem", "scene", "n", "run", "ext", "row"})
_RENDERED = FIELDS - {"row"}  # filled in by `render`; {row} and columns by `bind_fields`
OUTPUT_EXTENSIONS = ("webp", "png", "jpg", "jpeg", "bin")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:*?\"<>|]")
_MAX_COMPONENT = 120


@lru_cache(maxsize=65536)  # planning a catalogue renders each name several times
def safe_component(text: str, fallback: str = "output") -> str:
    """A file-name component from any text: no separators, control characters or dot-names."""
    text = unicodedata.normalize("NFC", str(text))
    text = _UNSAFE.sub("_", text).strip().lstrip(".")
    text = text[:_MAX_COMPONENT].rstrip(". ")
    return text or fallback


def url_file_name(url: str) -> str:
    """The file name a URL input stands for: its path's last segment, percent-decoded and made
    safe (no query, separators, control characters or dot-names, at most 120 characters); when
    nothing usable is left, `url-` and a hash of the URL without its query."""
    try:
        segment = urlsplit(url).path.rstrip("/").rpartition("/")[2]
    except ValueError:
        segment = ""
    name = safe_component(unquote(segment), fallback="")
    if PurePosixPath(name).stem:
        return name
    return "url-" + hashlib.sha256(redact_url(url).encode()).hexdigest()[:12]


def input_stem(name: str) -> str:
    """`{stem}` of an input: a file's stem, a URL's file name's stem, `stdin` for `-`."""
    if name == "-":
        return "stdin"
    if is_url(name):
        return PurePosixPath(url_file_name(name)).stem
    return Path(name).stem


def check_template(template: str, columns: frozenset[str] | set[str] = frozenset()) -> str:
    """Refuse templates with unknown fields or that leave the output folder; a manifest's
    `columns` are fields too."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UsageError(f"Invalid --name {template!r}: {exc}.") from None
    unknown = fields - FIELDS - set(columns)
    if unknown:
        raise UsageError(f"Invalid --name {template!r}: unknown field {{{sorted(unknown)[0]}}}.",
                         hint="Fields: {stem}, {scene}, {n}, {run}, {ext}, {row}, and with "
                              "--manifest its columns.")
    try:
        bind_fields(template, {"row": 1, **{column: "x" for column in columns}})
    except InputError as exc:
        raise UsageError(f"Invalid --name {template!r}: {exc.message}.") from None
    if Path(template).is_absolute() or ".." in Path(template).parts:
        raise UsageError(f"Invalid --name {template!r}: it must stay inside the output folder.")
    return template


def fields_of(template: str) -> set[str]:
    """The fields a (checked) template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def bind_fields(template: str, values: dict) -> str:
    """The template with an item's own fields filled in ({row}, a manifest row's columns), each
    value made a safe file-name component; the fields `render` fills are left as they are."""
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if name in _RENDERED:
            parts.append("{" + name + (f"!{conversion}" if conversion else "")
                         + (f":{spec}" if spec else "") + "}")
            continue
        if name not in values:
            raise InputError(f"no value for {{{name}}} in --name")
        value = values[name]
        try:
            text = format(value if isinstance(value, int) else safe_component(value), spec)
        except ValueError:
            raise InputError(f"{{{name}:{spec}}} does not fit the value {value!r}") from None
        parts.append(safe_component(text).replace("{", "{{").replace("}", "}}"))
    return "".join(parts)


@lru_cache(maxsize=65536)
def render(template: str, *, stem: str, scene: str, index: int, run_id: str, ext: str) -> str:
    """The relative path of output number `index` (0-based): `{n}` is '' then -2, -3 ...; a
    normalised one (no empty, `.` or `..` part), so it may be joined to a folder as it is."""
    values = {
        "stem": safe_component(stem, "photo"),
        "scene": safe_component(scene, "scene"),
        "n": "" if index == 0 else f"-{index + 1}",
        "run": safe_component(run_id, "run"),
        "ext": safe_component(ext, "bin"),
        "row": 1,  # a single request; a batch's items have theirs bound by `bind_fields`
    }
    parts = [safe_component(part) for part in template.format(**values).split("/") if part]
    return "/".join(parts) or f"{values['stem']}-bg.{values['ext']}"


def output_path(out_dir: Path, relative: str) -> Path:
    """The output path as the user would write it, guaranteed to lie inside `out_dir`."""
    root = os.path.realpath(out_dir)  # strings, not Paths: a catalogue checks thousands
    _refuse_outside(root, os.path.realpath(os.path.join(root, relative)), out_dir, relative)
    return out_dir / relative


class OutputFolder:
    """The output folder of a batch, asked about thousands of outputs: `output_path`'s check
    and `existing_first_output`, with each folder in it resolved (or found missing) once rather
    than for every file (a catalogue's 10,000 outputs sit in a few hundred folders)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._root = os.path.realpath(out_dir)
        self._real: dict[str, str] = {}
        self._is_dir: dict[str, bool] = {}

    def check(self, relative: str) -> None:
        """`output_path`'s refusal of an output that a link leads outside the folder: the name
        is joined to its folder's real path, unless it is a link, which is resolved whole."""
        path = os.path.join(self._root, relative)
        folder, name = os.path.split(path)
        if name in ("", ".", "..") or os.path.islink(path):
            resolved = os.path.realpath(path)
        else:
            if folder not in self._real:
                self._real[folder] = os.path.realpath(folder)
            resolved = os.path.join(self._real[folder], name)
        _refuse_outside(self._root, resolved, self.out_dir, relative)

    def existing_first_output(self, folder: str, template: str, *, stem: str,
                              scene: str) -> Path | None:
        """`existing_first_output` in `folder` of the output folder: when that folder is not
        there (a first run), nothing stands in it, and no name is rendered or looked up."""
        path = os.path.join(self.out_dir, folder)
        if path not in self._is_dir:
            self._is_dir[path] = os.path.isdir(path)
        if not self._is_dir[path]:
            return None
        return existing_first_output(self.out_dir / folder, template, stem=stem, scene=scene)


def _refuse_outside(root: str, resolved: str, out_dir: Path, relative: str) -> None:
    if resolved != root and not resolved.startswith(root.rstrip(os.sep) + os.sep):
        raise InputError(f"Refusing to write {relative}: a link leads it outside {out_dir}.",
                         hint="Remove the link, or choose another --out.")


def first_output_names(template: str, stem: str, scene: str,
                       run_id: str = "run") -> tuple[str, ...]:
    """The first output's relative path under each of OUTPUT_EXTENSIONS, in that order."""
    return tuple(render(template, stem=stem, scene=scene, index=0, run_id=run_id, ext=ext)
                 for ext in OUTPUT_EXTENSIONS)


def existing_first_output(out_dir: Path, template: str, *, stem: str, scene: str,
                          run_id: str = "run") -> Path | None:
    """Whatever stands at the first output's name under any extension (a dangling link too)."""
    folder = os.fspath(out_dir)
    for relative in first_output_names(template, stem, scene, run_id):
        if os.path.lexists(os.path.join(folder, relative)):
            return out_dir / relative
    return None


def check_replaceable(path: Path) -> None:
    """With --overwrite, only a file (or a link to one) may be replaced: refuse before paying."""
    if path.is_dir():
        raise InputError(f"{path} is a folder; an output cannot replace it.",
                         hint="Choose another --name or --out.")
    if path.is_symlink() and not path.exists():
        raise InputError(f"{path} is a link to nothing; refusing to write through it.",
                         hint="Remove the link, or choose another --name or --out.")
