#!/bin/sh
# Write the shell completion scripts of runflow-bg into DIR (default: this folder).
# Usage: sh completions/generate.sh [DIR]    (PYTHON picks the interpreter; default python3)
set -eu
dir="${1:-$(dirname "$0")}"
python="${PYTHON:-python3}"
for pair in bash:runflow-bg.bash zsh:_runflow-bg fish:runflow-bg.fish powershell:runflow-bg.ps1; do
    # Leading blank lines are dropped: zsh reads `#compdef` only from a file's first line.
    _RUNFLOW_BG_COMPLETE="source_${pair%%:*}" "$python" -m runflow_bg | sed '/./,$!d' > "$dir/${pair#*:}"
done
