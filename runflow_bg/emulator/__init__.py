"""A Runflow-compatible API server on loopback, with fault knobs, for free offline runs and tests."""

from runflow_bg.emulator.app import Emulator
from runflow_bg.emulator.faults import Faults

__all__ = ["Emulator", "Faults"]
