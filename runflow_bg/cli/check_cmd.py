"""`runflow-bg check`: whether image files meet a shop preset's rules, one line per problem."""

from __future__ import annotations

from typing import List

import typer


def check(
    ctx: typer.Context,
    files: List[str] = typer.Argument(..., metavar="FILE", help="Image files to check."),
    preset_name: str = typer.Option(..., "--preset", metavar="NAME",
                                    help="The shop's preset (see `runflow-bg presets`)."),
    as_json: bool = typer.Option(False, "--json",
                                 help="One JSON object per file on stdout (JSON Lines)."),
) -> None:
    """Check image files against a shop preset (exit 4 if any file fails or cannot be read)."""
    from pathlib import Path

    from runflow_bg.errors import ExitCode, InputError
    from runflow_bg.presets import check_file, get_preset

    invocation = ctx.obj
    terminal = invocation.terminal
    preset = get_preset(preset_name)
    passed = 0
    for name in files:
        try:
            problems = check_file(Path(name), preset)
            lines = [f"{name}: {problem}" for problem in problems]
        except InputError as exc:
            terminal.error(exc, debug=invocation.debug)
            problems, lines = [exc.message], []  # said on stderr already, with its hint
        passed += not problems
        if as_json:
            terminal.out_json({"path": name, "preset": preset.name, "ok": not problems,
                               "problems": problems})
        else:
            terminal.out_lines(lines)
    terminal.say(f"{passed} of {len(files)} passed the {preset.name} checks.")
    if passed < len(files):
        raise typer.Exit(int(ExitCode.BAD_INPUT))
