"""The reliability and security suite: the real CLI against the emulator's faults.

Every scenario starts a fresh emulator on loopback, runs `runflow-bg --debug ...` as a user would
(in this process on a quick clock, or as a real process where only a process shows the truth:
signals, a changed privilege), and compares what happened with what must happen. All captured output of every scenario is
scanned for the API key and presigned query strings. `python tests/reliability.py` prints the
table (scenario, expected, observed, pass); tests/test_reliability.py runs the same scenarios.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import KEY, cli_env, run_cli, write_photo, write_scene  # noqa: E402
from runflow_bg.emulator import Emulator  # noqa: E402

SECRETS = (KEY, "sig=", "expires=")
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Ctx:
    """One scenario's world: an emulator, a work folder with a photo and a scene, an environment."""

    emu: Emulator
    work: Path
    env: dict
    captured: list[str] = field(default_factory=list)

    def argv(self, args: tuple[str, ...], debug: bool = True) -> list[str]:
        return [sys.executable, "-m", "runflow_bg", *(["--debug"] if debug else []), *args]

    def cli(self, *args: str, prefix: list[str] | None = None, debug: bool = True,
            stdin: bytes = b"", timeout: float = 90, env: dict | None = None) -> Result:
        """The CLI in this process; in a real one only under a `prefix` (a changed privilege)."""
        env = {**self.env, **(env or {})}
        if prefix:
            done = subprocess.run(prefix + self.argv(args, debug), env=env, cwd=self.work,
                                  capture_output=True, timeout=timeout, input=stdin)
        else:
            done = run_cli(*(["--debug"] if debug else []), *args, env=env, cwd=self.work,
                           stdin=stdin)
        result = Result(done.returncode, done.stdout.decode(errors="replace"),
                        done.stderr.decode(errors="replace"))
        self.captured += [result.stdout, result.stderr]
        return result

    def interrupt(self, args: tuple[str, ...], when: Callable[[], bool], signum: int) -> Result:
        """Start the CLI, send `signum` once `when()` holds, and collect what it printed."""
        process = subprocess.Popen(self.argv(args), env=self.env, cwd=self.work,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not when() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
        result = Result(process.returncode, stdout.decode(errors="replace"),
                        stderr.decode(errors="replace"))
        self.captured += [result.stdout, result.stderr]
        return result

    def files(self, pattern: str = "*") -> list[Path]:
        return sorted(p for p in self.work.rglob(pattern) if p.is_file())

    def outputs(self) -> list[str]:
        return sorted(p.relative_to(self.work).as_posix() for p in self.work.rglob("*-bg*.*"))


@dataclass(frozen=True)
class Scenario:
    name: str
    expected: str
    body: Callable[[Ctx], tuple[str, bool]]


SCENARIOS: list[Scenario] = []


def scenario(name: str, expected: str):
    def register(body):
        SCENARIOS.append(Scenario(name, expected, body))
        return body
    return register


def summary(ctx: Ctx, result: Result) -> str:
    text = f"exit {result.code}, {ctx.emu.created_run_count} run(s)"
    files = ctx.outputs()
    return text + (f", saved {', '.join(files)}" if files else ", nothing saved")


def check(ctx: Ctx, result: Result, *, code: int, runs: int | None = None,
          saved: list[str] | None = None, says: str | None = None) -> tuple[str, bool]:
    """The observed line and whether it matches: exit code, runs created, files, message."""
    ok = result.code == code
    ok &= runs is None or ctx.emu.created_run_count == runs
    ok &= saved is None or ctx.outputs() == saved
    ok &= says is None or says in result.stderr
    ok &= not any(p.name.endswith(".part") for p in ctx.files())
    observed = summary(ctx, result)
    if says is not None and says not in result.stderr:
        last = result.stderr.strip().splitlines()[-2:] if result.stderr.strip() else []
        observed += f"; stderr: {' | '.join(last)}"
    return observed, ok


REPLACE = ("replace", "bottle.png", "scene.jpg")
SAVED = ["bottle-bg.webp"]


# -- network ----------------------------------------------------------------------------------

@scenario("connection refused", "exit 5, says refused, nothing saved")
def _(ctx):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx.env["RUNFLOW_BASE_URL"] = f"http://127.0.0.1:{port}"
    return check(ctx, ctx.cli(*REPLACE), code=5, saved=[], says="refused")


for _endpoint in ("run_get", "storage_put", "output", "asset_confirm"):
    @scenario(f"connection reset: {_endpoint}", "exit 0, 1 run, saved")
    def _(ctx, endpoint=_endpoint):
        ctx.emu.faults.drop_next(endpoint)
        return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("read timeout: run_get", "exit 0, 1 run, saved")
def _(ctx):
    ctx.env["RUNFLOW_BG_HTTP_TIMEOUT"] = "1"
    ctx.emu.faults.delay("run_get", 3, count=1)
    return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("read timeout: create (run recorded)", "exit 0, exactly 1 run, saved")
def _(ctx):
    ctx.env["RUNFLOW_BG_HTTP_TIMEOUT"] = "1"
    ctx.emu.faults.delay("run_create", 3, count=1)
    return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("429 storm with Retry-After", "exit 0, 1 run, saved")
def _(ctx):
    ctx.emu.faults.fail_next("run_create", 429, count=3, retry_after=0.2)
    ctx.emu.faults.fail_next("run_get", 429, count=3, retry_after=0.2)
    return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("429 storm without Retry-After", "exit 0, 1 run, saved")
def _(ctx):
    ctx.emu.faults.fail_next("run_get", 429, count=2)
    return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("429 that never ends", "exit 5, 0 runs, says no run was created")
def _(ctx):
    ctx.emu.faults.fail_next("run_create", 429, count=100, retry_after=0)
    return check(ctx, ctx.cli(*REPLACE), code=5, runs=0, saved=[], says="No run was created")


for _endpoint in ("asset_create", "storage_put", "asset_confirm", "run_create", "run_get", "output"):
    for _status in (500, 502, 503, 504):
        if _endpoint == "run_create" and _status != 503:
            continue  # a create's 500/502/504 leaves its fate unknown: see below
        @scenario(f"{_status} once: {_endpoint}", "exit 0, exactly 1 run, saved")
        def _(ctx, endpoint=_endpoint, status=_status):
            ctx.emu.faults.fail_next(endpoint, status)
            return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


for _status in (500, 502, 504):
    @scenario(f"{_status} once: run_create (no run behind it)",
              "exit 9 (unknown), 0 runs; the same command again: exit 0, exactly 1 run, saved")
    def _(ctx, status=_status):
        ctx.emu.faults.fail_next("run_create", status)
        first = ctx.cli(*REPLACE)
        ok = first.code == 9 and ctx.emu.created_run_count == 0 and "unknown" in first.stderr
        ok &= ctx.emu.count("run_list") >= 2  # looked for again and again, never created on one look
        again = ctx.cli(*REPLACE, env={"RUNFLOW_BG_CREATE_GRACE": "0"})
        ok &= again.code == 0 and ctx.emu.created_run_count == 1 and ctx.outputs() == SAVED
        return (f"exit {first.code} then {again.code}, {ctx.emu.created_run_count} run(s), "
                f"{ctx.emu.count('run_list')} lookups"), ok


for _status in (500, 502, 503, 504):
    @scenario(f"{_status} once: run_list (the lookup after a lost create)",
              "exit 0, exactly 1 run, saved")
    def _(ctx, status=_status):
        ctx.emu.faults.drop_after_create(1)
        ctx.emu.faults.fail_next("run_list", status)
        return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("5xx until retries run out: run_get", "exit 5, 1 run, says runs wait")
def _(ctx):
    ctx.emu.faults.fail_next("run_get", 502, count=100)
    return check(ctx, ctx.cli(*REPLACE), code=5, runs=1, saved=[], says="runflow-bg runs wait")


@scenario("create dropped after the run was recorded: replace", "exit 0, exactly 1 run, saved")
def _(ctx):
    ctx.emu.faults.drop_after_create(1)
    return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("create dropped after the run was recorded: batch", "exit 0, exactly 3 runs, 3 saved")
def _(ctx):
    for name in ("a", "b"):
        write_photo(ctx.work / f"{name}.png", color=(20, 160, 90 + len(name)))
    (ctx.work / "b.png").write_bytes((ctx.work / "b.png").read_bytes() + b"\0")
    ctx.emu.faults.drop_after_create(2)
    result = ctx.cli("batch", "bottle.png", "a.png", "b.png", "--scene", "scene.jpg", "--yes")
    return check(ctx, result, code=0, runs=3, saved=["a-bg.webp", "b-bg.webp", "bottle-bg.webp"])


# -- uploads ----------------------------------------------------------------------------------

@scenario("expired upload URL (403)", "exit 0, a new upload session, saved")
def _(ctx):
    ctx.emu.faults.expire_upload_urls(1)
    observed, ok = check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)
    sessions = ctx.emu.count("asset_create")
    return f"{observed}, {sessions} upload sessions", ok and sessions == 2


