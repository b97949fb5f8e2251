"""The Python API: the CLI's use cases from Python, against the emulator over real sockets."""

from __future__ import annotations

import pytest

from helpers import KEY, QuickClock, write_photo
from runflow_bg import Runflow
from runflow_bg.choices import DeliveryChoice
from runflow_bg.errors import AuthError, ExitCode, InputError, RunFailed, UsageError


@pytest.fixture
def rf(emu, isolated_env):
    """A Runflow pointed at the emulator, its state in the test's folder, waits that skip."""
    return Runflow(KEY, base_url=emu.base_url, home=isolated_env, environ={},
                   clock=QuickClock())


def test_replace_saves_the_result_and_reports_progress(rf, emu, work):
    events = []
    done = rf.replace(work / "bottle.png", work / "marble.jpg", out=work / "out",
                      on_progress=events.append)
    assert [p.name for p in done.paths] == ["bottle-bg.webp"]
    assert done.paths[0].is_file() and done.error is None
    assert done.run.status == "succeeded" and emu.created_run_count == 1
    kinds = {event.kind for event in events}
    assert {"stage", "status", "saved"} <= kinds
    assert events[-1].kind == "saved" and events[-1].path == str(done.paths[0])
    assert any(e.kind == "status" and e.run.id == done.run.id for e in events)


def test_the_same_request_again_is_not_paid_twice(rf, emu, work):
    first = rf.replace(work / "bottle.png", work / "marble.jpg", out=work / "out")
    again = rf.replace(work / "bottle.png", work / "marble.jpg", out=work / "out")
    assert emu.created_run_count == 1
    assert again.skipped and again.paths == first.paths


def test_the_cli_and_python_share_one_journal(rf, emu, work, env):
    from helpers import run_cli

    rf.replace(work / "bottle.png", work / "marble.jpg", out=work / "out")
    result = run_cli("replace", "bottle.png", "marble.jpg", "-o", "out", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert "already done" in result.stderr.decode() and emu.created_run_count == 1


def test_delivery_and_options_as_keywords(rf, work):
    done = rf.replace(work / "bottle.png", work / "marble.jpg", out=work / "out",
                      name="{stem}-{scene}.{ext}", metadata={"sku": "B-1"},
                      delivery=DeliveryChoice(format="jpg", max_side=64))
    from PIL import Image

    assert done.paths[0].name == "bottle-marble.jpg"
    with Image.open(done.paths[0]) as image:
        assert image.format == "JPEG" and max(image.size) <= 64


def test_submit_then_wait_for_the_run(rf, emu, work):
    submitted = rf.replace(work / "bottle.png", work / "marble.jpg", wait=False)
    assert submitted.run.id and not submitted.paths
    done = rf.wait(submitted.run.id, out=work / "later", timeout=60)
    assert [p.parent for p in done.paths] == [work / "later"]
    assert rf.get_run(submitted.run.id).run.status == "succeeded"
    assert [o.run.id for o in rf.list_runs(limit=5)] == [submitted.run.id]
    assert emu.created_run_count == 1


def test_a_failed_run_raises_its_error(rf, emu, work):
    emu.faults.fail_runs(1, code="MODEL_ERROR", message="model crashed")
    with pytest.raises(RunFailed) as caught:
        rf.replace(work / "bottle.png", work / "marble.jpg", out=work / "out")
    assert caught.value.exit_code == ExitCode.RUN_FAILED
    assert "model crashed" in caught.value.message and caught.value.run_id


def test_bad_input_raises_before_anything_is_sent(rf, emu, work):
    (work / "broken.png").write_bytes(b"not an image")
    with pytest.raises(InputError) as caught:
        rf.replace(work / "broken.png", work / "marble.jpg")
    assert "broken.png" in caught.value.message and caught.value.exit_code == 4
    assert emu.requests == []
    with pytest.raises(UsageError, match="Missing PHOTO or SCENE"):
        rf.replace(work / "bottle.png")
    with pytest.raises(UsageError, match="--format"):
        rf.replace(work / "bottle.png", work / "marble.jpg", delivery=DeliveryChoice(format="gif"))
    assert emu.created_run_count == 0


def test_no_key_is_an_auth_error(isolated_env, emu, work):
    rf = Runflow(base_url=emu.base_url, home=isolated_env, environ={})
    with pytest.raises(AuthError) as caught:
        rf.replace(work / "bottle.png", work / "marble.jpg")
    assert caught.value.exit_code == ExitCode.AUTH and emu.created_run_count == 0


def test_the_key_comes_from_the_environment_given(isolated_env, emu, work):
    rf = Runflow(environ={"RUNFLOW_API_KEY": KEY, "RUNFLOW_BASE_URL": emu.base_url,
                          "RUNFLOW_BG_HOME": str(isolated_env)}, clock=QuickClock())
    assert rf.replace(work / "bottle.png", work / "marble.jpg", out=work / "o").paths


def test_local_runs_need_no_key(isolated_env, work):
    rf = Runflow(home=isolated_env, environ={}, clock=QuickClock())
    done = rf.replace(work / "bottle.png", work / "marble.jpg", out=work / "out", local=True)
    assert done.paths[0].is_file()


def test_preview_sends_nothing(rf, emu, work):
    summary = rf.preview_replace(work / "bottle.png", work / "marble.jpg", prompt="on oak")
    assert summary["dry_run"] and summary["input"]["prompt"] == "on oak"
    assert summary["estimated_cost"] == "0.35" and emu.requests == []


def test_a_progress_object_with_reporter_methods_is_used_as_is(rf, work):
    class Lines:
        def __init__(self):
            self.saved = []

        def on_stage(self, message): pass
        def on_notice(self, message): pass
        def on_status(self, run, elapsed): pass
        def on_bytes(self, label, done, total): pass
        def on_saved(self, path): self.saved.append(path)

    lines = Lines()
    done = Runflow(KEY, base_url=rf.settings.base_url, environ=rf.settings.environ,
                   on_progress=lines, clock=QuickClock()).replace(
        work / "bottle.png", work / "marble.jpg", out=work / "out")
    assert lines.saved == [str(done.paths[0])]


def test_download_of_an_unfinished_run_raises(rf, emu, work):
    emu.run_seconds = 30
    submitted = rf.replace(work / "bottle.png", work / "marble.jpg", wait=False)
    with pytest.raises(InputError) as caught:
        rf.download(submitted.run.id, out=work / "out")
    assert submitted.run.id in caught.value.message


def test_inputs_of_other_sizes(rf, work):
    write_photo(work / "wide.png", size=(400, 100))
    done = rf.replace(str(work / "wide.png"), str(work / "marble.jpg"), out=str(work / "out"))
    assert done.paths[0].name == "wide-bg.webp"
