"""Everything checked and prepared locally before the first paid call."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from runflow_bg.backdrop import backdrop_problem, looks_swapped
from runflow_bg.client import MODEL
from runflow_bg.delivery import photo_rights
from runflow_bg.errors import InputError, UsageError
from runflow_bg.images import InputFile, PreparedImage, prepare_image, read_input, same_file
from runflow_bg.naming import input_stem
from runflow_bg.packing import Package, pack
from runflow_bg.progress import Reporter
from runflow_bg.urls import is_allowed_url, redact_url



def request_hash(source: str, prompt: str | None, model: str = MODEL) -> str:
    """Identifies a request's content: same photo, scene, prompt and model, same hash."""
    digest = hashlib.sha256()
    for part in (model, source, prompt or ""):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()


def local_source(photo_digest: str, scene_digest: str, keep_profile: bool = False) -> str:
    """The source part of a request hash for local files: the digests of their bytes as read,
    and whether their colours are sent as they are (another request than converted ones)."""
    return f"files:{photo_digest}:{scene_digest}" + (":keep-profile" if keep_profile else "")


@dataclass(frozen=True)
class Inputs:
    """What one request sends: a packed zip (or a zip URL) and the names for its outputs."""

    photo: str
    scene: str
    stem: str
    scene_stem: str
    image_member: str
    reference_member: str
    source: str
    package: Package | None = None
    zip_url: str | None = None
    summary: str = ""
    rights: tuple[str | None, str | None] = (None, None)  # the photo's copyright and creator
    warnings: tuple[str, ...] = ()  # what may spoil the result: a grey backdrop, swapped files

    @classmethod
    def unread(cls, photo: str, scene: str) -> Inputs:
        """Inputs that could not be read, so that their outcome can still be reported."""
        return cls(photo=photo, scene=scene, stem=input_stem(photo), scene_stem=input_stem(scene),
                   image_member="", reference_member="", source="")

    def content_hash(self, prompt: str | None, model: str = MODEL) -> str:
        return request_hash(self.source, prompt, model)

    def run_input(self, zip_url: str, prompt: str | None) -> dict:
        body = {"zip_url": zip_url, "file_image": self.image_member,
                "file_reference": self.reference_member}
        if prompt:
            body["prompt"] = prompt
        return body


def load_image(name: str, stdin: BinaryIO | None, reporter: Reporter, *,
               keep_profile: bool = False) -> tuple[PreparedImage, InputFile]:
    """Read and prepare one image; returns it with the file it came from (for same-file checks)."""
    source = read_input(name, stdin)
    prepared = prepare_image(source, on_large=reporter.on_notice, keep_profile=keep_profile)
    for notice in prepared.notices:
        reporter.on_notice(notice)
    return prepared, source


def local_inputs(photo_name: str, scene: PreparedImage, scene_source: InputFile, stdin: BinaryIO | None,
                 reporter: Reporter, *, keep_profile: bool = False, strict: bool = False) -> Inputs:
    """Check and pack one photo with an already prepared scene."""
    photo, source = load_image(photo_name, stdin, reporter, keep_profile=keep_profile)
    if same_file(source, scene_source):
        raise InputError(f"{photo_name} is given as both the photo and the scene.",
                         hint="Give the product photo first, then a different scene image.")
    warnings = backdrop_warnings(photo, scene, strict=strict)
    for warning in warnings:
        reporter.on_notice(warning)
    package = pack(photo, scene)
    with source.open() as stream:
        rights = photo_rights(stream)
    return Inputs(photo=photo.name, scene=scene.name, stem=photo.stem, scene_stem=scene.stem,
                  image_member=package.image_member, reference_member=package.reference_member,
                  source=local_source(source.digest, scene_source.digest, keep_profile),
                  package=package,
                  summary=f"{photo.describe()} and {scene.describe()}", warnings=warnings,
                  rights=rights)


def backdrop_warnings(photo: PreparedImage, scene: PreparedImage, *,
                      strict: bool = False) -> tuple[str, ...]:
    """What about the photo's backdrop may spoil a paid result; with `strict`, refused instead.

    The model replaces the photo's white area: a photo without one, or with the scene's white
    backdrop where the photo should be, is worth a word before the run is paid for.
    """
    problem = backdrop_problem(photo.preview)
    if problem is None:
        return ()
    if looks_swapped(photo.preview, scene.preview):
        warning = (f"{photo.name} looks like a scene and {scene.name} like a product on white: "
                   f"they seem to be given the wrong way round")
        hint = "Give the product photo first, then the scene."
    else:
        warning = f"{photo.name}: {problem}; the model replaces only the white area"
        hint = "Photograph the product on plain white, or cut it out onto white."
    if strict:
        raise InputError(f"{warning}.", hint=f"{hint} Without --strict-inputs this is a warning.")
    return (warning,)


def replace_inputs(photo_name: str, scene_name: str, stdin: BinaryIO | None,
                   reporter: Reporter, *, keep_profile: bool = False,
                   strict: bool = False) -> Inputs:
    """The photo and the scene of `replace`, checked, prepared and packed."""
    if photo_name == "-" and scene_name == "-":
        raise UsageError("Only one of PHOTO and SCENE can be `-` (standard input).")
    scene, scene_source = load_image(scene_name, stdin, reporter, keep_profile=keep_profile)
    inputs = local_inputs(photo_name, scene, scene_source, stdin, reporter,
                          keep_profile=keep_profile, strict=strict)
    reporter.on_stage(f"checked {inputs.summary}")
    return inputs


def zip_url_inputs(zip_url: str, image: str | None, reference: str | None) -> Inputs:
    """A zip already online: only its URL and member names are sent."""
    if not image or not reference:
        raise UsageError("--zip-url needs --image NAME and --reference NAME (members of the zip).")
    if not is_allowed_url(zip_url):
        raise UsageError(f"Refusing --zip-url {redact_url(zip_url)}: it must be https.")
    stem = PurePosixPath(image).stem or "image"
    return Inputs(photo=image, scene=reference, stem=stem, scene_stem=PurePosixPath(reference).stem,
                  image_member=image, reference_member=reference, zip_url=zip_url,
                  source=f"url:{zip_url}#{image}#{reference}")


def check_output_dir(out_dir: Path, *, create: bool = True) -> None:
    """The output folder exists (or can be made) and can be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a folder.", hint="Give a folder with -o/--out.")
    if not create and not out_dir.exists():
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the output folder {out_dir}: {exc.strerror}.") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise InputError(f"The output folder {out_dir} is not writable.",
                         hint="Choose another folder with -o/--out.")