@scenario("storage never sees the key", "no Authorization header on the storage route")
def _(ctx):
    observed, ok = check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)
    seen = ctx.emu.storage_saw_authorization
    return f"{observed}, storage saw a key: {seen}", ok and not seen


# -- downloads --------------------------------------------------------------------------------

@scenario("body cut short of its Content-Length", "retried, exit 0, no partial file")
def _(ctx):
    ctx.emu.faults.truncate_outputs(1)
    return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("body always cut short", "exit 5, nothing at the final name, no .part file")
def _(ctx):
    ctx.emu.faults.truncate_outputs(100)
    return check(ctx, ctx.cli(*REPLACE), code=5, runs=1, saved=[], says="runs download")


@scenario("expired output URL (403)", "the run is read again for a fresh URL, exit 0")
def _(ctx):
    ctx.emu.faults.expire_output_urls(1)
    return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


@scenario("Content-Length of 300 MB", "refused, exit 1, nothing saved")
def _(ctx):
    ctx.emu.faults.huge_outputs(100)
    return check(ctx, ctx.cli(*REPLACE), code=1, runs=1, saved=[], says="Refusing")


@scenario("redirect to loopback http", "followed, exit 0")
def _(ctx):
    ctx.emu.faults.redirect_outputs("{url}", count=1)
    return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


