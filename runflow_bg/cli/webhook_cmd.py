"""`runflow-bg webhook verify`: check that a callback body was signed with the org's secret."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from runflow_bg.config import WEBHOOK_SECRET_ENV


app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)


@app.command("verify")
def verify(
    ctx: typer.Context,
    body_file: Optional[str] = typer.Argument(
        None, metavar="[BODY_FILE|-]", help="The raw callback body as received; - (or nothing) "
                                             "reads standard input."),
    signature: str = typer.Option(..., "--signature", metavar="HEX",
                                  help="The value of the Runflow-Signature header."),
    secret_env: str = typer.Option(WEBHOOK_SECRET_ENV, "--secret-env", metavar="NAME",
                                   help="The environment variable holding the signing secret."),
    as_json: bool = typer.Option(False, "--json", help="Print the verified event as JSON."),
) -> None:
    """Verify a callback's HMAC-SHA256 signature: exit 0 when valid, 4 when not."""
    from runflow_bg.errors import InputError, UsageError
    from runflow_bg.webhook import is_valid, parse_event

    terminal = ctx.obj.terminal
    secret = ctx.obj.settings.environ.get(secret_env, "")
    if not secret:
        raise UsageError(f"{secret_env} is not set: it must hold the callback signing secret.",
                         hint=f"Export the org's secret (whsec_...) as {secret_env}, or name "
                              "another variable with --secret-env.")
    body = _read_body(body_file)
    if not is_valid(secret, body, signature):
        raise InputError(
            f"The signature does not match the body (secret from {secret_env}).",
            hint="Verify the raw bytes exactly as received, before any JSON parsing, with the "
                 "secret that signed them (whsec_ prefix included).")
    if as_json:
        terminal.out_json(parse_event(body))
    else:
        terminal.note("Signature is valid.")


MAX_BODY_BYTES = 1024 * 1024  # a callback envelope is a few KB


def _bounded(stream, name: str) -> bytes:
    """The body, refused past MAX_BODY_BYTES instead of read into memory whole."""
    from runflow_bg.errors import InputError

    body = stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise InputError(f"{name}: over {MAX_BODY_BYTES // 1024} KiB, too large for a callback "
                         "body; nothing was verified.",
                         hint="Pass the raw body of one callback request.")
    return body


def _read_body(body_file: Optional[str]) -> bytes:
    from pathlib import Path

    from runflow_bg.errors import InputError, UsageError

    if body_file in (None, "-"):
        if body_file is None and sys.stdin.isatty():
            raise UsageError("Give BODY_FILE, or pipe the body to standard input.")
        return _bounded(sys.stdin.buffer, "standard input")
    path = Path(body_file)
    try:
        with path.open("rb") as handle:
            return _bounded(handle, body_file)
    except FileNotFoundError:
        raise InputError(f"{body_file}: no such file.") from None
    except IsADirectoryError:
        raise InputError(f"{body_file}: not a regular file.") from None
    except OSError as exc:
        raise InputError(f"{body_file}: cannot be read ({exc.strerror}).") from None
