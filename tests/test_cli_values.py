"""Option values are converted without pydantic, to what typer's own check gives, errors included."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from helpers import cli_env, write_photo, write_scene

typer_coercion = pytest.importorskip("typer._coercion", reason="typer checks values with pydantic "
                                                                "only from 0.2x on")

from runflow_bg.cli.app import build_command  # noqa: E402
from runflow_bg.cli.coercion import check_quickly  # noqa: E402


def params_of(name: str) -> dict:
    """The parameters of command `name` with the quick checks, and a context to check them in."""
    command = build_command(name)
    ctx = command.context_class(command, info_name=name)  # not parsed: nothing checked yet
    check_quickly(command, ctx)
    return {param.name: param for param in command.get_params(ctx)}, ctx


def both(param, ctx, value):
    """(quick result, typer's result); an error stands as (its class, its message)."""
    outcomes = []
    for checker in (param.get_runtime_param(), typer_coercion.build_runtime_param(param.type_descriptor)):
        try:
            outcomes.append(checker.coerce(value, param=param, ctx=ctx))
        except Exception as exc:
            outcomes.append((type(exc), str(exc)))
    return outcomes


REPLACE, REPLACE_CTX = params_of("replace")
EMULATOR, EMULATOR_CTX = params_of("emulator")
NUMBERS = st.one_of(st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=False).map(str),
                    st.text(alphabet="0123456789+-._ e", max_size=8))


def test_every_parameter_of_replace_and_batch_is_checked_quickly():
    for command in ("replace", "batch"):
        params, _ = params_of(command)
        slow = [name for name, param in params.items()
                if type(param._runtime_param).__name__ != "QuickParam"]
        assert slow == []


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_text_and_paths_convert_as_typer_converts_them(value):
    for name in ("prompt", "out", "photo"):
        quick, typer_own = both(REPLACE[name], REPLACE_CTX, value)
        assert quick == typer_own


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(), max_size=4))
def test_lists_convert_as_typer_converts_them(values):
    quick, typer_own = both(REPLACE["metadata"], REPLACE_CTX, tuple(values))
    assert quick == typer_own


@settings(max_examples=300, deadline=None)
@given(NUMBERS)
def test_numbers_convert_as_typer_converts_them(value):
    for params, ctx, name in ((REPLACE, REPLACE_CTX, "quality"), (REPLACE, REPLACE_CTX, "max_side"),
                              (EMULATOR, EMULATOR_CTX, "port"),
                              (EMULATOR, EMULATOR_CTX, "run_seconds")):
        quick, typer_own = both(params[name], ctx, value)
        assert quick == typer_own


def test_defaults_and_missing_values_convert_as_typer_converts_them():
    for params, ctx, name, value in ((EMULATOR, EMULATOR_CTX, "port", 8787),
                                     (EMULATOR, EMULATOR_CTX, "run_seconds", 3.0),
                                     (REPLACE, REPLACE_CTX, "out", None),
                                     (REPLACE, REPLACE_CTX, "metadata", None),
                                     (REPLACE, REPLACE_CTX, "overwrite", False)):
        quick, typer_own = both(params[name], ctx, value)
        assert quick == typer_own


PROBE = """
import atexit, json, sys
sys.argv = ["runflow-bg", *json.loads(sys.argv[1])]
atexit.register(lambda: sys.stderr.write("PYDANTIC=" + json.dumps("pydantic" in sys.modules) + "\\n"))
from runflow_bg.cli.app import main
main()
"""


def probe(argv: list[str], env: dict, cwd) -> tuple[subprocess.CompletedProcess, bool]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=60)
    line = [l for l in result.stderr.splitlines() if l.startswith("PYDANTIC=")][-1]
    return result, json.loads(line[len("PYDANTIC="):])


def test_a_real_command_does_not_import_pydantic(tmp_path, isolated_env):
    write_photo(tmp_path / "bottle.png")
    write_scene(tmp_path / "marble.jpg")
    env = cli_env(None, isolated_env, key=None)
    result, imported = probe(["replace", "--local", "--dry-run", "bottle.png", "marble.jpg",
                              "-o", "out", "-p", "on marble", "--quality", "80", "--timeout",
                              "5m", "--metadata", "sku=1", "--metadata", "lot=2"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing was sent" in result.stdout and imported is False


def test_a_value_out_of_range_gets_typers_message(tmp_path, isolated_env):
    env = cli_env(None, isolated_env, key=None)
    result, _ = probe(["replace", "a.png", "b.jpg", "--quality", "0"], env, tmp_path)
    assert result.returncode == 2
    assert "Invalid value for '--quality': Input should be greater than or equal to 1" in result.stderr
