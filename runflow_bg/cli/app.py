"""The root command: global options, the command groups, and the process entry point.

Only typer is imported at start-up; each command imports what it needs when it runs, so that
`--version`, `--help` and shell completion stay fast.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional

import typer

from runflow_bg import __version__
from runflow_bg.cli import (auth_cmd, batch_cmd, config_cmd, doctor_cmd, emulator_cmd,
                            replace_cmd, runs_cmd, webhook_cmd)


@dataclass
class GlobalOptions:
    """Options given before the command, handed to every command through the context."""

    api_key: Optional[str] = None
    base_url: Optional[str] = None
    debug: bool = False


_global = GlobalOptions()

COMPLETE_VAR = "_RUNFLOW_BG_COMPLETE"

app = typer.Typer(
    name="runflow-bg",
    help="Replace the background of product photos with Runflow's background-replace model.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"runflow-bg {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    api_key: Optional[str] = typer.Option(
        None, "--api-key", metavar="KEY",
        help="Runflow API key (discouraged: it lands in shell history; prefer RUNFLOW_API_KEY)."),
    base_url: Optional[str] = typer.Option(
        None, "--base-url", metavar="URL", help="API base URL, without /v1."),
    debug: bool = typer.Option(
        False, "--debug", help="Tracebacks and a request log (secrets redacted) on stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit."),
) -> None:
    """Replace the background of product photos with Runflow's background-replace model."""
    _global.api_key, _global.base_url, _global.debug = api_key, base_url, debug
    ctx.obj = _global


app.command("replace", help=replace_cmd.HELP)(replace_cmd.replace)
app.command("batch", help=batch_cmd.HELP)(batch_cmd.batch)
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(auth_cmd.app, name="auth")
app.add_typer(config_cmd.app, name="config")
app.command("doctor", help=doctor_cmd.HELP)(doctor_cmd.doctor)
app.add_typer(webhook_cmd.app, name="webhook")
app.command("emulator", help=emulator_cmd.HELP)(emulator_cmd.emulator)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (CI cancelling a job) is handled like Ctrl-C: record, report, exit 130."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _complete_quickly() -> None:
    """Keep each Tab press fast: completion only looks at words, so it needs neither typer's
    coercion of parameter values (which imports pydantic) nor rich's rendering of help texts
    (plain here, as rich_markup_mode is off)."""
    import typer._completion_classes
    import typer.core

    parameter = getattr(typer.core, "_TyperParameter", None)
    if parameter is not None:
        parameter.process_value = lambda self, ctx, value: value
    if hasattr(typer._completion_classes, "_sanitize_help_text"):
        typer._completion_classes._sanitize_help_text = lambda text: text


def main() -> None:
    """Console-script entry point: run the app and map every failure to its exit code."""
    _interrupt_on_sigterm()
    if COMPLETE_VAR in os.environ:
        _complete_quickly()
    try:
        app(prog_name="runflow-bg")
    except Exception as exc:
        from runflow_bg.cli.errors import report

        sys.exit(report(exc, debug=_global.debug))
