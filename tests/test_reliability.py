"""Runs the reliability and security suite (tests/reliability.py) as part of the test suite."""

from __future__ import annotations

import pytest

from reliability import SCENARIOS, run_scenario


@pytest.mark.parametrize("entry", SCENARIOS, ids=[entry.name for entry in SCENARIOS])
def test_scenario(entry):
    observed, ok = run_scenario(entry)
    assert ok, f"expected {entry.expected}; observed {observed}"
