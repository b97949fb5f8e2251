"""Files written whole or not at all: a temporary file beside the target, then a rename.

Temporary files are named `.runflow-bg-<pid>-<name>.<random>.part`, so that a later command can
tell the leftovers of a killed process from the work of a live one and remove only those.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

PART_PREFIX = ".runflow-bg-"
PART_SUFFIX = ".part"


def part_prefix(name: str) -> str:
    """The prefix of this process's temporary files for `name`."""
    return f"{PART_PREFIX}{os.getpid()}-{name}."


def umask_mode(mode: int = 0o666) -> int:
    """`mode` as the user's umask allows it."""
    return mode & ~_umask()


@functools.cache
def _umask() -> int:
    """The process's umask, read once (the tool never changes it) and without changing it, as
    other threads may be creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def ensure_dir(path: Path) -> None:
    """Make the folder `path` with its parents if it is missing. One stat when it exists, as
    it does for every output of a batch but the first: cheaper than mkdir's refusal."""
    if not os.path.isdir(path):
        path.mkdir(parents=True, exist_ok=True)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    ensure_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=part_prefix(path.name), suffix=PART_SUFFIX,
                                    dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def remove_stale_parts(folder: Path) -> int:
    """Remove, under `folder`, the temporary files of processes that no longer run."""
    removed = 0
    if not folder.is_dir():
        return removed
    for root, _, files in os.walk(folder):
        for name in files:
            if not (name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)):
                continue
            pid = name[len(PART_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not _running(int(pid)):
                Path(root, name).unlink(missing_ok=True)
                removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_dir(path: Path) -> Path:
    """Create `path` (mode 0700) if missing and tighten it if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
