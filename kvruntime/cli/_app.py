"""The ``kvruntime`` command group, its shared options and its exit codes.

Exit codes (documented in the README, "Command line"):

- 0: done;
- 1: kv:distro:sys answered with an error (no such db, key not found, no
  capability...), or the work failed (a truncated dump, a missing example);
- 2: a usage mistake: bad arguments, a bad package id or db name, malformed
  JSON, hex or base64 (click's own usage errors use 2 as well);
- 3: the home cannot be used: missing, in use by a running runtime, or a
  folder that is no home;
- 4: ``ttl`` only: the key is present and never expires (``expiry``);
- 130: interrupted (Ctrl-C), as a shell reports a SIGINT.

A user mistake never shows a Python traceback: every expected failure is a
``CliError`` (a ``click.ClickException``), which click prints as ``Error: ...``.
With ``--json`` the error is instead one JSON object on stdout,
``{"error": {"message": ..., "exit_code": N}}``, with the same exit code and
nothing on stderr: a script reads one stream, whatever happened.

Start-up is part of the interface (a ``get`` is one process): this module and
the command modules import only click at import time; a command's module is
imported when the command is looked up (``COMMAND_MODULES``), and each
command imports what it needs (the runtime, rich, msgpack) when it runs, so
``--help`` and a usage error cost an interpreter and click.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

if TYPE_CHECKING:
    from protocol.ids import PackageId

__all__ = [
    "COMMAND_MODULES",
    "EXIT_HOME",
    "EXIT_INTERRUPTED",
    "EXIT_KV",
    "EXIT_USAGE",
    "CliError",
    "cli",
    "db_argument",
    "echo_json",
    "home_option",
    "json_option",
    "keys_argument",
    "package_argument",
    "parse_db",
    "parse_package",
    "plural",
    "set_json_mode",
    "storage",
    "verbose_option",
    "verbosity",
]

EXIT_KV = 1
EXIT_USAGE = 2
EXIT_HOME = 3
EXIT_INTERRUPTED = 130

#: The module (in this package) that defines each command, imported when the
#: command is looked up: a ``get`` imports ``keys`` and not ``serve``'s.
COMMAND_MODULES: Final = {
    "get": "keys",
    "set": "keys",
    "del": "keys",
    "scan": "keys",
    "incr": "atomics",
    "cas": "atomics",
    "share": "access",
    "revoke": "access",
    "rm-db": "access",
    "send": "send",
    "dump": "dumpload",
    "load": "dumpload",
    "ls": "admin",
    "caps": "admin",
    "repair": "admin",
    "run": "host",
    "bench": "host",
    "serve": "serve",
    "shell": "shell",
    # keys with a TTL (issue 14)
    "expire": "expiry",
    "persist": "expiry",
    "ttl": "expiry",
    "ttl-policy": "expiry",
    # change feeds (issue 14)
    "watch": "watch",
}

F = TypeVar("F", bound=Callable[..., Any])

#: Keys of the click context's ``meta``, shared by the group and its command.
_VERBOSITY = "kvruntime.verbosity"
_HOME = "kvruntime.home"
_STORAGE = "kvruntime.storage"  # issue 13: --storage URL
_JSON = "kvruntime.json"


class CliError(click.ClickException):
    """An expected failure: printed as ``Error: message``, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_KV) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click types it as a ClassVar


class _JsonError(click.ClickException):
    """A failure of a ``--json`` command: shown as a JSON object on stdout."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click types it as a ClassVar

    def show(self, file: Any = None) -> None:
        doc = {"error": {"message": self.message, "exit_code": self.exit_code}}
        echo_json(doc)


class _Group(click.Group):
    """The group: commands loaded on use, JSON errors for ``--json``, exit 130 on Ctrl-C."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            from ._startup import start_up

            with start_up():  # a one-shot process's start-up (``_startup``)
                importlib.import_module(f".{module}", __package__)  # @cli.command registers it
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except click.ClickException as exc:  # a usage error included
            if ctx.meta.get(_JSON):
                raise _JsonError(exc.format_message(), exc.exit_code) from None
            raise

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # A usage error in the command's own arguments still knows it was --json.
        if "--json" in args:
            ctx.meta[_JSON] = True
        return super().parse_args(ctx, args)


def _set_verbosity(ctx: click.Context, _: click.Parameter, count: int) -> int:
    total = ctx.meta.get(_VERBOSITY, 0) + count  # `kvruntime -v get -v` is -vv
    if count or not ctx.meta.get(_VERBOSITY):
        level = {0: logging.WARNING, 1: logging.INFO}.get(total, logging.DEBUG)
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    ctx.meta[_VERBOSITY] = total
    return count


