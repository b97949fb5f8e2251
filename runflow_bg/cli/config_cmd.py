"""`runflow-bg config`: where the config file is, what it holds, and changing it."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(help="See and change runflow-bg's settings.", no_args_is_help=True,
                  rich_markup_mode=None)


def _complete_key(incomplete: str) -> list[str]:
    from runflow_bg.config import SETTINGS

    return [key for key in SETTINGS if key.startswith(incomplete)]


KEY = typer.Argument(..., metavar="KEY", autocompletion=_complete_key,
                     help="A setting's name; `runflow-bg config show` lists them.")


@app.command("path")
def path() -> None:
    """Print the config file's path."""
    from runflow_bg.config import paths

    sys.stdout.write(f"{paths().config_file}\n")


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Every setting, its value and where it comes from (the API key masked)."""
    from runflow_bg import config
    from runflow_bg.urls import redact_url

    data = config.load_config()
    base_url, base_origin = config.resolve_base_url(ctx.obj.base_url)
    rows = []
    for key, (description, _) in config.SETTINGS.items():
        if key == "base_url":
            origin = "config file" if base_origin == "config" else base_origin
            rows.append((key, redact_url(base_url), origin))
        elif key in data:
            rows.append((key, str(data[key]), "config file"))
        else:
            rows.append((key, "-", f"not set: {description}"))
    source = config.find_api_key(ctx.obj.api_key)
    rows.append(("api_key", source.masked, source.origin) if source else ("api_key", "-", "not set"))
    width = max(len(value) for _, value, _ in rows)
    sys.stdout.write(f"# {config.paths().config_file}\n")
    sys.stdout.write("".join(f"{key:<12} {value:<{width}}  ({origin})\n"
                             for key, value, origin in rows))


@app.command("get")
def get(key: str = KEY) -> None:
    """Print the value KEY has in the config file (nothing when it is not set)."""
    from runflow_bg import config

    config.check_setting_name(key)
    value = config.load_config().get(key)
    if value is None:
        sys.stderr.write(f"{key} is not set in {config.paths().config_file}.\n")
        return
    sys.stdout.write(f"{value}\n")


@app.command("set")
def set_(key: str = KEY, value: str = typer.Argument(..., metavar="VALUE")) -> None:
    """Set KEY to VALUE in the config file, after checking the value."""
    from runflow_bg import config

    parsed = config.validate_setting(key, value)
    data = config.load_config()
    data[key] = parsed
    config.save_config(data)
    sys.stderr.write(f"Set {key} = {parsed} in {config.paths().config_file}.\n")


@app.command("unset")
def unset(key: str = KEY) -> None:
    """Remove KEY from the config file, so that its default applies again."""
    from runflow_bg import config

    config.check_setting_name(key)
    data = config.load_config()
    if data.pop(key, None) is None:
        sys.stderr.write(f"{key} was not set.\n")
        return
    config.save_config(data)
    sys.stderr.write(f"Unset {key} in {config.paths().config_file}.\n")
