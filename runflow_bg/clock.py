"""The one clock of an invocation: every wait goes through it, so a stop cuts it short.

Retry backoffs, Retry-After pauses and poll intervals all sleep here. A batch stops its clock on
Ctrl-C and every worker's wait ends at once; tests hand in a clock that does not really sleep.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Monotonic time and interruptible sleeps."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`; KeyboardInterrupt at once if the clock is (or gets) stopped."""
        if self._stopped.wait(max(0.0, seconds)):
            raise KeyboardInterrupt

    def stop(self) -> None:
        """End every current and future sleep: the process is winding down."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()
