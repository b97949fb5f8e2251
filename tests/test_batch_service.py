"""The batch use case in-process: collection, sharding, concurrency and the 429 gate."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from helpers import KEY, write_photo, write_scene
from runflow_bg.client import RunflowClient
from runflow_bg.emulator import Emulator
from runflow_bg.errors import UsageError
from runflow_bg.images import prepare_image, read_input
from runflow_bg.journal import Journal
from runflow_bg.transport import RetryPolicy
from runflow_bg.service.batch import BatchRunner
from runflow_bg.service import batch_plan
from runflow_bg.service.batch_plan import Action, BatchOptions, plan_batch
from runflow_bg.service.collect import (collect_photos, drop_earlier_outputs, pair_with_scenes,
                                        parse_shard, take_shard)
from runflow_bg.service.manifest import to_photo
from runflow_bg.service.replace import ReplaceOptions
from runflow_bg.polling import PollSchedule


def tree(root: Path) -> None:
    for rel in ("a/x.png", "a/y.jpg", "a/sub/z.webp", "b/x.png", ".hidden/h.png", "a/.h.png"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_photo(path, size=(32, 24), fmt={"jpg": "JPEG", "webp": "WEBP"}.get(rel[-3:]))
    (root / "a" / "notes.txt").write_text("not a photo")


def test_collect_recurses_folders_skips_hidden_and_non_images(tmp_path):
    tree(tmp_path)
    photos = collect_photos([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path)
    keys = [p.key for p in photos]
    assert [p.path.name for p in photos] == ["z.webp", "x.png", "y.jpg", "x.png"]
    assert len(set(keys)) == 4 and "a/x" in keys and "b/x" in keys and "a/sub/z" in keys


def test_collect_dedupes_and_expands_globs(tmp_path):
    tree(tmp_path)
    photos = collect_photos([str(tmp_path / "a/x.png"), str(tmp_path / "a/*.png"),
                             str(tmp_path / "**/z.webp")], tmp_path)
    assert sorted(p.key for p in photos) == ["a/sub/z", "a/x"]


def test_collect_refuses_two_photos_with_one_output_name(tmp_path):
    (tmp_path / "p").mkdir()
    write_photo(tmp_path / "p" / "same.png")
    write_photo(tmp_path / "p" / "same.jpg", fmt="JPEG")
    with pytest.raises(UsageError, match="same name"):
        collect_photos([str(tmp_path / "p")], tmp_path)


def test_one_scene_keeps_the_keys_several_pair_every_photo(tmp_path):
    tree(tmp_path)
    photos = collect_photos([str(tmp_path / "a")], tmp_path)
    assert pair_with_scenes(photos, ["s/one.jpg"]) == photos, "earlier journals still resume"
    pairs = pair_with_scenes(photos, ["s/one.jpg", "s/two.jpg"])
    assert [(p.path.name, p.scene) for p in pairs[:2]] == [("z.webp", "s/one.jpg"),
                                                           ("z.webp", "s/two.jpg")]
    assert len(pairs) == 6 and len({p.key for p in pairs}) == 6
    assert {p.key for p in photos}.isdisjoint(p.key for p in pairs)

    row = to_photo(2, {"photo": "x.png", "sku": "X"})
    own = to_photo(2, {"photo": "x.png", "scene": "s/two.jpg", "sku": "X"})
    assert pair_with_scenes([own], ["s/one.jpg", "s/two.jpg"]) == [own], "its own scene wins"
    paired = pair_with_scenes([row], ["s/one.jpg", "s/two.jpg"])
    assert paired[1].key == own.key, "a results row naming its scene is the same request"


def test_earlier_outputs_in_every_scene_are_left_out(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("mug.png", "mug-beach-bg.png", "mug-loft-bg.webp"):
        write_photo(tmp_path / "in" / name, size=(32, 24))
    photos = collect_photos([str(tmp_path / "in")], tmp_path)
    kept, excluded = drop_earlier_outputs(photos, set(), tmp_path, "{stem}-{scene}-bg{n}.{ext}",
                                          ["beach", "loft"])
    assert [p.path.name for p in kept] == ["mug.png"] and excluded == 2


def test_a_photo_is_read_once_however_many_scenes(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    write_photo(tmp_path / "in" / "mug.png", size=(40, 30))
    scenes = {}
    for name in ("a", "b", "c"):
        source = read_input(str(write_scene(tmp_path / f"{name}.jpg", color=(40, 90, 20 * len(scenes)))))
        scenes[source.name] = (prepare_image(source), source)
    reads = []

    def counted(name, stdin=None):
        reads.append(name)
        return read_input(name, stdin)

    monkeypatch.setattr(batch_plan, "read_input", counted)
    photos = pair_with_scenes(collect_photos([str(tmp_path / "in")], tmp_path), list(scenes))
    options = BatchOptions(ReplaceOptions(out_dir=tmp_path / "out",
                                          name_template="{stem}-{scene}{n}.{ext}"))
    plan = plan_batch(photos, None, None, Journal(tmp_path / "journal.sqlite3"), options, scenes)
    assert plan.count(Action.SUBMIT) == 3 and plan.matrix() == (1, 3)
    assert len({item.content_hash for item in plan.items}) == 3
    assert reads == [str(tmp_path / "in" / "mug.png")]


def test_shards_partition_the_items(tmp_path):
    items = list(range(10))
    shards = [take_shard(items, parse_shard(f"{k}/3")) for k in (1, 2, 3)]
    assert sorted(sum(shards, [])) == items
    assert all(not set(a) & set(b) for a in shards for b in shards if a is not b)
    for bad in ("0/3", "4/3", "x", "1-3"):
        with pytest.raises(UsageError):
            parse_shard(bad)


class Events:
    """A reporter that measures how many runs are in flight at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = set()
        self.peak = 0

    def on_stage(self, message):
        if " run " in message and message.endswith(" queued"):
            with self.lock:
                self.in_flight.add(message.split(":")[0])
                self.peak = max(self.peak, len(self.in_flight))

    def on_notice(self, message):
        pass

    def on_status(self, run, elapsed):
        pass

    def on_bytes(self, label, done, total):
        pass

    def on_saved(self, path):
        with self.lock:
            self.in_flight.discard(next((p for p in self.in_flight if Path(p).stem in path), None))


