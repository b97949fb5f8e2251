"""A batch's worker threads kept to one CPU core while they work.

Their work is mostly Python, which runs one thread at a time (the GIL). Spread over several
cores, each hand-over of the GIL between threads (at every short system call: a socket read, a
stat, a SQLite step) wakes a thread on another core. At `-j 64` on two cores that made ten
times the context switches (315,000 against 35,000 for the throughput batch of
`benchmarks/bench_batch.py`, counted by `perf stat`) and a third more CPU time than on one core,
where a thread keeps running through its short calls.
Linux only (sched_setaffinity); elsewhere nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_core() -> Iterator[None]:
    """Threads started inside run on one core, the one the calling thread last ran on (the
    scheduler's choice, so two batches at once are likely apart); the calling thread gets its
    cores back at the end."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not Linux
        allowed = set()
    core = _last_core(allowed) if len(allowed) > 1 else None
    if core is None:
        yield
        return
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        yield
        return
    try:
        yield
    finally:
        try:
            os.sched_setaffinity(0, allowed)
        except OSError:
            pass


def _last_core(allowed: set[int]) -> int | None:
    """The core this thread last ran on (field 39 of /proc/thread-self/stat), if allowed."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            core = int(stat.read().rsplit(b")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return min(allowed)
    return core if core in allowed else min(allowed)
