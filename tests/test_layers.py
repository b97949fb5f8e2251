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
            assert name in {"client.py", "transport.py", "transfers.py"}, name


def test_emulator_stands_alone():
    for name, imports in modules():
        if name.startswith("emulator/"):
            assert not any(i.startswith("runflow_bg.cli") for i in imports), name
            assert not top(imports) & {"httpx", "typer", "rich"}, name


def test_only_the_cli_reads_the_environment_and_the_settings():
    for name, imports in modules():
        if name.startswith("cli/"):
            continue
        text = (PACKAGE / name).read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv" not in text, name
        if name != "config.py":
            assert "runflow_bg.config" not in imports, name


PROBE = """
import atexit, json, sys
sys.argv = ["runflow-bg", *json.loads(sys.argv[1])]

def report():  # at exit, however the process ends
    heavy = sorted(m for m in ("httpx", "PIL", "rich.progress", "sqlite3") if m in sys.modules)
    sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")

atexit.register(report)
from runflow_bg.cli.app import main
main()
"""


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["replace", "--help"]])
def test_fast_paths_import_neither_httpx_nor_pillow(argv):
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)],
                            capture_output=True, text=True, timeout=60)
    line = [l for l in result.stderr.splitlines() if l.startswith("HEAVY=")][-1]
    assert json.loads(line[len("HEAVY="):]) == []
