"""The poll schedule: its bounds, the deadline, what it learns from the journal, a fixed interval."""

from __future__ import annotations

import math
import random
import sqlite3

import pytest

from helpers import KEY, FakeClock, QuickClock, write_photo, write_scene
from runflow_bg.client import RunflowClient
from runflow_bg.emulator import Emulator
from runflow_bg.errors import WaitTimeout
from runflow_bg.journal import SUCCEEDED, Journal, Request
from runflow_bg.models import Run
from runflow_bg.polling import FIRST, GROWTH, LONGEST, SHORTEST, PollSchedule, wait_for_run
from runflow_bg.service.inputs import replace_inputs
from runflow_bg.service.replace import ReplaceOptions, replace

SPREADS = {"none": [], "2 s": [2.0] * 20, "about 40 s": [40 * (0.9 + 0.01 * i) for i in range(20)],
           "20-100 s": [20 + 80 * i / 49 for i in range(50)]}


def polls(schedule: PollSchedule, ends_after: float) -> list[float]:
    """When each poll happens (seconds into the wait) for a run that ends after `ends_after`."""
    clock = FakeClock()
    times = []

    def get_run(run_id: str) -> Run:
        times.append(clock.now())
        return Run(run_id, "succeeded" if clock.now() >= ends_after else "running")

    wait_for_run(get_run, Run("r", "queued"), deadline=None, schedule=schedule, clock=clock)
    return times


@pytest.mark.parametrize("spread", SPREADS)
def test_each_wait_is_within_its_bounds(spread):
    times = polls(PollSchedule().learn(SPREADS[spread]), ends_after=600)
    waits = [b - a for a, b in zip([0.0] + times, times)]
    assert waits[0] == FIRST, "the first look comes at once"
    assert all(SHORTEST - 1e-9 <= wait <= LONGEST + 1e-9 for wait in waits)
    assert all(wait <= max(FIRST, GROWTH * waited) + 1e-9
               for waited, wait in zip([0.0] + times, waits))
    assert waits[-10:] == [pytest.approx(LONGEST)] * 10, "a run slower than all others: every 10 s"


def test_a_deadline_cuts_the_last_wait_short_and_ends_the_wait():
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as info:
        wait_for_run(lambda run_id: Run(run_id, "running"), Run("r", "queued"), deadline=25,
                     schedule=PollSchedule(), clock=clock)
    assert clock.time == 25 and sum(clock.sleeps) == 25
    assert "runflow-bg runs wait r" in info.value.hint


def test_history_puts_the_polls_around_the_usual_finish():
    usual = PollSchedule().learn(SPREADS["about 40 s"])  # 36-43 s
    ends = [36 + 0.25 * step for step in range(29)]
    lateness = {"with": [], "without": []}
    for ends_after in ends:
        times = polls(usual, ends_after)
        lateness["with"].append(times[-1] - ends_after)
        lateness["without"].append(polls(PollSchedule(), ends_after)[-1] - ends_after)
        assert len([t for t in times if t < 25]) <= 7, "few polls while the run is far from done"
    mean = {key: sum(values) / len(values) for key, values in lateness.items()}
    assert max(lateness["with"]) <= 1.0 and mean["with"] <= 0.5
    assert mean["with"] < mean["without"]


def test_runs_that_all_took_2_s_are_seen_within_a_quarter_second():
    schedule = PollSchedule().learn(SPREADS["2 s"])
    assert polls(schedule, 2.0)[-1] - 2.0 <= SHORTEST


def test_a_run_costs_fewer_polls_than_polling_every_2_s_and_is_seen_sooner():
    rng = random.Random(5)
    typical = 60.0
    history = [typical * math.exp(rng.gauss(0, 0.12)) for _ in range(50)]
    runs = [typical * math.exp(rng.gauss(0, 0.12)) for _ in range(40)]
    schedule = PollSchedule().learn(history)
    ours = [polls(schedule, seconds) for seconds in runs]
    sdk_polls = [1 + math.ceil(seconds / 2) for seconds in runs]  # a read at once, then every 2 s
    assert sum(map(len, ours)) <= sum(sdk_polls)
    lateness = [times[-1] - seconds for times, seconds in zip(ours, runs)]
    assert sum(lateness) / len(lateness) <= 0.5


def test_a_fixed_interval_wins_over_history():
    fixed = PollSchedule(fixed=3)
    assert fixed.learn([40.0] * 10) == fixed
    clock = FakeClock()
    with pytest.raises(WaitTimeout):
        wait_for_run(lambda run_id: Run(run_id, "running"), Run("r", "queued"), deadline=10,
                     schedule=fixed.learn([40.0] * 10), clock=clock)
    assert clock.sleeps == [3, 3, 3, 1]