for _target in ("ftp://example.com/x.webp", "file:///etc/passwd", "http://example.com/x.webp"):
    @scenario(f"redirect to {_target.split(':')[0]}: {_target}", "refused, exit 1, nothing saved")
    def _(ctx, target=_target):
        ctx.emu.faults.redirect_outputs(target)
        return check(ctx, ctx.cli(*REPLACE), code=1, runs=1, saved=[], says="Refusing")


# -- hostile answers --------------------------------------------------------------------------

@scenario("hostile output names", "only bottle-bg*.webp inside the output folder")
def _(ctx):
    ctx.emu.faults.output_names = ["../../x.png", "/etc/passwd", "a\x1b[31m\n.png", "n" * 1000]
    result = ctx.cli(*REPLACE, "-o", "out")
    expected = ["out/bottle-bg-2.webp", "out/bottle-bg-3.webp", "out/bottle-bg-4.webp",
                "out/bottle-bg.webp"]
    observed, ok = check(ctx, result, code=0, runs=1, saved=expected)
    strays = [p for p in ctx.work.parent.rglob("x.png")] + [p for p in ctx.work.rglob("passwd")]
    return observed + (f", strays {strays}" if strays else ""), ok and not strays


for _mode in ("not_json", "not_object", "missing_id", "missing_status", "wrong_types",
              "output_wrong_type"):
    @scenario(f"broken run JSON: {_mode}", "exit 1, a clear message, no traceback")
    def _(ctx, mode=_mode):
        ctx.emu.faults.corrupt_runs(mode)
        result = ctx.cli(*REPLACE, "--timeout", "20s", debug=False)
        observed, ok = check(ctx, result, code=1, saved=[], says="Error: Runflow")
        return observed, ok and "Traceback" not in result.stderr


