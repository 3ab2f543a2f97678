"""The ``kvruntime`` command group, its shared options and its exit codes.

Exit codes (documented in the README, "Command line"):

- 0: done;
- 1: kv:distro:sys answered with an error (no such db, key not found, no
  capability...), or the work failed (a truncated dump, a missing example);
- 2: a usage mistake: bad arguments, a bad package id or db name, malformed
  JSON, hex or base64 (click's own usage errors use 2 as well);
- 3: the home cannot be used: missing, or in use by a running runtime.

A user mistake never shows a Python traceback: every expected failure is a
``CliError`` (a ``click.ClickException``), which click prints as ``Error: ...``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from protocol.ids import IdError, PackageId, validate_db_name

__all__ = [
    "EXIT_HOME",
    "EXIT_KV",
    "EXIT_USAGE",
    "CliError",
    "cli",
    "db_argument",
    "home_option",
    "package_argument",
    "parse_db",
    "parse_package",
    "verbose_option",
    "verbosity",
]

EXIT_KV = 1
EXIT_USAGE = 2
EXIT_HOME = 3

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """An expected failure: printed as ``Error: message``, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_KV) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click types it as a ClassVar


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvruntime")
def cli() -> None:
    """kvruntime: inspect and drive the kv:distro:sys store of a runtime home.

    Every command except `repair` starts a runtime on the home and talks to
    kv:distro:sys as an administrative process of the target package
    (kvruntime-cli:PACKAGE), with the same checks and errors as any process.

    \b
    Example:
      kvruntime set my-app:publisher.os notes hello world --create
      kvruntime get my-app:publisher.os notes hello
    """


#: Where ``-v`` leaves its count, in the click context's ``meta`` (read by ``verbosity``).
_VERBOSITY = "kvruntime.verbosity"


def _set_verbosity(ctx: click.Context, _: click.Parameter, count: int) -> int:
    level = {0: logging.WARNING, 1: logging.INFO}.get(count, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    ctx.meta[_VERBOSITY] = count
    return count


def verbosity() -> int:
    """How many ``-v`` the running command was given (0 outside a command)."""
    ctx = click.get_current_context(silent=True)
    count = 0 if ctx is None else ctx.meta.get(_VERBOSITY, 0)
    assert isinstance(count, int)
    return count


def verbose_option(func: F) -> F:
    """``-v`` (INFO) / ``-vv`` (DEBUG) logging to stderr."""
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        is_eager=True,
        callback=_set_verbosity,
        help="Log to stderr (-v info, -vv debug).",
    )(func)


def home_option(func: F) -> F:
    """``--home DIR``: the runtime home, default ``$KVRUNTIME_HOME`` or ``./data``."""
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get("KVRUNTIME_HOME", "./data"),
        show_default="$KVRUNTIME_HOME or ./data",
        help="The runtime home directory.",
    )(func)


def parse_package(text: str) -> PackageId:
    """``text`` as a PackageId, or a usage error."""
    try:
        return PackageId.parse(text)
    except IdError as exc:
        raise CliError(f"bad package id {text!r}: {exc}", EXIT_USAGE) from None


def parse_db(text: str) -> str:
    """``text`` as a db name, or a usage error."""
    try:
        return validate_db_name(text)
    except IdError as exc:
        raise CliError(f"bad db name {text!r}: {exc}", EXIT_USAGE) from None


def package_argument(func: F) -> F:
    """The PACKAGE argument (``name:publisher``)."""
    return click.argument("package", callback=lambda _c, _p, v: parse_package(v))(func)


def db_argument(func: F) -> F:
    """The DB argument (a db name)."""
    return click.argument("db", callback=lambda _c, _p, v: parse_db(v))(func)
