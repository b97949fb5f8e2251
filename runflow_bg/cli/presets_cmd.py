"""`runflow-bg presets`: what each shop asks of a main image, and where each rule comes from."""

from __future__ import annotations

import typer

COLUMNS = ("PRESET", "ACCEPTS", "PIXELS", "ASPECT", "BYTES", "COLOUR", "AI LABEL", "WRITES")


def presets(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json",
                                 help="One JSON object per preset on stdout (JSON Lines)."),
) -> None:
    """List the shop presets: their rules for a main image and the pages they come from."""
    from runflow_bg.presets import PRESETS

    terminal = ctx.obj.terminal
    if as_json:
        for preset in PRESETS.values():
            terminal.out_json(preset.to_json())
        return
    if terminal.stdout_is_terminal:
        _print_table(terminal, PRESETS.values())
    else:
        terminal.out_lines([_rules_line(preset) for preset in PRESETS.values()] + [""])
    terminal.out_lines([line for preset in PRESETS.values() for line in _source_lines(preset)])


def _row(preset) -> tuple[str, ...]:
    return (preset.name, *preset.describe().values())


def _rules_line(preset) -> str:
    rules = preset.describe()
    return (f"{preset.name}: accepts {rules['accepts']}; pixels {rules['pixels']}; "
            f"aspect {rules['aspect']}; bytes {rules['bytes']}; colour {rules['colour']}; "
            f"AI label {rules['ai_label']}; writes {rules['writes']}")


def _source_lines(preset) -> list[str]:
    return [f"{preset.name} ({preset.shop}):"] + [
        f"  {source.url}\n    {source.statement}" for source in preset.sources]


def _print_table(terminal, presets) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*COLUMNS, box=None, header_style="bold", pad_edge=False)
    for preset in presets:
        table.add_row(*map(Text, _row(preset)))
    console = Console(file=terminal.stdout, highlight=False)
    console.print(table)
    console.print()