@scenario("unknown status", "treated as still running until --timeout: exit 7")
def _(ctx):
    ctx.emu.faults.status_override = "warming_up"
    return check(ctx, ctx.cli(*REPLACE, "--timeout", "2s"), code=7, runs=1, saved=[],
                 says="runflow-bg runs wait")


# -- bad input: exit 4, the file named, zero requests -----------------------------------------

def _bad_input(ctx: Ctx, args: tuple[str, ...], needle: str, prefix=None) -> tuple[str, bool]:
    result = ctx.cli(*args, prefix=prefix)
    observed, ok = check(ctx, result, code=4, runs=0, says=needle)
    requests = len(ctx.emu.requests)
    return f"{observed}, {requests} requests", ok and requests == 0


BAD_INPUTS = {
    "missing file": (lambda w: None, ("replace", "nope.png", "scene.jpg"), "nope.png: no such file"),
    "a directory": (lambda w: (w / "dir.png").mkdir(), ("replace", "dir.png", "scene.jpg"),
                    "dir.png: not a regular file"),
    "empty file": (lambda w: (w / "empty.png").write_bytes(b""), ("replace", "empty.png", "scene.jpg"),
                   "empty.png: the file is empty"),
    "text named .png": (lambda w: (w / "text.png").write_text("hello"),
                        ("replace", "text.png", "scene.jpg"), "text.png: not an image"),
    "truncated PNG": (lambda w: (w / "cut.png").write_bytes((w / "bottle.png").read_bytes()[:300]),
                      ("replace", "cut.png", "scene.jpg"), "cut.png: a damaged image"),
    "60 MB image": (lambda w: os.truncate(_touch(w / "huge.png"), 60 * 1024 * 1024),
                    ("replace", "huge.png", "scene.jpg"), "huge.png: "),
    "same file twice": (lambda w: None, ("replace", "bottle.png", "bottle.png"),
                        "bottle.png is given as both"),
    "output folder is a file": (lambda w: (w / "taken").write_text("x"),
                                ("replace", "bottle.png", "scene.jpg", "-o", "taken"),
                                "taken is not a folder"),
}


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


for _name, (_setup, _args, _needle) in BAD_INPUTS.items():
    @scenario(f"bad input: {_name}", "exit 4, names the file, 0 requests")
    def _(ctx, setup=_setup, args=_args, needle=_needle):
        setup(ctx.work)
        return _bad_input(ctx, args, needle)


@scenario("bad input: unreadable file", "exit 4, names the file, 0 requests")
def _(ctx):
    locked = ctx.work / "locked.png"
    locked.write_bytes((ctx.work / "bottle.png").read_bytes())
    locked.chmod(0)
    return _bad_input(ctx, ("replace", "locked.png", "scene.jpg"), "locked.png: cannot read it",
                      prefix=NO_DAC)


@scenario("bad input: output folder not writable", "exit 4, names the folder, 0 requests")
def _(ctx):
    (ctx.work / "readonly").mkdir(mode=0o555)
    return _bad_input(ctx, ("replace", "bottle.png", "scene.jpg", "-o", "readonly"),
                      "readonly is not writable", prefix=NO_DAC)


# -- signals: exit 130, the run id when one exists, and a re-run that pays nothing more ---------

