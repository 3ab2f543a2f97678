"""SECONDS, a TTL as typed on the command line: a positive finite number that fits the wire.

The client checks the same (``ttl_ms``) once the runtime is up; checking it
as click parses the argument makes a bad TTL a usage error (exit 2) that
costs no runtime and writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

__all__ = ["check_seconds", "seconds_argument", "ttl_option"]

F = TypeVar("F", bound=Callable[..., Any])

#: The longest TTL the wire carries: a uint64 of milliseconds.
_MAX_SECONDS: Final = (2**64 - 1) / 1000


def check_seconds(
    _ctx: click.Context, _param: click.Parameter, value: float | None
) -> float | None:
    """Option callback: ``value`` (a float, or None when not given) as a TTL, or a usage error."""
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"{value!r} is not a positive number of seconds")
    if value > _MAX_SECONDS:
        raise click.BadParameter(f"{value!r} is longer than the wire's TTL (2**64-1 ms)")
    return value


def seconds_argument(name: str) -> Callable[[F], F]:
    """A required SECONDS argument."""
    return click.argument(name, type=float, callback=check_seconds)


def ttl_option(*names: str, help: str) -> Callable[[F], F]:
    """An optional SECONDS option (None when not given)."""
    return click.option(*names, type=float, metavar="SECONDS", callback=check_seconds, help=help)
