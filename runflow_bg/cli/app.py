"""The root command: global options, the command groups, and the process entry point.

Only typer is imported at start-up; each command imports what it needs when it runs, so that
`--version`, `--help` and shell completion stay fast.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer
from typer.core import TyperGroup

from runflow_bg import __version__
from runflow_bg.cli import (auth_cmd, batch_cmd, check_cmd, config_cmd, doctor_cmd,
                            emulator_cmd, presets_cmd, replace_cmd, runs_cmd, samples_cmd,
                            webhook_cmd)
from runflow_bg.config import COMPLETE_ENV


class RunflowGroup(TyperGroup):
    """The root command group: the one place where an error becomes a message and an exit code.

    Typer and Click handle their own usage errors (exit 2) and `typer.Exit`; every other
    exception raised by a command is printed by the invocation's terminal, with its hint, and
    ends the process with the exit code its class carries (1 for anything unexpected).
    """

    def invoke(self, ctx):
        from typer._click.exceptions import ClickException

        try:
            result = super().invoke(ctx)
        except (typer.Exit, ClickException):
            raise
        except (KeyboardInterrupt, typer.Abort):  # Ctrl-C anywhere, a prompt's included
            from runflow_bg.errors import Interrupted

            raise typer.Exit(_report(ctx, Interrupted("Interrupted.")))
        except Exception as exc:
            raise typer.Exit(_report(ctx, exc))
        _stop_if_stdout_closed(ctx)
        return result


def _stop_if_stdout_closed(ctx) -> None:
    """A command that finished without noticing its reader left still exits 141, and says so."""
    invocation = ctx.obj
    if invocation is not None and invocation.terminal.stdout_closed:
        from runflow_bg.errors import OutputClosed

        raise typer.Exit(_report(ctx, OutputClosed("stdout was closed before everything was "
                                                   "printed; what was saved stays saved.")))


def _report(ctx, exc: BaseException) -> int:
    from runflow_bg.cli.terminal import Terminal

    invocation = ctx.obj
    if invocation is not None and invocation.terminal.stdout_closed and \
            getattr(exc, "exit_code", None) != 141:
        from runflow_bg.errors import OutputClosed

        invocation.terminal.error(exc, debug=invocation.debug)
        exc = OutputClosed("stdout was closed; the error above ended the command.")
    if invocation is None:  # the root callback itself failed
        import os

        return Terminal(os.environ).error(exc)
    return invocation.terminal.error(exc, debug=invocation.debug)


app = typer.Typer(
    name="runflow-bg",
    cls=RunflowGroup,
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
    from runflow_bg.cli.context import Invocation

    ctx.obj = Invocation.from_environment(api_key=api_key, base_url=base_url, debug=debug)
    ctx.call_on_close(ctx.obj.close)


app.command("replace", help=replace_cmd.HELP)(replace_cmd.replace)
app.command("batch", help=batch_cmd.HELP)(batch_cmd.batch)
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(auth_cmd.app, name="auth")
app.add_typer(config_cmd.app, name="config")
app.command("doctor", help=doctor_cmd.HELP)(doctor_cmd.doctor)
app.add_typer(webhook_cmd.app, name="webhook")
app.command("emulator", help=emulator_cmd.HELP)(emulator_cmd.emulator)
app.command("presets", help=presets_cmd.HELP)(presets_cmd.presets)
app.command("check", help=check_cmd.HELP)(check_cmd.check)
app.command("samples", help=samples_cmd.HELP)(samples_cmd.samples)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (CI cancelling a job) and SIGHUP (a closed terminal) are handled like Ctrl-C:
    record, report, exit 130."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


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
    """Console-script entry point: SIGTERM handled like Ctrl-C, quick completion, then the app."""
    import os

    _interrupt_on_sigterm()
    if COMPLETE_ENV in os.environ:
        _complete_quickly()
    app(prog_name="runflow-bg")
