"""What a user installing from a package index gets: the samples, the licence, typed code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from PIL import Image

from helpers import cli_env, run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_samples_writes_the_photo_and_scene_to_try_local_with(work, isolated_env):
    env = cli_env(None, isolated_env, key=None, RUNFLOW_BG_LOCAL_RUN_SECONDS="0")
    result = run_cli("samples", "-o", "try", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["try/bottle.png", "try/marble.jpg"]
    assert Image.open(work / "try" / "bottle.png").size == (600, 800)
    local = run_cli("replace", "--local", "try/bottle.png", "try/marble.jpg", "-o", "try",
                    env=env, cwd=work)
    assert local.returncode == 0 and local.stdout == b"try/bottle-bg.webp\n"
    again = run_cli("samples", "-o", "try", env=env, cwd=work)
    assert again.returncode == 4 and "already exist" in again.stderr.decode()


def test_the_wheel_carries_the_samples_the_licence_and_py_typed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, timeout=120)
    wheel = next(tmp_path.glob("runflow_bg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("runflow_bg/samples/bottle.png", "runflow_bg/samples/marble.jpg",
                   "runflow_bg/py.typed"):
        assert needed in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: MIT" in metadata and "Classifier: Environment :: Console" in metadata
    assert "Project-URL:" in metadata
    assert not any(name.startswith(("out/", "tests/")) for name in names)


def test_what_the_readme_creates_is_ignored_by_git():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "out/" in ignored and ".venv/" in ignored
