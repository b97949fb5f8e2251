"""The architecture holds: heavy and UI imports stay where they belong."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "runflow_bg"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), imports_of(path)


def top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_typer_and_rich_only_in_the_cli():
    for name, imports in modules():
        if not name.startswith("cli/"):
            assert not top(imports) & {"typer", "rich", "click"}, name


def test_httpx_only_in_the_client_and_transfer_code():
    for name, imports in modules():
        if "httpx" in top(imports):
            assert name in {"client.py", "transport.py", "transfers.py", "remote.py"}, name


def test_emulator_stands_alone():
    for name, imports in modules():
        if name.startswith("emulator/"):
            assert not any(i.startswith("runflow_bg.cli") for i in imports), name
            assert not top(imports) & {"httpx", "typer", "rich"}, name


FRONT_DOORS = {"api.py", "workspace.py", "choices.py"}  # the Python API and what it shares with the CLI


def test_only_the_front_doors_read_the_environment_and_the_settings():
    """The CLI and the Python API resolve settings; everything below takes plain values."""
    for name, imports in modules():
        if name.startswith("cli/"):
            continue
        text = (PACKAGE / name).read_text(encoding="utf-8")
        if name != "api.py":
            assert "os.environ" not in text and "getenv" not in text, name
        if name not in FRONT_DOORS | {"config.py"}:
            assert "runflow_bg.config" not in imports, name


PROBE = """
import atexit, json, sys
sys.argv = ["runflow-bg", *json.loads(sys.argv[1])]

def report():  # at exit, however the process ends
    heavy = sorted(m for m in ("httpx", "PIL", "rich.progress", "sqlite3", "pydantic")
                   if m in sys.modules)
    commands = sorted(m for m in sys.modules if m.endswith("_cmd"))
    sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")
    sys.stderr.write("COMMANDS=" + json.dumps(commands) + "\\n")

atexit.register(report)
from runflow_bg.cli.app import main
main()
"""


def probe(argv: list[str]) -> dict[str, list[str]]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)],
                            capture_output=True, text=True, timeout=60)
    return {name: json.loads(value) for name, _, value in
            (line.partition("=") for line in result.stderr.splitlines())
            if name in ("HEAVY", "COMMANDS")}


@pytest.mark.parametrize("argv,commands", [(["--version"], []), (["--help"], []),
                                           (["replace", "--help"], ["runflow_bg.cli.replace_cmd"])])
def test_fast_paths_import_neither_httpx_nor_pillow_nor_pydantic(argv, commands):
    loaded = probe(argv)
    assert loaded["HEAVY"] == []
    assert loaded["COMMANDS"] == commands, "a command's module is imported only when it is used"


def test_help_lists_the_commands_as_typer_lists_them_when_they_are_all_built():
    import importlib

    import typer
    from typer.testing import CliRunner

    from runflow_bg.cli import app as cli

    eager = typer.Typer(name="runflow-bg", help=cli.app.info.help, no_args_is_help=True,
                        context_settings={"help_option_names": ["-h", "--help"]},
                        **cli.TYPER_SETTINGS)
    eager.callback()(cli.root)
    for name, (module_name, help_text) in cli.COMMANDS.items():
        module = importlib.import_module(f"runflow_bg.cli.{module_name}")
        if isinstance(getattr(module, "app", None), typer.Typer):
            eager.add_typer(module.app, name=name, help=help_text)
        else:
            eager.command(name, help=help_text)(getattr(module, name))
    for argv in (["--help"], ["replace", "--help"], ["runs", "--help"], ["runs", "wait", "--help"]):
        shown = CliRunner().invoke(cli.app, argv, prog_name="runflow-bg")
        assert shown.exit_code == 0 and "Usage: runflow-bg" in shown.output
        assert shown.output == CliRunner().invoke(eager, argv, prog_name="runflow-bg").output
