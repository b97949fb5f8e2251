"""`runflow-bg samples`: the sample photo and scene that ship with the tool, to try it at once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

SAMPLES = ("bottle.png", "marble.jpg")


def samples(
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(None, "-o", "--out", metavar="DIR",
                                       help="Where to write them (default: current directory)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files of the same name."),
) -> None:
    """Write the sample photo and scene, then try: runflow-bg replace --local bottle.png marble.jpg"""
    from importlib.resources import files

    from runflow_bg.errors import InputError
    from runflow_bg.fsutil import atomic_write_bytes, umask_mode

    folder = out or Path(".")
    targets = [folder / name for name in SAMPLES]
    taken = [str(path) for path in targets if path.exists() and not overwrite]
    if taken:
        raise InputError(f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}.",
                         hint="Add --overwrite, or choose another folder with -o.")
    package = files("runflow_bg") / "samples"
    for name, target in zip(SAMPLES, targets):
        atomic_write_bytes(target, (package / name).read_bytes(), umask_mode())
    terminal = ctx.obj.terminal
    terminal.out_lines([str(path) for path in targets])
    terminal.say(f"Try: runflow-bg replace --local {targets[0]} {targets[1]}")