def _set_home(ctx: click.Context, _: click.Parameter, home: Path | None) -> Path | None:
    if home is not None:
        ctx.meta[_HOME] = home
    return home


def _default_home() -> Path:
    ctx = click.get_current_context(silent=True)
    given = None if ctx is None else ctx.meta.get(_HOME)
    if isinstance(given, Path):
        return given
    return Path(os.environ.get("KVRUNTIME_HOME") or "./data")


# --- --storage (issue 13): where the dbs live; the default is LevelDB under --home ---


def _set_storage(ctx: click.Context, _: click.Parameter, storage: str | None) -> str | None:
    if storage is not None:
        ctx.meta[_STORAGE] = storage
    return storage


def storage() -> str | None:
    """The running command's ``--storage`` (before or after its name), else
    ``$KVRUNTIME_STORAGE``, else None (LevelDB under the home)."""
    ctx = click.get_current_context(silent=True)
    given = None if ctx is None else ctx.meta.get(_STORAGE)
    return given if isinstance(given, str) else os.environ.get("KVRUNTIME_STORAGE") or None


def _storage(**kwargs: Any) -> Callable[[F], F]:
    return click.option(
        "--storage",
        metavar="URL",
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_set_storage,
        help="Where the dbs live: redis-cluster://host:port,... (default $KVRUNTIME_STORAGE,"
        " else LevelDB under the home); also before the command.",
        **kwargs,
    )


def verbosity() -> int:
    """How many ``-v`` the running command was given, before and after its name."""
    ctx = click.get_current_context(silent=True)
    count = 0 if ctx is None else ctx.meta.get(_VERBOSITY, 0)
    assert isinstance(count, int)
    return count


def set_json_mode(ctx: click.Context, _: click.Parameter, value: object) -> object:
    """Option callback: mark the command as ``--json`` (errors become JSON too)."""
    if value is True or getattr(value, "value", None) == "json":
        ctx.meta[_JSON] = True
    return value


def plural(count: int, noun: str) -> str:
    """``1 chunk``, ``2 chunks``, ``0 entries``."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("y") else f"{count} {noun}s"


def _verbose(**kwargs: Any) -> Callable[[F], F]:
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        is_eager=True,
        callback=_set_verbosity,
        help="Log to stderr (-v info, -vv debug); also before the command.",
        **kwargs,
    )


def verbose_option(func: F) -> F:
    """``-v`` (INFO) / ``-vv`` (DEBUG) logging to stderr, adding to the group's ``-v``."""
    return _verbose()(func)


def home_option(func: F) -> F:
    """``--home DIR``: default the group's ``--home``, ``$KVRUNTIME_HOME``, ``./data``;
    and ``--storage URL`` (read by ``storage()``)."""
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=_default_home,
        show_default="kvruntime --home, $KVRUNTIME_HOME or ./data",
        help="The runtime home directory (also before the command).",
    )(_storage()(func))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvruntime")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    expose_value=False,
    is_eager=True,
    callback=_set_home,
    help="The runtime home directory, for every command (default $KVRUNTIME_HOME or ./data).",
)
@_storage()
@_verbose()
def cli() -> None:
    """kvruntime: inspect and drive the kv:distro:sys store of a runtime home.

    Every command except `repair` starts a runtime on the home and talks to
    kv:distro:sys as an administrative process of the target package
    (kvruntime-cli:PACKAGE), with the same checks and errors as any process.
    The capabilities that process needs are taken back when the command ends.

    Values are written as text on a terminal and as raw bytes into a pipe or
    file (as redis-cli does); --text, --raw, --hex and --json choose.

    \b
    Example:
      kvruntime set my-app:publisher.os notes hello world --create
      kvruntime --home ./data get my-app:publisher.os notes hello
    """


def parse_package(text: str) -> PackageId:
    """``text`` as a PackageId, or a usage error."""
    from protocol.ids import IdError, PackageId

    try:
        return PackageId.parse(text)
    except IdError as exc:
        raise CliError(f"bad package id {text!r}: {exc}", EXIT_USAGE) from None


def parse_db(text: str) -> str:
    """``text`` as a db name, or a usage error."""
    from protocol.ids import IdError, validate_db_name

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


def keys_argument(func: F) -> F:
    """One KEY or more."""
    return click.argument("keys", metavar="KEY...", nargs=-1, required=True)(func)


def json_option(func: F) -> F:
    """``--json``: the output, and any error, as JSON on stdout."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=set_json_mode,
        help="Write JSON on stdout (one object per line), errors included.",
    )(func)


def echo_json(doc: object) -> None:
    """One JSON document on one line of stdout."""
    import json  # only a --json command pays for it

    click.echo(json.dumps(doc, ensure_ascii=False))
