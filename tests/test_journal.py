"""The journal under a batch's threads: rows as written are rows as read, and many threads
writing at once lose nothing (each thread borrows a connection; SQLite orders the writes)."""

from __future__ import annotations

import threading

import pytest

from runflow_bg.journal import (CREATING, PENDING, SUBMITTED, SUCCEEDED, Journal, JournalError,
                                Request)


def request(item: str, content: str = "hash") -> Request:
    return Request(content_hash=content, job="job", item=item, photo=f"{item}.png",
                   scene="scene.jpg", prompt=None, out_dir="out", name_template="{stem}.{ext}")


def test_a_new_item_is_claimed_as_it_reads_back(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    odd = "caf\udce9"  # a file name's undecodable byte, kept as an escape
    claimed = journal.claim(request(odd), "ref-1")
    assert claimed == journal.by_client_ref("ref-1")
    assert claimed.status == PENDING and claimed.owned_by == journal.owner
    assert claimed.photo == "caf\\xe9.png"


def test_an_unfinished_row_is_taken_over_as_it_reads_back(tmp_path):
    first = Journal(tmp_path / "journal.sqlite3")
    first.claim(request("mug"), "ref-1")
    first.record_sending("ref-1")
    first.close()
    second = Journal(tmp_path / "journal.sqlite3")  # the same process: no other live owner
    taken = second.claim(request("mug"), "ref-2")
    assert taken.client_ref == "ref-1" and taken.status == CREATING
    assert taken == second.by_client_ref("ref-1")
    assert second.claim(request("mug", content="other"), "ref-3").client_ref == "ref-3"


def test_threads_writing_at_once_lose_nothing(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    start = threading.Barrier(16)
    failures = []

    def work(worker: int) -> None:
        start.wait()
        try:
            for n in range(20):
                ref = f"ref-{worker}-{n}"
                assert journal.claim(request(f"{worker}-{n}"), ref).client_ref == ref
                journal.record_sending(ref)
                journal.record_run(ref, f"run-{worker}-{n}")
                journal.record_finish(ref, SUCCEEDED, [f"out/{worker}-{n}.webp"], run_seconds=1.0)
        except Exception as exc:  # reported below, with the thread's own traceback lost
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    latest = journal.latest_by_item("job")
    assert len(latest) == 320
    assert {entry.status for entry in latest.values()} == {SUCCEEDED}
    assert all(entry.run_id == "run-" + entry.item for entry in latest.values())
    assert journal.by_run_id("run-3-7").outputs == ("out/3-7.webp",)
    assert SUBMITTED not in {entry.status for entry in latest.values()}


def test_writes_nothing_waits_for_are_read_back_and_kept_by_close(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.claim(request("mug"), "ref-1")
    journal.record_sending("ref-1")
    journal.record_run("ref-1", "run-1")  # queued for the journal's own thread
    assert journal.by_run_id("run-1").status == SUBMITTED  # a read waits for it
    journal.record_finish("ref-1", SUCCEEDED, ["out/mug.webp"], run_seconds=2.5)
    journal.close()  # and so does close
    again = Journal(tmp_path / "journal.sqlite3")
    assert again.by_client_ref("ref-1").outputs == ("out/mug.webp",)
    assert again.recent_run_seconds() == [2.5]


def test_a_queued_write_that_fails_is_raised_by_the_next_read(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.claim(request("mug"), "ref-1")
    journal.record_run("ref-1", "run-1")
    journal.by_client_ref("ref-1")  # the writer's connection is open from here on
    journal._later_db.execute("PRAGMA query_only=ON")  # its next write fails
    journal.record_finish("ref-1", SUCCEEDED, ["out/mug.webp"])
    with pytest.raises(JournalError, match="Cannot write the journal"):
        journal.by_client_ref("ref-1")
    assert journal.by_client_ref("ref-1").status == SUBMITTED  # raised once; the row as it was
