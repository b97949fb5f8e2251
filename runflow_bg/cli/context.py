"""One invocation of the command line: the Python API's `Runflow`, with a terminal.

The root command puts an `Invocation` on the Typer context; every command calls the API through
it, so settings are resolved once, the environment is read only here, and notices, warnings and
the request log reach the terminal (which also learns every secret to hide).
"""

from __future__ import annotations

import os

from runflow_bg.api import Runflow
from runflow_bg.clock import Clock
from runflow_bg.cli.terminal import Terminal
from runflow_bg.config import CA_ENVS, PROXY_ENVS, Settings
from runflow_bg.workspace import Workspace


def new_clock() -> Clock:
    """The clock every wait of the invocation goes through (tests hand in one that skips)."""
    return Clock()


class Invocation(Runflow):
    """What the root command resolved, handed to every command through the context."""

    def __init__(self, settings: Settings, terminal: Terminal, debug: bool = False,
                 clock: Clock | None = None) -> None:
        # Settings come from the command line, not from Runflow's keyword arguments.
        Workspace.__init__(self, settings, clock or new_clock(), notice=terminal.notice,
                           warn=terminal.note, log=terminal.log, hide=terminal.hide)
        self.terminal, self.debug = terminal, debug

    @classmethod
    def from_environment(cls, *, api_key: str | None, base_url: str | None,
                         debug: bool) -> Invocation:
        environ = os.environ
        return cls(Settings(environ, api_key_flag=api_key, base_url_flag=base_url),
                   Terminal(environ), debug)

    def network_variables(self, *, proxies: bool) -> dict[str, str]:
        """The proxy (or CA) variables in effect, for `doctor`."""
        names = PROXY_ENVS if proxies else CA_ENVS
        return {name: self.settings.environ[name] for name in names
                if self.settings.environ.get(name)}
