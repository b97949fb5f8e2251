"""Peak memory of `replace --local` on a large photo (python benchmarks/bench_memory.py).

Two photos of about 36 MB on disk, 4000 x 3000 px of noise (which does not compress): a PNG
and a JPEG at quality 97. Each runs through `runflow-bg replace --local` as a process of its
own, with the built-in emulator in it as always, and its peak resident memory (ru_maxrss)
is printed beside that of the same command on a small photo (what the interpreter and the
libraries take anyway) and of `--dry-run` on the large one. Target: below 100 MB.

The photos are made by a process of their own: on Linux a child's peak counts the memory of
the parent it was forked from, so the parent stays small.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from measured import run_measured



def make_inputs(folder: Path) -> None:
    from PIL import Image

    width, height = 4000, 3000
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    noise.save(folder / "large.png", compress_level=1)
    noise.save(folder / "large.jpg", quality=97, subsampling=0)
    small = Image.new("RGB", (800, 600), "white")
    small.paste((40, 90, 160), (200, 150, 600, 500))
    small.save(folder / "small.png")
    Image.new("RGB", (2048, 1365), (70, 110, 150)).save(folder / "scene.jpg", quality=90)


def peak_mb(folder: Path, *args: str) -> float:
    env = dict(os.environ, RUNFLOW_BG_HOME=str(folder / "home"), RUNFLOW_BG_LOCAL_RUN_SECONDS="0",
               NO_COLOR="1")
    done, _, peak = run_measured(list(args), env, folder)
    if done.returncode:
        raise SystemExit(f"runflow-bg {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return peak


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, __file__, "--make", tmp], check=True)
        print(f"{'command':<44} {'on disk KB':>10} {'peak MB':>8}")
        runs = [("replace --local, small photo", "small.png", ["--local"]),
                ("replace --dry-run, large PNG", "large.png", ["--dry-run"]),
                ("replace --local, large PNG (target < 100)", "large.png", ["--local"]),
                ("replace --local, large JPEG (target < 100)", "large.jpg", ["--local"])]
        for label, photo, flags in runs:
            size = (folder / photo).stat().st_size / 1024
            peak = peak_mb(folder, "replace", *flags, photo, "scene.jpg", "-o", "out",
                           "--overwrite", "--no-cache", "-q")
            print(f"{label:<44} {size:>10,.0f} {peak:>8.0f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make"]:
        make_inputs(Path(sys.argv[2]))
    else:
        main()
