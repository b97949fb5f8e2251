"""A batch's threads kept to one core while they work, and the caller's cores given back."""

from __future__ import annotations

import os
import threading

import pytest

from runflow_bg.cores import one_core

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and at least two cores")


def test_threads_started_inside_share_one_core_and_the_caller_gets_its_cores_back():
    before = os.sched_getaffinity(0)
    seen = []
    with one_core():
        inside = os.sched_getaffinity(0)
        worker = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        worker.start()
        worker.join()
    assert len(inside) == 1 and inside <= before
    assert seen == [inside]
    assert os.sched_getaffinity(0) == before


def test_the_cores_come_back_after_an_error():
    before = os.sched_getaffinity(0)
    with pytest.raises(KeyboardInterrupt), one_core():
        raise KeyboardInterrupt
    assert os.sched_getaffinity(0) == before
