"""The root command: global options, the table of commands, and the process entry point.

Only typer is imported at start-up. A command's module is imported, and the command built, when
the command is used: `--version` builds none, `--help` lists them from the table, a Tab press
builds the one it completes. Each command imports what it needs when it runs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from typing import Optional

import typer
from typer.core import TyperCommand, TyperGroup

from runflow_bg import __version__
from runflow_bg.cli.coercion import check_quickly

# name -> (its module in runflow_bg.cli, its help). A module holds either `app`, a Typer of
# subcommands, or a function named like the command. In the order `--help` lists them.
COMMANDS = {
    "replace": ("replace_cmd", "Replace the background of PHOTO with SCENE: pack, upload, run, "
                               "wait, download."),
    "batch": ("batch_cmd", "Replace the background of many photos with one scene, or each "
                           "with several; resumable, paid once per photo and scene."),
    "doctor": ("doctor_cmd", "Check the set-up: versions, paths, key, base URL, proxies, and "
                             "Runflow's answer."),
    "emulator": ("emulator_cmd", "Serve the built-in Runflow-compatible API on loopback, for free "
                                 "offline tests."),
    "presets": ("presets_cmd", "List the shop presets: their rules for a main image and the "
                               "pages they come from."),
    "check": ("check_cmd", "Check image files against a shop preset: one `FILE: problem` line "
                           "per broken rule."),
    "samples": ("samples_cmd", "Write the sample product photo and scene (bottle.png, "
                               "marble.jpg) to try the tool."),
    "runs": ("runs_cmd", "Runs submitted earlier: show, list, wait for them, download outputs."),
    "auth": ("auth_cmd", "Log in to Runflow once, log out, and see which key is used."),
    "config": ("config_cmd", "See and change runflow-bg's settings."),
    "webhook": ("webhook_cmd", "Check Runflow's signed callbacks."),
}
TYPER_SETTINGS = {"rich_markup_mode": None, "pretty_exceptions_enable": False}


def build_command(name: str):
    """The click command `name`, built by typer as part of a Typer with the root's settings."""
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(f"runflow_bg.cli.{module_name}")
    holder = typer.Typer(add_completion=False, **TYPER_SETTINGS)
    subcommands = getattr(module, "app", None)
    if isinstance(subcommands, typer.Typer):
        holder.add_typer(subcommands, name=name, help=help_text)
        command = typer.main.get_command(holder).commands[name]
    else:
        holder.command(name, help=help_text)(getattr(module, name))
        command = typer.main.get_command(holder)
    return command


class Commands(Mapping):
    """The root's commands by name, each built the first time it is looked up."""

    def __init__(self) -> None:
        self._built: dict = {}

    def __getitem__(self, name: str):
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = build_command(name)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class RunflowGroup(TyperGroup):
    """The root command group: the one place where an error becomes a message and an exit code.

    Typer and Click handle their own usage errors (exit 2) and `typer.Exit`; every other
    exception raised by a command is printed by the invocation's terminal, with its hint, and
    ends the process with the exit code its class carries (1 for anything unexpected).
    Its commands are built when first looked up (`Commands`).
    """

    def __init__(self, **attrs) -> None:
        super().__init__(**attrs)
        self.commands = Commands()

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx, formatter) -> None:
        """The command list of `--help`, from the table: listing builds no command."""
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, TyperCommand(name=name, help=text).get_short_help_str(limit))
                for name, (_, text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx, name: str):
        command = super().get_command(ctx, name)
        if command is not None:
            check_quickly(command, ctx)
        return command

    def parse_args(self, ctx, args):
        if ctx.resilient_parsing:  # click parses resiliently only to complete a Tab press
            _complete_quickly()
        check_quickly(self, ctx, subcommands=False)
        return super().parse_args(ctx, args)

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
    context_settings={"help_option_names": ["-h", "--help"]},
    **TYPER_SETTINGS,
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


def _exit_at_once() -> None:
    """After a clean finish, end the process without tearing the interpreter down (tens of ms
    of freeing objects, more on a busy machine): the output is flushed, the exit handlers run,
    and no other thread is left. Otherwise return, for the usual exit."""
    import atexit
    import os
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if threading.active_count() > 1 or run_exit_handlers is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or stream: the usual exit reports it
        return
    run_exit_handlers()
    os._exit(0)


def main() -> None:
    """Console-script entry point: SIGTERM handled like Ctrl-C, then the app. Every file the
    commands write is closed when they return, and the journal's writes are durable as made."""
    _interrupt_on_sigterm()
    try:
        app(prog_name="runflow-bg")
    except SystemExit as finished:
        if finished.code in (None, 0):
            _exit_at_once()
        raise
