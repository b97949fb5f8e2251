"""Measure runflow-bg's own costs and print them (run by hand: python benchmarks/bench_cli.py).

Figures, all from one run so that ratios compare like with like:
- overhead of `replace --local` against an emulator whose runs take 2.0 s (wall time - 2.0 s);
- start-up: the wall time of `runflow-bg --version`, of `runflow-bg --help` and of a completion
  request (bash, `runflow-bg replace --o<TAB>`), each / `python -c "import typer"` wall time.
Targets: overhead < 0.8 s; start-up ratios < 1.5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

RUN_SECONDS = 2.0


def wall_time(argv: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def median_of(repeats: int, argv: list[str], env: dict, cwd: Path) -> float:
    return statistics.median(wall_time(argv, env, cwd) for _ in range(repeats))


def make_inputs(folder: Path) -> None:
    photo = Image.new("RGB", (1200, 1600), "white")
    photo.paste((180, 40, 40), (300, 300, 900, 1400))
    photo.save(folder / "photo.png")
    Image.new("RGB", (2048, 1365), (60, 110, 150)).save(folder / "scene.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    installed = shutil.which("runflow-bg")
    cli = [installed] if installed else [sys.executable, "-m", "runflow_bg"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_inputs(folder)
        env = dict(os.environ, RUNFLOW_BG_HOME=str(folder / "home"), NO_COLOR="1",
                   RUNFLOW_BG_LOCAL_RUN_SECONDS=str(RUN_SECONDS))
        env.pop("RUNFLOW_API_KEY", None)

        replace = cli + ["replace", "--local", "photo.png", "scene.jpg", "--overwrite", "-q"]
        wall_time(replace, env, folder)  # warm the disk cache
        replace_wall = median_of(max(3, args.repeats // 2), replace, env, folder)

        completion_env = dict(env, _RUNFLOW_BG_COMPLETE="complete_bash",
                              COMP_WORDS="runflow-bg replace --o", COMP_CWORD="2")
        typer_times, version_times, help_times, completion_times = [], [], [], []
        for _ in range(args.repeats * 3):
            typer_times.append(wall_time([sys.executable, "-c", "import typer"], env, folder))
            version_times.append(wall_time(cli + ["--version"], env, folder))
            help_times.append(wall_time(cli + ["--help"], env, folder))
            completion_times.append(wall_time(cli, completion_env, folder))
        typer_wall = statistics.median(typer_times)
        version_wall = statistics.median(version_times)
        help_wall = statistics.median(help_times)
        completion_wall = statistics.median(completion_times)

    print(f"replace --local (runs take {RUN_SECONDS:.1f} s): {replace_wall:.3f} s wall, "
          f"overhead {replace_wall - RUN_SECONDS:.3f} s (target < 0.8 s)")
    print(f"python -c 'import typer': {typer_wall * 1000:.1f} ms")
    for label, wall in (("runflow-bg --version:", version_wall),
                        ("runflow-bg --help:", help_wall),
                        ("completion request:", completion_wall)):
        print(f"{label:<26} {wall * 1000:.1f} ms, ratio {wall / typer_wall:.2f} (target < 1.5)")


if __name__ == "__main__":
    main()