PHASES = {
    "upload": ("storage_put", lambda emu: emu.count("storage_put") >= 1, False),
    "create": ("run_create", lambda emu: emu.created_run_count >= 1, True),
    "poll": (None, lambda emu: emu.count("run_get") >= 1, True),
    "download": ("output", lambda emu: emu.count("output") >= 1, True),
}

for _phase, (_slow, _when, _has_run) in PHASES.items():
    for _signum in (signal.SIGINT, signal.SIGTERM):
        @scenario(f"{signal.Signals(_signum).name} during {_phase}",
                  "exit 130, run id printed if any, re-run resumes: 1 run in all")
        def _(ctx, slow=_slow, when=_when, has_run=_has_run, signum=_signum):
            if slow:
                ctx.emu.faults.delay(slow, 4, count=1)
            else:
                ctx.emu.run_seconds = 30
            result = ctx.interrupt(REPLACE, lambda: when(ctx.emu), signum)
            runs = ctx.emu.runs()
            ok = result.code == 130 and len(runs) == (1 if has_run else 0)
            if has_run and runs:
                ok &= runs[0]["id"] in result.stderr or "client_ref" in result.stderr
            ctx.emu.run_seconds = 0.3
            ctx.emu.finish_runs()  # a run left in flight ends now, so the re-run need not wait 30 s
            again = ctx.cli(*REPLACE)
            ok &= again.code == 0 and ctx.emu.created_run_count == 1 and ctx.outputs() == SAVED
            return (f"exit {result.code} then {again.code}, {ctx.emu.created_run_count} run(s) "
                    f"in all, saved {', '.join(ctx.outputs()) or 'nothing'}"), ok


# -- money: exactly once across processes, lost answers and interrupts ------------------------

def _together(ctx: Ctx, *commands: tuple[str, ...]) -> list[Result]:
    """Start the CLI in several real processes at once, and wait for them all."""
    processes = [subprocess.Popen(ctx.argv(args, debug=False), env=ctx.env, cwd=ctx.work,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL) for args in commands]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        results.append(Result(process.returncode, stdout.decode(errors="replace"),
                              stderr.decode(errors="replace")))
        ctx.captured += [results[-1].stdout, results[-1].stderr]
    return results


def _catalogue(ctx: Ctx, count: int) -> None:
    (ctx.work / "photos").mkdir()
    for index in range(count):
        write_photo(ctx.work / "photos" / f"p{index}.png", size=(48, 36),
                    color=(30 + index * 20, 90, 160))


BATCH = ("batch", "photos", "--scene", "scene.jpg", "-o", "out", "--yes", "-j", "3")
# Trials of each race: 10 in the test suite, RELIABILITY_TRIALS=20 (or more) for the table.
TRIALS = int(os.environ.get("RELIABILITY_TRIALS", "10"))

for _trial in range(1, TRIALS + 1):
    @scenario(f"two replace at once, trial {_trial}",
              "both exit 0 with the same file, exactly 1 create")
    def _(ctx):
        ctx.emu.run_seconds = 0.3
        first, second = _together(ctx, REPLACE, REPLACE)
        created = ctx.emu.created_run_count
        ok = first.code == second.code == 0 and created == 1 and ctx.outputs() == SAVED
        ok &= first.stdout == second.stdout == "bottle-bg.webp\n"
        return f"exits {first.code}/{second.code}, {created} create(s), duplicates {created - 1}", ok

    @scenario(f"two batches of 6 at once, trial {_trial}",
              "both exit 0, every item saved, exactly 6 creates")
    def _(ctx):
        _catalogue(ctx, 6)
        ctx.emu.run_seconds = 0.2
        first, second = _together(ctx, BATCH, BATCH)
        created = ctx.emu.created_run_count
        saved = len([p for p in ctx.outputs() if p.startswith("out/")])
        ok = first.code == second.code == 0 and created == 6 and saved == 6
        return (f"exits {first.code}/{second.code}, {created} creates, duplicates {created - 6}, "
                f"{saved} saved"), ok


