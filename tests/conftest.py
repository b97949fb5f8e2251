"""Isolation for every test: state in a temp dir, no real key, no colour, nothing sleeps long."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    home = tmp_path / "rfbg-home"
    monkeypatch.setenv("RUNFLOW_BG_HOME", str(home))
    for name in ("RUNFLOW_API_KEY", "RUNFLOW_BASE_URL", "RUNFLOW_WEBHOOK_SECRET",
                 "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    return home