def run_batch(tmp_path, emu, count, *, concurrency, retry=None):
    (tmp_path / "in").mkdir()
    for index in range(count):
        write_photo(tmp_path / "in" / f"p{index}.png", size=(40, 30), color=(index * 9, 40, 90))
    scene_source = read_input(str(write_scene(tmp_path / "scene.jpg")))
    photos = collect_photos([str(tmp_path / "in")], tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    request = ReplaceOptions(out_dir=tmp_path / "out", poll=PollSchedule(fixed=0.05))
    options = BatchOptions(request, concurrency=concurrency)
    plan = plan_batch(photos, prepare_image(scene_source), scene_source, journal, options)
    assert plan.count(Action.SUBMIT) == count
    events = Events()
    policy = retry or RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, jitter=0)
    with RunflowClient(KEY, emu.base_url, retry=policy) as client:
        result = BatchRunner(plan, client, journal, options, events, lambda item, o: None).run()
    return result, events


def test_at_most_j_runs_in_flight(tmp_path):
    with Emulator(api_key=KEY, run_seconds=0.3) as emu:
        result, events = run_batch(tmp_path, emu, 9, concurrency=3)
    assert result.count("succeeded") == 9 and result.runs_created == 9
    assert 2 <= events.peak <= 3


def test_rate_limits_slow_submission_down_instead_of_failing(tmp_path):
    with Emulator(api_key=KEY, run_seconds=0.1) as emu:
        emu.faults.fail_next("run_create", 429, count=8)
        result, _ = run_batch(tmp_path, emu, 4, concurrency=2,
                              retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, jitter=0))
        assert result.count("failed") == 0 and result.count("succeeded") == 4
        assert emu.created_run_count == 4 and result.runs_created == 4
