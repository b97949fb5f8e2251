"""Measure how long planning a large batch takes and print it (python benchmarks/bench_planning.py).

10,000 small photos in 100 folders and one scene: the wall time of
`runflow-bg batch photos --scene scene.png --dry-run --local -q`, which reads, checks and hashes
every photo, asks the journal about each and prints the plan (nothing is sent). Target: < 3 s.
With --profile, the ten functions that took longest (cumulative) in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image


def make_photos(folder: Path, count: int) -> None:
    photo = Image.new("RGB", (96, 72), "white")
    for index in range(count):
        sub = folder / "photos" / f"shelf{index // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        photo.putpixel((48, 36), (index % 256, index // 256 % 256, 90))  # each photo its own
        photo.save(sub / f"p{index:05d}.png")
    Image.new("RGB", (200, 150), (70, 110, 150)).save(folder / "scene.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    installed = shutil.which("runflow-bg")
    cli = [installed] if installed else [sys.executable, "-m", "runflow_bg"]
    argv = ["batch", "photos", "--scene", "scene.png", "--dry-run", "--local", "-q", "-o", "out"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_photos(folder, args.photos)
        env = {**os.environ, "RUNFLOW_BG_HOME": str(folder / "home")}
        env.pop("RUNFLOW_API_KEY", None)
        started = time.perf_counter()
        subprocess.run(cli + argv, env=env, cwd=folder, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        print(f"planning {args.photos:,} photos (--dry-run): {wall:.2f} s "
              f"({wall / args.photos * 1000:.2f} ms a photo; target < 3 s)")
        if args.profile:
            _profile(argv, env, folder)


def _profile(argv: list[str], env: dict, folder: Path) -> None:
    from runflow_bg.cli.app import app

    os.environ.update(env)
    os.chdir(folder)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            app(argv, prog_name="runflow-bg", standalone_mode=False)
    finally:
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    print(out.getvalue())


if __name__ == "__main__":
    main()
