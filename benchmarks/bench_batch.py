"""Measure batch throughput and print it (run by hand: python benchmarks/bench_batch.py).

40 photos against an emulator whose runs take 1.0 s, all in one run:
- `batch -j 8` wall time divided by the ideal 5.0 s (40 runs / 8 in flight x 1.0 s); target < 1.25;
- the speed-up of that batch over a shell loop of `runflow-bg replace` over the same photos.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

RUN_SECONDS = 1.0
KEY = "rf_bench_key"


def start_emulator(cli: list[str], env: dict) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(cli + ["emulator", "--port", "0", "--run-seconds", str(RUN_SECONDS),
                                      "--key", KEY], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline().strip()
    if not line.startswith("RUNFLOW_BASE_URL="):
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, line.split("=", 1)[1]


def make_photos(folder: Path, count: int) -> None:
    (folder / "photos").mkdir()
    for index in range(count):
        photo = Image.new("RGB", (800, 600), "white")
        photo.paste((30 + index * 5, 80, 160 - index * 2), (200, 150, 600, 500))
        photo.save(folder / "photos" / f"p{index:02d}.png")
    Image.new("RGB", (1024, 768), (70, 110, 150)).save(folder / "scene.jpg", quality=90)


def timed(argv: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    installed = shutil.which("runflow-bg")
    cli = [installed] if installed else [sys.executable, "-m", "runflow_bg"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_photos(folder, args.items)
        env = dict(os.environ, RUNFLOW_BG_HOME=str(folder / "home"), NO_COLOR="1",
                   RUNFLOW_API_KEY=KEY)
        emulator, base_url = start_emulator(cli, env)
        env["RUNFLOW_BASE_URL"] = base_url
        try:
            batch_wall = timed(cli + ["batch", "photos", "--scene", "scene.jpg", "-o", "batch",
                                      "-j", str(args.jobs), "--yes", "-q"], env, folder)
            loop = ('for p in photos/*.png; do "$@" replace "$p" scene.jpg -o loop -q --no-cache '
                    '|| exit 1; done')
            loop_wall = timed(["bash", "-c", loop, "loop", *cli], env, folder)
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)
    ideal = args.items / args.jobs * RUN_SECONDS
    print(f"batch of {args.items} with -j {args.jobs} (runs take {RUN_SECONDS:.1f} s): "
          f"{batch_wall:.2f} s, {batch_wall / ideal:.2f} x the ideal {ideal:.1f} s (target < 1.25)")
    print(f"shell loop of runflow-bg replace: {loop_wall:.2f} s; batch is "
          f"{loop_wall / batch_wall:.1f} x faster")


if __name__ == "__main__":
    main()
