"""Shared test helpers: sample images, zips, and running the real CLI in a subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

from PIL import Image

from runflow_bg.clock import Clock

KEY = "rf_test_cli_key_5678"
JSON_KEYS = {"run_id", "status", "photo", "scene", "prompt", "client_ref", "outputs",
             "duration_ms", "cost", "cached", "skipped", "error"}
MACHINE_NETWORK_SETTINGS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                            "all_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR")


def write_photo(path: Path, size=(160, 120), color=(200, 30, 30), fmt=None, exif=None) -> Path:
    """A product on a white background: a coloured block in the middle."""
    image = Image.new("RGB", size, "white")
    w, h = size
    image.paste(color, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    kwargs = {"exif": exif} if exif is not None else {}
    image.save(path, fmt, **kwargs)
    return path


def write_scene(path: Path, size=(200, 150), color=(40, 90, 160)) -> Path:
    image = Image.new("RGB", size, color)
    image.save(path)
    return path


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def sample_zip() -> bytes:
    """A small inputs zip (a red product on white, a blue scene); the same bytes every time."""
    photo = Image.new("RGB", (64, 48), "white")
    photo.paste((200, 30, 30), (20, 12, 44, 40))
    scene = Image.new("RGB", (80, 60), (40, 90, 160))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, image in (("image.png", photo), ("reference.png", scene)):
            member = io.BytesIO()
            image.save(member, "PNG")
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)),
                             member.getvalue())
    return buffer.getvalue()


def cli_env(base_url: str | None, home: Path, key: str | None = KEY, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNFLOW_", "GITHUB_")) and k not in MACHINE_NETWORK_SETTINGS
           and k != "CI"}  # tests act as a person at a shell unless they say otherwise
    env.update({"RUNFLOW_BG_HOME": str(home), "NO_COLOR": "1", "RUNFLOW_BG_RETRIES": "2",
                "HOME": str(home / "user-home"), "COLUMNS": "100"})
    if base_url:
        env["RUNFLOW_BASE_URL"] = base_url
    if key:
        env["RUNFLOW_API_KEY"] = key
    env.update(extra)
    return env


class FakeClock(Clock):
    """Time that moves only when something sleeps: unit tests of schedules and retries."""

    def __init__(self) -> None:
        super().__init__()
        self.time = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


class QuickClock(Clock):
    """A clock whose sleeps pass quickly (at most 50 ms of real time) but count in full.

    Poll intervals, retry backoffs and Retry-After pauses all take their full length on this
    clock's time, so deadlines and timeouts behave as they would, while the test does not wait.
    Each thread skips its own sleeps, as each worker of a batch keeps its own deadlines.
    """

    def __init__(self) -> None:
        super().__init__()
        self._skipped = threading.local()
        self.sleeps: list[float] = []

    def now(self) -> float:
        return time.monotonic() + getattr(self._skipped, "seconds", 0.0)

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        real = min(seconds, 0.05)
        super().sleep(real)
        self._skipped.seconds = getattr(self._skipped, "seconds", 0.0) + seconds - real


def run_cli(*args: str, env: dict, cwd: Path, stdin: bytes | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `runflow-bg ARGS` in this process, as the console script would, on a QuickClock.

    The environment becomes exactly `env` for the call, the working directory `cwd`; stdout and
    stderr are kept apart, and the result has a process's shape (returncode, bytes).
    """
    from typer.testing import CliRunner

    from runflow_bg.cli import context
    from runflow_bg.cli.app import app

    changes: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    changes.update(env)
    before, make_clock = Path.cwd(), context.new_clock
    os.chdir(cwd)
    context.new_clock = QuickClock
    try:
        result = CliRunner().invoke(app, list(args), input=stdin, env=changes,
                                    prog_name="runflow-bg")
    finally:
        context.new_clock = make_clock
        os.chdir(before)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["runflow-bg", *args], result.exit_code,
                                       result.stdout_bytes, result.stderr_bytes)


def run_process(*args: str, env: dict, cwd: Path, stdin: bytes | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `runflow-bg ARGS` as a real process, for what only a process shows."""
    return subprocess.run([sys.executable, "-m", "runflow_bg", *args], env=env, cwd=cwd,
                          input=stdin, capture_output=True, timeout=timeout)


def has_control_chars(text: str) -> bool:
    return any(ord(ch) < 32 and ch not in "\n" for ch in text) or "\x1b" in text