for _trial in range(1, 6):
    @scenario(f"SIGINT while a batch uploads, trial {_trial}",
              "exit 130, no create after the signal, every run created listed; re-run: 6 in all")
    def _(ctx):
        _catalogue(ctx, 6)
        ctx.emu.run_seconds = 0.2
        ctx.emu.faults.delay("storage_put", 0.4)
        at_signal = []

        def uploading() -> bool:
            if ctx.emu.count("storage_put") >= 2:
                at_signal.append(ctx.emu.created_run_count)
                return True
            return False

        result = ctx.interrupt(BATCH, uploading, signal.SIGINT)
        created = ctx.emu.created_run_count
        after = created - (at_signal[0] if at_signal else 0)
        listed = all(run["id"] in result.stderr for run in ctx.emu.runs())
        ctx.emu.faults.clear()
        again = ctx.cli(*BATCH)
        ok = result.code == 130 and after == 0 and listed
        ok &= again.code == 0 and ctx.emu.created_run_count == 6
        return (f"exit {result.code}, {after} create(s) after the signal, listed: {listed}; "
                f"re-run exit {again.code}, {ctx.emu.created_run_count} creates in all"), ok


for _trial in range(1, 4):
    @scenario(f"create answered after the client's timeout, trial {_trial}",
              "exit 0, exactly 1 run: found by its client_ref, not created again")
    def _(ctx):
        ctx.emu.faults.delay("run_create", 1.0, count=1)
        ctx.env["RUNFLOW_BG_HTTP_TIMEOUT"] = "0.3"
        return check(ctx, ctx.cli(*REPLACE), code=0, runs=1, saved=SAVED)


# -- secrets ----------------------------------------------------------------------------------

@scenario("credentials file", "0600 in a 0700 folder; readable by others draws a warning")
def _(ctx):
    del ctx.env["RUNFLOW_API_KEY"]
    login = ctx.cli("auth", "login", "--with-token", stdin=KEY.encode() + b"\n")
    path = Path(ctx.env["RUNFLOW_BG_HOME"]) / "config" / "credentials.json"
    modes = (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777)
    path.chmod(0o644)
    result = ctx.cli(*REPLACE)
    warned = "other users can read" in result.stderr
    ok = login.code == 0 and modes == (0o600, 0o700) and result.code == 0 and warned
    return f"login exit {login.code}, modes {modes[0]:o}/{modes[1]:o}, warned: {warned}", ok


def run_scenario(entry: Scenario) -> tuple[str, bool]:
    """Run one scenario in a fresh world; any secret in any captured output fails it."""
    with tempfile.TemporaryDirectory(prefix="rfbg-rel-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        write_photo(work / "bottle.png")
        write_scene(work / "scene.jpg")
        with Emulator(api_key=KEY, run_seconds=0.3) as emu:
            env = cli_env(emu.base_url, root / "home", RUNFLOW_BG_RETRIES="4")
            ctx = Ctx(emu, work, env)
            try:
                observed, ok = entry.body(ctx)
            except Exception as exc:  # a broken scenario is a failed one, and the table goes on
                observed, ok = f"the scenario itself failed: {type(exc).__name__}: {exc}", False
        leaks = [secret for secret in SECRETS if any(secret in text for text in ctx.captured)]
        if leaks:
            return f"{observed}; LEAKED {', '.join(leaks)}", False
        return observed, ok


def main() -> int:
    rows = []
    for entry in SCENARIOS:
        observed, ok = run_scenario(entry)
        rows.append((entry.name, entry.expected, observed, "pass" if ok else "FAIL"))
        print(f"{rows[-1][3]:4}  {entry.name}", file=sys.stderr)
    widths = [max(len(row[i]) for row in rows + [("scenario", "expected", "observed", "pass")])
              for i in range(4)]
    header = ("scenario", "expected", "observed", "pass")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    failed = sum(row[3] != "pass" for row in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
