"""The one place that turns an exception into a message on stderr and an exit code."""

from __future__ import annotations

import sys
import traceback

from runflow_bg.errors import ExitCode, RunflowBgError


def report(exc: BaseException, *, debug: bool = False) -> int:
    """Print `exc` for a person (traceback only with --debug) and return the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, RunflowBgError):
        lines = [f"Error: {exc.message}"]
        hint = exc.hint or ""
        if exc.request_id:
            hint = f"{hint} Request id: {exc.request_id}".strip()
        if hint:
            lines.append(f"Hint: {hint}")
        code = int(exc.exit_code)
    else:
        lines = [f"Error: internal error ({type(exc).__name__}).",
                 "Hint: run again with --debug for details, and report it if it persists."]
        code = int(ExitCode.INTERNAL)
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    return code
