"""Typer's checks of option values, without pydantic for the plain types this CLI uses.

Typer (from 0.2x) converts every value that is not a flag through a pydantic TypeAdapter, and
the first one imports pydantic: about 0.1 s on every command, `replace --help` included. Here a
str, a whole or decimal number written plainly, a path or a list of str is converted the way
that adapter converts it, with typer's own path checks; anything else (a value out of range, a
number spelt `1e3`) goes through typer's pydantic check, so its messages stay typer's.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, get_args, get_origin

_WHOLE = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,15}(?:\.[0-9]{1,15})?")


class _Unsure(Exception):
    """The value is not in a plain form: typer's own check decides."""


def check_quickly(command: Any, ctx: Any, *, subcommands: bool = True) -> None:
    """Give the parameters of `command` in `ctx` (its help option included), and those of its
    subcommands unless told not to, the quick checks."""
    quick_param = _quick_param_class()
    if quick_param is None:  # typer before 0.2x: click converts values, without pydantic
        return
    for param in command.get_params(ctx):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", True) is not None:
            continue
        convert = _converter(descriptor)
        if convert is not None:
            param._runtime_param = quick_param(parameter_info=descriptor.parameter_info,
                                               annotation=descriptor.annotation, convert=convert)
    if subcommands:
        for sub in getattr(command, "commands", {}).values():
            check_quickly(sub, ctx)


@functools.cache
def _quick_param_class() -> type | None:
    try:
        from dataclasses import dataclass
        from typing import Callable

        from typer._coercion import RuntimeParam, build_runtime_param, resolve_type_descriptor
    except ImportError:
        return None

    @dataclass(frozen=True)
    class QuickParam(RuntimeParam):
        """Typer's runtime parameter (None and multiple values handled as it does), converting
        plain values itself and leaving the rest to typer's pydantic adapter."""

        convert: Callable[..., Any]

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value, self, param, ctx)
            except Exception:
                pass  # typer's check gives the answer, or the error, it always gave
            typer_param = build_runtime_param(resolve_type_descriptor(self.annotation,
                                                                      self.parameter_info))
            return typer_param._coerce_value(value, param=param, ctx=ctx)

    return QuickParam


def _converter(descriptor: Any):
    annotation, info = descriptor.annotation, descriptor.parameter_info
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None \
            or descriptor.file_annotation is not None:
        return None
    if annotation is bool:
        return _flag
    if annotation is str:
        return _text
    if annotation in (int, float) and not info.clamp:
        return _whole if annotation is int else _decimal
    if isinstance(annotation, type) and issubclass(annotation, Path) and info.path_type is None:
        return _path
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        return _texts
    return None


# Each converter gets the value, the parameter's QuickParam (its annotation and parameter_info),
# and the click parameter and context; it raises when the value is not in a plain form.

def _flag(value: Any, spec: Any, param: Any, ctx: Any) -> bool:
    if not isinstance(value, bool):
        raise _Unsure
    return value


def _text(value: Any, spec: Any, param: Any, ctx: Any) -> str:
    if not isinstance(value, str):
        raise _Unsure
    return value


def _texts(value: Any, spec: Any, param: Any, ctx: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _Unsure
    return list(value)


def _within(number: float, spec: Any) -> None:
    info = spec.parameter_info
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        raise _Unsure


def _whole(value: Any, spec: Any, param: Any, ctx: Any) -> int:
    if type(value) is not int:  # a default is already a number
        if not isinstance(value, str) or not _WHOLE.fullmatch(value):
            raise _Unsure
        value = int(value)
    _within(value, spec)
    return value


def _decimal(value: Any, spec: Any, param: Any, ctx: Any) -> float:
    if type(value) not in (int, float):
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            raise _Unsure
    value = float(value)
    _within(value, spec)
    return value


def _path(value: Any, spec: Any, param: Any, ctx: Any) -> Path:
    """The adapter makes the path (`Path(value)`) and hands it to this typer function, which
    checks it against the option's settings (exists, readable...)."""
    from typer._param_types import coerce_cli_path

    if not isinstance(value, (str, Path)):
        raise _Unsure
    return coerce_cli_path(spec.annotation(value), spec.parameter_info, path_type=spec.annotation,
                           param=param, ctx=ctx)
