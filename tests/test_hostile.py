"""Against broken and hostile servers, closed pipes, signals and odd names: bounded and honest.

Rogue answers come from a small server on loopback written here; the rest from the emulator's
knobs. Real processes only where a process shows the truth: pipes, signals, the umask.
"""

from __future__ import annotations

import errno
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import KEY, cli_env, has_control_chars, run_cli, write_photo, write_scene

REPLACE = ("replace", "bottle.png", "marble.jpg")


class Rogue:
    """A loopback HTTP server whose every answer is written by `answer(handler)`."""

    def __init__(self, answer):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.requests += 1
                try:
                    answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rogue():
    servers = []

    def start(answer):
        servers.append(Rogue(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def drip(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(100000):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)


def gzip_bomb(handler):
    """About 200 KB on the wire that inflate to 200 MB of JSON whitespace."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1024 * 1024)
    for _ in range(200):
        data = packer.compress(block)
        if data:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    data = packer.flush()
    handler.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))


def endless(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b'{"id": "' + b"a" * 65536
    while True:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


# -- time and memory ----------------------------------------------------------------------------

def test_a_body_dripped_a_byte_at_a_time_is_given_up_on(rogue, work, isolated_env):
    server = rogue(drip)
    env = cli_env(server.url, isolated_env, RUNFLOW_BG_HTTP_TIMEOUT="1", RUNFLOW_BG_RETRIES="2")
    started = time.monotonic()
    result = run_cli("runs", "get", "run-1", env=env, cwd=work)
    took = time.monotonic() - started
    assert result.returncode == 5, result.stderr.decode()
    assert "timed out waiting for an answer" in result.stderr.decode()
    assert took < 15, f"gave up after {took:.1f} s; the body would take hours"


@pytest.mark.parametrize("answer", [gzip_bomb, endless], ids=["gzip bomb", "endless body"])
def test_an_oversized_answer_is_refused_not_held(rogue, work, isolated_env, answer):
    server = rogue(answer)
    env = cli_env(server.url, isolated_env, RUNFLOW_BG_RETRIES="1")
    result = run_cli("runs", "get", "run-1", env=env, cwd=work)
    assert result.returncode == 1, result.stderr.decode()
    assert "over 16 MiB; refused" in result.stderr.decode() and "Hint:" in result.stderr.decode()


def test_retry_after_cannot_outlast_the_timeout(emu, work, env):
    run_id = _finished_elsewhere(emu)
    emu.faults.fail_next("run_get", 429, count=100, retry_after="1e9")
    result = run_cli("runs", "wait", run_id, "--timeout", "10s", env=env, cwd=work)
    assert result.returncode == 5, result.stderr.decode()
    stderr = result.stderr.decode()
    assert "time allowed ran out" in stderr and run_id in stderr


def test_retries_are_announced_on_stderr(emu, work, env):
    emu.faults.fail_next("asset_create", 503, count=1)
    result = run_cli(*REPLACE, env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert "note: Runflow answered HTTP 503; retrying in" in result.stderr.decode()
    assert "attempt 2 of 2" in result.stderr.decode()


def test_an_html_page_served_as_an_output_is_not_saved(emu, work, env):
    emu.faults.fail_next("output", 200, body="<html>sign in</html>", count=10)
    result = run_cli(*REPLACE, env=env, cwd=work)
    assert result.returncode == 1, result.stderr.decode()
    assert "is not an image" in result.stderr.decode()
    assert not list(work.glob("bottle-bg*"))


def test_a_photo_with_too_many_pixels_is_refused_before_decoding(emu, work, env):
    from PIL import Image

    Image.new("L", (9000, 9000), 255).save(work / "huge.png", optimize=True)
    result = run_cli("replace", "huge.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 4 and "too many pixels to decode" in result.stderr.decode()
    assert emu.requests == []


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(emu, work, env):
    from PIL import Image

    Image.new("RGB", (9000, 6000), "white").save(work / "big.jpg", quality=70)
    result = run_cli("replace", "big.jpg", "marble.jpg", "--dry-run", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    stderr = result.stderr.decode()
    assert "preparing a large photo (54 MP)" in stderr
    assert "downscaled from 9000x6000 to 4096x2731" in stderr


# -- pipes and signals -------------------------------------------------------------------------

def _process(args, env, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "runflow_bg", *args], env=env, cwd=cwd,
                            stderr=subprocess.PIPE, **kwargs)


def test_a_closed_stdout_after_a_paid_run_exits_141_and_keeps_the_file(emu, work, env):
    read, write = os.pipe()
    os.close(read)  # nobody will ever read what the command prints
    process = _process(REPLACE, env, work, stdout=write)
    os.close(write)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 141, stderr.decode()
    assert "Traceback" not in stderr.decode() and "stdout was closed" in stderr.decode()
    assert (work / "bottle-bg.webp").is_file() and emu.created_run_count == 1


def test_batch_into_head_stops_submitting_and_exits_141(emu, env, tmp_path):
    (tmp_path / "photos").mkdir()
    for index in range(8):
        write_photo(tmp_path / "photos" / f"p{index}.png", color=(25 * index, 60, 90))
    write_scene(tmp_path / "scene.jpg")
    command = (f"{sys.executable} -m runflow_bg batch photos --scene scene.jpg -o out --yes -j 2"
               " | head -1; echo \"codes ${PIPESTATUS[*]}\"")
    done = subprocess.run(["bash", "-c", command], env=env, cwd=tmp_path, capture_output=True,
                          timeout=120)
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert stdout.endswith("codes 141 0\n"), stdout + stderr
    assert "Traceback" not in stderr and "no new run was submitted" in stderr
    assert emu.created_run_count < 8


def test_sighup_is_handled_like_sigterm(emu, work, env):
    emu.run_seconds = 60
    process = _process(REPLACE, env, work, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while emu.count("run_get") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert f"runflow-bg runs wait {emu.runs()[0]['id']}" in stderr.decode()


def test_ctrl_c_at_the_spending_prompt_exits_130(emu, env, tmp_path):
    (tmp_path / "photos").mkdir()
    for index in range(2):
        write_photo(tmp_path / "photos" / f"p{index}.png", color=(90 * index, 60, 90))
    write_scene(tmp_path / "scene.jpg")
    leader, follower = pty.openpty()
    process = _process(["batch", "photos", "--scene", "scene.jpg"], env, tmp_path,
                       stdin=follower, stdout=subprocess.PIPE)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 30
    while b"Submit up to 2 runs" not in seen and time.monotonic() < deadline:
        seen += process.stderr.read1(4096) if hasattr(process.stderr, "read1") else b""
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=30)
    os.close(leader)
    assert process.returncode == 130, (seen + rest).decode()
    assert emu.created_run_count == 0


# -- text from outside -------------------------------------------------------------------------

def test_hostile_file_names_cannot_inject_escapes_or_workflow_commands(emu, env, tmp_path):
    write_scene(tmp_path / "scene.jpg")
    (tmp_path / "::error::evil.png").write_text("not an image")
    write_photo(tmp_path / "\x1b[31mred\x07.png")
    env = {**env, "GITHUB_ACTIONS": "true"}
    result = run_cli("batch", "::error::evil.png", "\x1b[31mred\x07.png", "--scene", "scene.jpg",
                     "--yes", env=env, cwd=tmp_path)
    assert result.returncode == 6, result.stderr.decode()
    stderr = result.stderr.decode()
    assert not has_control_chars(stderr)
    for line in stderr.splitlines():
        if line.startswith("::"):
            assert line.startswith("::error file=%3A%3Aerror%3A%3Aevil.png::"), line
    assert "\\x1b[31mred\\x07.png" in stderr


def test_a_key_echoed_by_the_server_is_never_printed(emu, work, env):
    emu.faults.fail_next("run_create", 400, body={"code": KEY, "message": f"bad {KEY}",
                                                   "request_id": KEY})
    result = run_cli(*REPLACE, "--json", env=env, cwd=work)
    assert result.returncode == 4
    assert KEY not in result.stdout.decode() + result.stderr.decode()


def test_json_output_urls_carry_no_signature_unless_asked(emu, work, env):
    plain = json.loads(run_cli(*REPLACE, "--json", env=env, cwd=work).stdout)
    assert plain["outputs"][0]["url"] and "?" not in plain["outputs"][0]["url"]
    signed = json.loads(run_cli(*REPLACE, "--json", "--signed-urls", "-o", "again", "--no-cache",
                                env=env, cwd=work).stdout)
    assert "sig=" in signed["outputs"][0]["url"] or "?" in signed["outputs"][0]["url"]


# -- one bad item fails alone -------------------------------------------------------------------

def test_odd_names_and_loops_fail_their_item_only(emu, env, tmp_path):
    write_scene(tmp_path / "scene.jpg")
    folder = tmp_path / "photos"
    folder.mkdir()
    write_photo(folder / "fine.png")
    write_photo(folder / os.fsdecode(b"caf\xe9.png"), color=(10, 200, 30))  # not UTF-8
    (folder / "loop.png").symlink_to(folder / "loop.png")
    result = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", "-o", "out", env=env,
                     cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 6, stderr
    assert "loop.png" in stderr and "1 of 3 items failed" in stderr
    assert emu.created_run_count == 2 and len(list((tmp_path / "out").rglob("*-bg.webp"))) == 2


# -- files ----------------------------------------------------------------------------------------

def test_the_journal_and_the_cache_are_private(emu, work, env, isolated_env):
    assert run_cli(*REPLACE, env=env, cwd=work).returncode == 0
    for folder in (isolated_env / "state", isolated_env / "cache"):
        for path in [folder, *folder.rglob("*")]:
            expected = 0o700 if path.is_dir() else 0o600
            assert path.stat().st_mode & 0o777 == expected, path


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_outputs_honour_the_umask(emu, work, env, umask, mode):
    done = subprocess.run([sys.executable, "-m", "runflow_bg", *REPLACE], env=env, cwd=work,
                          capture_output=True, timeout=60, preexec_fn=lambda: os.umask(umask))
    assert done.returncode == 0, done.stderr.decode()
    assert (work / "bottle-bg.webp").stat().st_mode & 0o777 == mode


def test_a_link_leading_outside_the_output_folder_is_refused_before_paying(emu, work, env,
                                                                           tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (work / "out").mkdir()
    (work / "out" / "sub").symlink_to(elsewhere)
    result = run_cli(*REPLACE, "-o", "out", "--name", "sub/{stem}.{ext}", env=env, cwd=work)
    assert result.returncode == 4 and "outside out" in result.stderr.decode()
    assert emu.requests == [] and not list(elsewhere.iterdir())


def test_a_full_disk_names_the_file_the_run_and_how_to_download_again(tmp_path):
    from runflow_bg.download import OutputNaming, download_outputs
    from runflow_bg.errors import InputError
    from runflow_bg.models import Run

    class FullDisk:
        def download(self, url, sink, on_bytes=None):
            raise OSError(errno.ENOSPC, "No space left on device")

    run = Run(id="run-42", status="succeeded", output_urls=("https://cdn.example/1.webp",))
    with pytest.raises(InputError) as info:
        download_outputs(FullDisk(), run, OutputNaming(tmp_path, "{stem}.{ext}", "photo", "scene"))
    error = info.value
    assert "No space left on device" in error.message and "run-42" in error.message
    assert "runflow-bg runs download run-42" in error.hint
    assert not list(tmp_path.iterdir())


# -- exit codes as documented -------------------------------------------------------------------

def test_bad_settings_from_the_environment_or_the_config_file_exit_2(emu, work, env, isolated_env):
    result = run_cli(*REPLACE, env={**env, "RUNFLOW_BG_HTTP_TIMEOUT": "nan"}, cwd=work)
    assert result.returncode == 2 and "RUNFLOW_BG_HTTP_TIMEOUT" in result.stderr.decode()
    config = isolated_env / "config"
    config.mkdir(parents=True)
    (config / "config.json").write_text(json.dumps({"concurrency": 0}))
    result = run_cli("batch", "bottle.png", "--scene", "marble.jpg", "--yes", env=env, cwd=work)
    assert result.returncode == 2 and "concurrency" in result.stderr.decode()
    assert "Hint:" in result.stderr.decode() and emu.requests == []


def test_an_output_folder_named_like_an_image_draws_a_warning(emu, work, env):
    result = run_cli(*REPLACE, "-o", "result.webp", "--dry-run", env=env, cwd=work)
    assert result.returncode == 0
    assert "Warning: -o result.webp names a folder to create" in result.stderr.decode()
    (work / "taken.png").write_bytes(b"x")
    refused = run_cli(*REPLACE, "-o", "taken.png", env=env, cwd=work)
    assert refused.returncode == 4 and "taken.png is not a folder" in refused.stderr.decode()


def _finished_elsewhere(emu) -> str:
    """A run submitted by someone else (not in this machine's journal)."""
    from helpers import sample_zip
    from runflow_bg.client import RunflowClient

    with RunflowClient(KEY, emu.base_url) as client:
        asset = client.upload(sample_zip(), "inputs.zip")
        run = client.create_run({"zip_url": asset.url, "file_image": "image.png",
                                 "file_reference": "reference.png"})
    emu.finish_runs()
    return run.id
