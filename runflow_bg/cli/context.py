"""One invocation of the command line: the Python API's `Runflow`, with a terminal.

The root command puts an `Invocation` on the Typer context; every command calls the API through
it, so settings are resolved once, the environment is read only here, and notices, warnings and
the request log reach the terminal (which also learns every secret to hide). The settings and
the terminal are made when a command first asks for them (`replace --help` asks for neither),
so the root command imports little.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING

from runflow_bg.api import Runflow
from runflow_bg.clock import Clock
from runflow_bg.workspace import Workspace

if TYPE_CHECKING:
    from runflow_bg.cli.terminal import Terminal
    from runflow_bg.config import Settings


def new_clock() -> Clock:
    """The clock every wait of the invocation goes through (tests hand in one that skips)."""
    return Clock()


class Invocation(Runflow):
    """What the root command resolved, handed to every command through the context."""

    def __init__(self, environ: Mapping[str, str], *, api_key: str | None = None,
                 base_url: str | None = None, debug: bool = False) -> None:
        self.environ = environ
        self.api_key_flag = api_key
        self.base_url_flag = base_url
        self.debug = debug
        # Settings come from the command line (made on first use), not from Runflow's keywords.
        Workspace.__init__(self, None, new_clock(),
                           notice=lambda message: self.terminal.notice(message),
                           warn=lambda message: self.terminal.note(message),
                           log=lambda message: self.terminal.log(message),
                           hide=lambda secret: self.terminal.hide(secret))

    @classmethod
    def from_environment(cls, *, api_key: str | None, base_url: str | None,
                         debug: bool) -> Invocation:
        return cls(os.environ, api_key=api_key, base_url=base_url, debug=debug)

    @cached_property
    def settings(self) -> Settings:
        from runflow_bg.config import Settings

        return Settings(self.environ, api_key_flag=self.api_key_flag,
                        base_url_flag=self.base_url_flag)

    @cached_property
    def terminal(self) -> Terminal:
        from runflow_bg.cli.terminal import Terminal

        return Terminal(self.environ)

    def network_variables(self, *, proxies: bool) -> dict[str, str]:
        """The proxy (or CA) variables in effect, for `doctor`."""
        from runflow_bg.config import CA_ENVS, PROXY_ENVS

        names = PROXY_ENVS if proxies else CA_ENVS
        return {name: self.settings.environ[name] for name in names
                if self.settings.environ.get(name)}