def test_an_unknown_status_is_waited_on():
    reads = iter(["warming", "succeeded"])
    run = wait_for_run(lambda run_id: Run(run_id, next(reads)), Run("r", "mystery"), deadline=60,
                       schedule=PollSchedule(), clock=FakeClock())
    assert run.status == "succeeded"


# -- what the journal knows -------------------------------------------------------------------

def remember(journal: Journal, seconds: list[float | None]) -> None:
    for number, took in enumerate(seconds):
        request = Request(f"hash-{number}", "replace", f"item-{number}", "p.png", "s.jpg", None,
                          "out", "{stem}")
        journal.claim(request, f"ref-{number}")
        journal.record_finish(f"ref-{number}", SUCCEEDED, run_seconds=took)


def test_the_journal_keeps_how_long_runs_took_newest_first(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    remember(journal, [30.0, None, 45.5, 52.25])
    assert journal.recent_run_seconds() == [52.25, 45.5, 30.0]
    assert journal.recent_run_seconds(limit=2) == [52.25, 45.5]


def test_a_journal_from_before_durations_were_kept_gains_the_column(tmp_path):
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE requests (client_ref TEXT PRIMARY KEY, content_hash TEXT NOT NULL, "
                "job TEXT, item TEXT, photo TEXT, scene TEXT, prompt TEXT, out_dir TEXT, "
                "name_template TEXT, run_id TEXT, status TEXT NOT NULL, outputs TEXT NOT NULL "
                "DEFAULT '[]', error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
                "owner TEXT, sent_at REAL)")
    old.execute("INSERT INTO requests (client_ref, content_hash, status, created_at, updated_at) "
                "VALUES ('old', 'h', 'succeeded', 1, 1)")
    old.commit()
    old.close()
    journal = Journal(path)
    assert journal.recent_run_seconds() == []
    remember(journal, [41.0])
    assert journal.recent_run_seconds() == [41.0] and journal.by_client_ref("old").status == SUCCEEDED


class Quiet:
    def on_stage(self, message): pass

    def on_notice(self, message): pass

    def on_status(self, run, elapsed): pass

    def on_bytes(self, label, done, total): pass

    def on_saved(self, path): pass


@pytest.mark.parametrize("history,first_waits", [([40.0] * 20, (1.25, 1.3)), ([0.3] * 20, (0.5, 1.2))])
def test_a_replace_polls_by_the_journal_and_adds_its_run_to_it(tmp_path, history, first_waits):
    journal = Journal(tmp_path / "journal.sqlite3")
    remember(journal, history)
    clock = QuickClock()
    inputs = replace_inputs(str(write_photo(tmp_path / "bottle.png")),
                            str(write_scene(tmp_path / "marble.jpg")), None, Quiet())
    with Emulator(api_key=KEY, run_seconds=0.5) as emu, \
            RunflowClient(KEY, emu.base_url, clock=clock) as client:
        outcome = replace(client, journal, inputs, ReplaceOptions(out_dir=tmp_path / "out"), Quiet())
    assert outcome.error is None and outcome.saved
    shortest, longest = first_waits
    assert shortest <= sum(clock.sleeps[:3]) <= longest, "the first waits follow the runs it knows"
    assert journal.recent_run_seconds()[0] == pytest.approx(0.5, abs=0.1)


def test_a_batch_reads_the_durations_once_and_learns_from_its_own_runs(tmp_path, monkeypatch):
    """Placing polls from the history costs milliseconds: a batch reads the journal's once, and
    places them again only for its own first runs' durations (its later waves are then polled
    as their runs end)."""
    learnt = []
    original_learn = PollSchedule.learn

    def learn(self, durations):
        learnt.append(len(list(durations)))
        return original_learn(self, durations)

    monkeypatch.setattr(PollSchedule, "learn", learn)
    from helpers import cli_env, run_cli

    reads = []
    original = Journal.recent_run_seconds

    def counted(self, limit=50):
        reads.append(limit)
        return original(self, limit)

    monkeypatch.setattr(Journal, "recent_run_seconds", counted)
    for index in range(4):
        write_photo(tmp_path / f"p{index}.png", color=(40 * index, 90, 30))
    write_scene(tmp_path / "scene.png")
    with Emulator(api_key=KEY, run_seconds=0.05) as emu:
        result = run_cli("batch", "p0.png", "p1.png", "p2.png", "p3.png", "--scene", "scene.png",
                         "-o", "out", "--yes", env=cli_env(emu.base_url, tmp_path / "home"),
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 4 and len(reads) == 1
    assert learnt == [0, 1, 2, 3, 4]
