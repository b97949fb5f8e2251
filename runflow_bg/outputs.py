"""What an output becomes on disk: the original kept in the cache, the delivered file, a sidecar.

Runflow's original bytes are kept (per run and output) so that another format, size or preset
later costs nothing: it is made from the copy, not paid for again. The delivered file carries an
sRGB profile and, unless asked otherwise, the IPTC label for AI-generated images.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runflow_bg.client import MODEL
from runflow_bg.fsutil import atomic_write_bytes, private_dir
from runflow_bg.naming import safe_component

if TYPE_CHECKING:
    from runflow_bg.delivery import Spec


@dataclass(frozen=True)
class Delivery:
    """How outputs are delivered: the file a shop accepts, and where the originals are kept."""

    spec: Spec | None = None  # None: the defaults (keep the format, sRGB, the AI label)
    source_name: str = ""  # the photo the output was made from, for provenance
    copyright: str | None = None
    creator: str | None = None
    sidecar: bool = False
    preset: str | None = None
    originals: Path | None = None  # the cache folder of Runflow's original bytes

    def _original_dir(self, run_id: str) -> Path | None:
        return self.originals / safe_component(run_id, "run") if self.originals else None

    def original(self, run_id: str, index: int) -> Path | None:
        """The kept original of output `index` of a run, if this machine has it."""
        folder = self._original_dir(run_id)
        found = sorted(folder.glob(f"{index}.*")) if folder and folder.is_dir() else []
        return found[0] if found else None

    def keep(self, run_id: str, index: int, data: bytes, ext: str) -> None:
        folder = self._original_dir(run_id)
        if folder is not None:
            try:
                try:
                    folder.mkdir(mode=0o700)
                except FileExistsError:  # another output of the same run
                    pass
                except FileNotFoundError:  # the cache's first use: each folder 0700, as the state's
                    for private in (self.originals.parent, self.originals, folder):
                        private_dir(private)
                os.chmod(folder, 0o700)
                atomic_write_bytes(folder / f"{index}.{ext}", data, 0o600)
            except OSError:
                pass  # a cache that cannot be written costs a download later, not this result

    def make(self, original: bytes, run_id: str) -> tuple[bytes, str]:
        """The delivered file's bytes and extension, made from Runflow's original."""
        from runflow_bg.delivery import Provenance, Spec, deliver

        provenance = Provenance(run_id=_text(run_id), model=MODEL,
                                source_name=_text(self.source_name),
                                copyright=self.copyright, creator=self.creator)
        return deliver(original, self.spec or Spec(), provenance)

    def write_sidecar(self, path: Path, run_id: str, data: bytes) -> None:
        """`<output>.json` next to the output: where it came from and what it is."""
        if not self.sidecar:
            return
        from runflow_bg.delivery import describe

        facts = describe(data)
        record = {"output": path.name, "run_id": run_id, "model": MODEL,
                  "source_photo": _text(self.source_name) or None, "sha256": hashlib.sha256(data).hexdigest(),
                  **{key: facts.get(key) for key in ("format", "width", "height", "bytes", "icc",
                                                     "ai_label")}}
        if self.preset:
            from runflow_bg.presets import PRESETS, check_file

            problems = check_file(path, PRESETS[self.preset])
            record.update(preset=self.preset, preset_ok=not problems, problems=problems)
        atomic_write_bytes(path.with_name(path.name + ".json"),
                           (json.dumps(record, indent=2) + "\n").encode())


def _text(name: str) -> str:
    """A file name as metadata can hold it: undecodable bytes kept as backslash escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
