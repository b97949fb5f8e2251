"""`runflow-bg config`: where the config file is, what it holds, and changing it."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)


def _complete_key(incomplete: str) -> list[str]:
    from runflow_bg.config import SETTINGS

    return [key for key in SETTINGS if key.startswith(incomplete)]


KEY = typer.Argument(..., metavar="KEY", autocompletion=_complete_key,
                     help="A setting's name; `runflow-bg config show` lists them.")


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the config file's path."""
    ctx.obj.terminal.out_lines([str(ctx.obj.settings.paths.config_file)])


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Every setting, its value and where it comes from (the API key masked)."""
    from runflow_bg import config
    from runflow_bg.urls import redact_url

    settings = ctx.obj.settings
    data = settings.file
    base_url, base_origin = settings.base_url_source
    rows = []
    for key, (description, _) in config.SETTINGS.items():
        if key == "base_url":
            origin = "config file" if base_origin == "config" else base_origin
            rows.append((key, redact_url(base_url), origin))
        elif key in data:
            rows.append((key, str(data[key]), "config file"))
        else:
            rows.append((key, "-", f"not set: {description}"))
    source = settings.key_source
    rows.append(("api_key", source.masked, source.origin) if source else ("api_key", "-", "not set"))
    width = max(len(value) for _, value, _ in rows)
    ctx.obj.terminal.out_lines([f"# {settings.paths.config_file}"] +
                               [f"{key:<12} {value:<{width}}  ({origin})"
                                for key, value, origin in rows])


@app.command("get")
def get(ctx: typer.Context, key: str = KEY) -> None:
    """Print the value KEY has in the config file (nothing when it is not set)."""
    from runflow_bg import config

    settings = ctx.obj.settings
    config.check_setting_name(key)
    value = settings.file.get(key)
    if value is None:
        ctx.obj.terminal.note(f"{key} is not set in {settings.paths.config_file}.")
        return
    ctx.obj.terminal.out_lines([str(value)])


@app.command("set")
def set_(ctx: typer.Context, key: str = KEY,
         value: str = typer.Argument(..., metavar="VALUE")) -> None:
    """Set KEY to VALUE in the config file, after checking the value."""
    from runflow_bg import config

    settings = ctx.obj.settings
    parsed = config.validate_setting(key, value)
    data = dict(settings.file)
    data[key] = parsed
    config.write_config_file(settings.paths.config_file, data)
    ctx.obj.terminal.note(f"Set {key} = {parsed} in {settings.paths.config_file}.")


@app.command("unset")
def unset(ctx: typer.Context, key: str = KEY) -> None:
    """Remove KEY from the config file, so that its default applies again."""
    from runflow_bg import config

    settings = ctx.obj.settings
    config.check_setting_name(key)
    data = dict(settings.file)
    if data.pop(key, None) is None:
        ctx.obj.terminal.note(f"{key} was not set.")
        return
    config.write_config_file(settings.paths.config_file, data)
    ctx.obj.terminal.note(f"Unset {key} in {settings.paths.config_file}.")
