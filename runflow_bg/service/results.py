"""The one result shape of every command: what became of a request or a run, as JSON.

`replace --json`, each line of `batch --json`, `runs get/wait/download --json` and the batch
report all print `Outcome.to_json()`, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runflow_bg.download import SavedFile
from runflow_bg.errors import RunflowBgError
from runflow_bg.models import Run
from runflow_bg.urls import redact_url


@dataclass
class Outcome:
    """One request or run as far as this machine knows it."""

    photo: str | None = None
    scene: str | None = None
    prompt: str | None = None
    client_ref: str | None = None
    run: Run | None = None
    run_id: str | None = None
    saved: list[SavedFile] = field(default_factory=list)
    recorded: tuple[str, ...] = ()  # files an earlier command saved from this run
    cached: bool = False
    skipped: bool = False
    error: RunflowBgError | None = None

    @property
    def paths(self) -> list[Path]:
        """The files saved for this request or run by this call."""
        return [saved.path for saved in self.saved]

    @property
    def id(self) -> str | None:
        if self.run is not None:
            return self.run.id
        return self.run_id or (self.error.run_id if self.error else None)

    def outputs(self, signed_urls: bool = False) -> list[dict]:
        """Output URLs with the files they were saved to, now or by an earlier command.

        URLs lose their query string (the signature that grants access) unless asked for.
        """
        shown = (lambda url: url) if signed_urls else (lambda url: redact_url(url) if url else url)
        if self.saved:
            return [{"url": shown(saved.url), "path": str(saved.path)} for saved in self.saved]
        urls = self.run.output_urls if self.run else ()
        paths = self.recorded
        return [{"url": shown(url), "path": paths[i] if i < len(paths) else None}
                for i, url in enumerate(urls)]

    def to_json(self, signed_urls: bool = False) -> dict:
        run = self.run
        prompt = self.prompt
        if prompt is None and run is not None and run.input:
            given = run.input.get("prompt")
            prompt = given if isinstance(given, str) else None
        return {
            "run_id": self.id,
            "status": run.status if run else ("skipped" if self.skipped else None),
            "photo": self.photo,
            "scene": self.scene,
            "prompt": prompt,
            "client_ref": (run.client_ref if run else None) or self.client_ref,
            "outputs": self.outputs(signed_urls),
            "duration_ms": run.duration_ms if run else None,
            "cost": run.cost if run else None,
            "cached": self.cached,
            "skipped": self.skipped,
            "error": self.error.to_dict() if self.error else None,
        }
