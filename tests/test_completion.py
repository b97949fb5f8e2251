"""Shell completion: the shipped scripts are current, and Tab completes in real bash, zsh and fish."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli_env

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
SCRIPTS = {"bash": "runflow-bg.bash", "zsh": "_runflow-bg", "fish": "runflow-bg.fish",
           "powershell": "runflow-bg.ps1"}
CASES = [
    ("runflow-bg re", "replace"),
    ("runflow-bg replace --ov", "--overwrite"),
    ("runflow-bg replace --no-", "--no-wait"),
    ("runflow-bg runs w", "wait"),
    ("runflow-bg config get ba", "base_url"),
]


@pytest.fixture
def env(isolated_env, tmp_path):
    """`runflow-bg` on PATH as a shim that runs this checkout with this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "runflow-bg"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runflow_bg "$@"\n')
    shim.chmod(0o755)
    env = cli_env(None, isolated_env, key=None)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def require(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")
    return path


def test_the_shipped_scripts_are_current(tmp_path):
    subprocess.run(["sh", str(COMPLETIONS / "generate.sh"), str(tmp_path)], check=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)})
    for shell, name in SCRIPTS.items():
        fresh = (tmp_path / name).read_text()
        assert "runflow-bg" in fresh, f"no {shell} script was generated"
        shipped = COMPLETIONS / name
        assert shipped.is_file() and shipped.read_text() == fresh, (
            f"completions/{name} is stale; regenerate the scripts with "
            "`PYTHON=python sh completions/generate.sh` and commit them")


def test_the_zsh_script_starts_with_compdef():
    assert (COMPLETIONS / "_runflow-bg").read_text().startswith("#compdef runflow-bg\n")


BASH_DRIVER = r"""
source "$1"
spec=$(complete -p runflow-bg) || exit 3
function=${spec##*-F }; function=${function%% *}
read -ra COMP_WORDS <<< "$2"
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE=$2; COMP_POINT=${#COMP_LINE}
"$function" runflow-bg "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


@pytest.mark.parametrize("line,expected", CASES)
def test_bash(env, tmp_path, line, expected):
    bash = require("bash")
    result = subprocess.run([bash, "--norc", "--noprofile", "-c", BASH_DRIVER, "driver",
                             str(COMPLETIONS / SCRIPTS["bash"]), line],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout.splitlines()


# An interactive zsh on a pseudo-terminal, with compsys loaded and the shipped script sourced;
# compadd is wrapped to print what it offers, then the line is typed and Tab pressed.
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty shell zsh -f -i
zpty -w shell "PS1=''; RPROMPT=''"
zpty -w shell "autoload -Uz compinit && compinit -u -D && source ${(q)1}"
zpty -w shell 'compadd () {
  if (( ${@[(I)-[OAD]*]} )); then builtin compadd "$@"; return; fi
  local -a offered; builtin compadd -A offered "$@"
  local word; for word in $offered; do print -r -- "OFFER<$word>"; done
  builtin compadd "$@"
}'
zpty -w shell "print READY''"
output=''
integer polls=0
while (( polls++ < 300 )) && [[ $output != *READY$'\r'* ]]; do
  zpty -r -t shell chunk && output+=$chunk || sleep 0.05
done
zpty -n -w shell "$2"$'\t'
output=''
polls=0
while (( polls++ < 300 )); do
  if zpty -r -t shell chunk; then output+=$chunk
  elif [[ $output == *'OFFER<'* ]]; then break
  else sleep 0.05; fi
done
zpty -d shell
print -r -- "$output"
"""


@pytest.mark.parametrize("line,expected", CASES)
def test_zsh(env, tmp_path, line, expected):
    zsh = require("zsh")
    result = subprocess.run([zsh, "-f", "-c", ZSH_DRIVER, "driver",
                             str(COMPLETIONS / SCRIPTS["zsh"]), line],
                            env=env, capture_output=True, text=True, timeout=60)
    offered = re.findall(r"OFFER<([^>]*)>", result.stdout)
    assert expected in offered, result.stdout + result.stderr


@pytest.mark.parametrize("line,expected", CASES)
def test_fish(env, tmp_path, line, expected):
    fish = require("fish")
    command = f"source {COMPLETIONS / SCRIPTS['fish']}; complete -C '{line}'"
    result = subprocess.run([fish, "--no-config", "-c", command], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert expected in [row.split("\t")[0] for row in result.stdout.splitlines()]


PROBE = """
import atexit, json, sys

def report():  # at exit, however the process ends
    heavy = sorted(m for m in ("httpx", "PIL", "pydantic_core", "rich", "sqlite3") if m in sys.modules)
    sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")

atexit.register(report)
from runflow_bg.cli.app import main
main()
"""


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_completion_request_imports_nothing_heavy(env, shell):
    env.update(_RUNFLOW_BG_COMPLETE=f"complete_{shell}", COMP_WORDS="runflow-bg replace --o",
               COMP_CWORD="2", _TYPER_COMPLETE_ARGS="runflow-bg replace --o",
               _TYPER_COMPLETE_FISH_ACTION="get-args")
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                            text=True, timeout=60)
    assert "--overwrite" in result.stdout
    line = [l for l in result.stderr.splitlines() if l.startswith("HEAVY=")][-1]
    assert json.loads(line[len("HEAVY="):]) == []


@pytest.mark.parametrize("argv", [["runs", "--help"], ["auth", "--help"], ["config", "--help"],
                                  ["webhook", "verify", "--help"], ["doctor", "--help"]])
def test_help_of_the_command_groups_imports_neither_httpx_nor_pillow(env, argv):
    probe = "import sys; sys.argv = ['runflow-bg', *sys.argv[1:]]\n" + PROBE
    result = subprocess.run([sys.executable, "-c", probe, *argv], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.startswith("Usage: runflow-bg")
    line = [l for l in result.stderr.splitlines() if l.startswith("HEAVY=")][-1]
    assert not {"httpx", "PIL"} & set(json.loads(line[len("HEAVY="):]))
