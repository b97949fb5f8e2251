"""Isolation for every test: state in a temp dir, no real key, no colour, nothing sleeps long."""

from __future__ import annotations

import pytest

from helpers import KEY, cli_env, write_photo, write_scene
from runflow_bg.emulator import Emulator


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    home = tmp_path / "rfbg-home"
    monkeypatch.setenv("RUNFLOW_BG_HOME", str(home))
    for name in ("RUNFLOW_API_KEY", "RUNFLOW_BASE_URL", "RUNFLOW_WEBHOOK_SECRET",
                 "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "CI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    return home


@pytest.fixture
def emu():
    """The built-in emulator on an ephemeral loopback port, with quick runs."""
    with Emulator(api_key=KEY, run_seconds=0.3) as server:
        yield server


@pytest.fixture
def work(tmp_path):
    """A folder with a product photo and a scene in it."""
    write_photo(tmp_path / "bottle.png")
    write_scene(tmp_path / "marble.jpg")
    return tmp_path


@pytest.fixture
def env(emu, isolated_env):
    """The environment of a CLI process pointed at the emulator with its key."""
    return cli_env(emu.base_url, isolated_env)
