"""`runflow-bg auth`: save the API key once, remove it, and see which key is used."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)


@app.command("login")
def login(
    ctx: typer.Context,
    with_token: bool = typer.Option(False, "--with-token",
                                    help="Read the key from standard input (for CI)."),
) -> None:
    """Check an API key with Runflow, then save it (mode 0600) for later commands."""
    import getpass

    from runflow_bg import config
    from runflow_bg.client import check_api_key
    from runflow_bg.errors import AuthError, UsageError

    invocation = ctx.obj
    terminal, settings = invocation.terminal, invocation.settings
    if with_token:
        key = sys.stdin.read().strip()
    elif sys.stdin.isatty():
        key = getpass.getpass("Runflow API key (input hidden): ").strip()
    else:
        raise UsageError("Standard input is not a terminal, so the key cannot be asked for.",
                         hint="Pipe it in with --with-token, e.g. "
                              "`printenv RUNFLOW_API_KEY | runflow-bg auth login --with-token`.")
    if not key:
        raise AuthError("No API key was given; nothing was saved.",
                        hint="Paste the key from Runflow's dashboard, or pipe it in with --with-token.")
    check_api_key(key)
    try:
        with invocation.anonymous_client(key) as client:
            account = client.me()
    except AuthError as exc:
        exc.message += " Nothing was saved."
        exc.hint = "Check the key in Runflow's dashboard and try again."
        raise
    path = config.save_api_key(settings.paths.credentials_file, key)
    masked = config.KeySource(key, str(path)).masked
    who = account_name(account)
    terminal.note(f"Logged in{f' as {who}' if who else ''} with key {masked}; saved to {path}.")
    if settings.environ.get(config.KEY_ENV):
        terminal.note(f"Note: {config.KEY_ENV} is set in this environment and takes precedence "
                      "over the saved key.")


@app.command("logout")
def logout(ctx: typer.Context) -> None:
    """Remove the key saved by `auth login`."""
    from runflow_bg import config

    terminal, settings = ctx.obj.terminal, ctx.obj.settings
    path = settings.paths.credentials_file
    try:
        path.unlink()
    except FileNotFoundError:
        terminal.note(f"No saved key to remove ({path} does not exist).")
    else:
        terminal.note(f"Removed the saved key ({path}).")
    if settings.environ.get(config.KEY_ENV):
        terminal.note(f"Note: {config.KEY_ENV} is still set in this environment, and is used.")
    shared = config.shared_credentials_file()
    if shared.exists():
        terminal.note(f"Note: Runflow's shared credentials file {shared} is left alone; it is "
                      "used when no other key is set.")


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Where the key comes from (flag, environment, file), and whether Runflow accepts it."""
    from runflow_bg.errors import AuthError
    from runflow_bg.urls import redact_url

    invocation = ctx.obj
    terminal, settings = invocation.terminal, invocation.settings
    source = invocation.key()
    base_url, base_origin = settings.base_url_source
    terminal.out(f"key       {source.masked} (from {source.origin})\n"
                 f"base URL  {redact_url(base_url)} ({base_origin})\n")
    try:
        with invocation.anonymous_client(source.key) as client:
            account = client.me()
    except AuthError as exc:
        exc.hint = (f"The key comes from {source.origin}: replace it there, or run "
                    "`runflow-bg auth login`.")
        raise
    terminal.out(f"account   {account_name(account) or 'unnamed'}\n"
                 "status    Runflow accepts the key\n")


def account_name(account: dict) -> str | None:
    """The account's email, else its first membership's organisation name, safe to print."""
    from runflow_bg.models import clean_text

    memberships = account.get("memberships")
    membership = memberships[0] if isinstance(memberships, list) and memberships else None
    org = membership.get("org") if isinstance(membership, dict) else None
    for value in (account.get("email"), org.get("name") if isinstance(org, dict) else None):
        if isinstance(value, str) and value.strip():
            return clean_text(value, 120)
    return None
