"""The one error tree: every failure a user can meet, with its exit code and a hint.

    RunflowBgError (1)                  base; an internal error or an answer not understood
    +-- ProtocolError (1)               the service answered something the tool cannot read
    +-- UsageError (2)                  a bad flag or combination of flags
    +-- AuthError (3)                   no key, or the API refused it (401/403)
    +-- InputError (4)                  a bad local file, an existing output, a 400/404/409/422
    |   +-- RunNotFound (4)
    +-- UnavailableError (5)            429, 5xx, connection or timeout after retries
    +-- RunFailed (6)                   the run finished badly (failed, errored, canceled)
    +-- WaitTimeout (7)                 --timeout reached; the run goes on server-side
    +-- InsufficientCredit (8)          402 from the API
    +-- BudgetReached (8)               --max-cost reached
    +-- CreateUnknown (9)               a create's answer was lost and the run cannot be found yet
    +-- Interrupted (130)               Ctrl-C, SIGTERM or SIGHUP
    +-- OutputClosed (141)              stdout was closed (a reader such as `head` went away)

Messages name files, run ids and request ids, never an API key or a presigned query string.
Exactly one place (the CLI) turns these into text and an exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the command-line contract."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    AUTH = 3
    BAD_INPUT = 4
    UNAVAILABLE = 5
    RUN_FAILED = 6
    TIMEOUT = 7
    CREDIT = 8
    CREATE_UNKNOWN = 9
    INTERRUPTED = 130
    OUTPUT_CLOSED = 141


class RunflowBgError(Exception):
    """Base of every error the tool reports; carries an exit code and a hint."""

    exit_code: ExitCode = ExitCode.INTERNAL
    default_hint: str | None = "Run the command again with --debug for details."

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.code = code
        self.status = status
        self.request_id = request_id
        self.run_id = run_id
        self.log: tuple[str, ...] = ()  # a failed run's last log lines, when Runflow has them

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        """The `error` object of the JSON output."""
        data = {
            "code": self.code or type(self).__name__,
            "message": self.message,
            "exit_code": int(self.exit_code),
        }
        if self.log:
            data["log"] = list(self.log)
        return data


class ProtocolError(RunflowBgError):
    exit_code = ExitCode.INTERNAL
    default_hint = "The service sent an answer this version of runflow-bg cannot read; try --debug."


class UsageError(RunflowBgError):
    exit_code = ExitCode.USAGE
    default_hint = "See `runflow-bg --help`."


class AuthError(RunflowBgError):
    exit_code = ExitCode.AUTH
    default_hint = "Check RUNFLOW_API_KEY, or run `runflow-bg auth login`."


class InputError(RunflowBgError):
    exit_code = ExitCode.BAD_INPUT
    default_hint = "Check the file, folder or value named above."


class RunNotFound(InputError):
    default_hint = "Check the run id; runs of another organisation are not visible."


class UnavailableError(RunflowBgError):
    exit_code = ExitCode.UNAVAILABLE
    default_hint = "The service or the network is unavailable; try again later."


class RunFailed(RunflowBgError):
    exit_code = ExitCode.RUN_FAILED
    default_hint = "Submitting the request again starts a new, paid run."


class WaitTimeout(RunflowBgError):
    exit_code = ExitCode.TIMEOUT
    default_hint = "The run goes on server-side; `runflow-bg runs wait RUN_ID` picks it up."


class InsufficientCredit(RunflowBgError):
    exit_code = ExitCode.CREDIT
    default_hint = "Top up your Runflow balance, then run the command again."


class BudgetReached(RunflowBgError):
    exit_code = ExitCode.CREDIT
    default_hint = "Raise --max-cost to submit the remaining items."


class CreateUnknown(RunflowBgError):
    """Whether a run was created (and paid for) is unknown: never create again on a guess."""

    exit_code = ExitCode.CREATE_UNKNOWN
    default_hint = ("Run the same command again in a minute: it looks the run up first, and "
                    "creates one only if Runflow still has none.")


class Interrupted(RunflowBgError):
    exit_code = ExitCode.INTERRUPTED
    default_hint = "Run the same command again to resume; nothing is paid twice."


class OutputClosed(RunflowBgError):
    """Whoever read stdout went away: what was paid for is kept, and nothing new is started."""

    exit_code = ExitCode.OUTPUT_CLOSED
    default_hint = "Run the same command again with stdout open: nothing is paid twice."
