"""``expire``, ``persist``, ``ttl`` and ``ttl-policy``: keys with a TTL (issue 14), as redis-cli.

``set --ttl`` (SET EX) is in ``keys`` and ``load --ttl`` in ``dumpload``.
``ttl`` has three answers, which redis-cli's TTL gives as a number (the
seconds, -1, -2) and this command as its exit code, so that a script never
reads a sentinel as a TTL:

- 0: the key expires; stdout is the seconds left, whole and rounded up (a
  key about to expire shows 1, never 0), or milliseconds with ``--ms``;
- ``EXIT_NO_EXPIRY`` (4): the key is present and never expires; nothing
  on stdout, ``key K has no expiry`` on stderr;
- 1: the key is absent (an expired key is absent), as ``get`` says it.

With ``--json``: ``{"key": ..., "ttl": SECONDS}`` (milliseconds exact, as a
float), ``"ttl": null`` for no expiry (exit 4), the error object for a
missing key (exit 1).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import click

from ._app import (
    CliError,
    cli,
    db_argument,
    echo_json,
    home_option,
    json_option,
    package_argument,
    verbose_option,
)
from ._render import parse_bytes, readable, render_value_json
from ._seconds import seconds_argument, ttl_option
from ._session import as_admin, open_db, run_in_home

if TYPE_CHECKING:
    from protocol.ids import PackageId

    from .. import kv
    from ..kernel.process import ProcessContext

__all__ = ["EXIT_NO_EXPIRY", "expire", "persist", "ttl", "ttl_policy"]

T = TypeVar("T")

#: ``ttl``'s exit code for a present key that never expires (redis-cli's -1).
EXIT_NO_EXPIRY: Final = 4

_KEY_HEX = click.option("--key-hex", is_flag=True, help="KEY is hex, not text.")


def _on_key(
    home: Path,
    package: PackageId,
    db: str,
    key: bytes,
    call: Callable[[kv.Kv[bytes, bytes]], Awaitable[T]],
) -> T:
    """``call(handle)`` on ``db``, about ``key``: KeyNotFound is exit 1 naming the key."""

    async def body(ctx: ProcessContext) -> T:
        from .. import kv

        handle = await open_db(ctx, package, db, create=False)
        try:
            return await call(handle)
        except kv.KeyNotFound:
            raise CliError(f"key {readable(key)} not found in db [{package}, {db}]") from None

    return run_in_home(home, lambda s: as_admin(s, package, body))


@cli.command()
@package_argument
@db_argument
@click.argument("key")
@seconds_argument("seconds")
@_KEY_HEX
@json_option
@home_option
@verbose_option
def expire(
    package: PackageId,
    db: str,
    key: str,
    seconds: float,
    key_hex: bool,
    as_json: bool,
    home: Path,
) -> None:
    """Make KEY expire SECONDS from now (a fraction is fine); exit 1 if KEY is absent.

    A new TTL replaces the one KEY had. The db's policy (ttl-policy) may
    refuse it: TtlDisabled, or TtlTooLarge past its maximum (exit 1).

    \b
    Example:
      kvruntime expire my-app:publisher.os sessions abc123 3600
    """
    raw_key = parse_bytes(key, is_hex=key_hex, what="KEY")
    _on_key(home, package, db, raw_key, lambda h: h.expire(raw_key, seconds))
    if as_json:
        echo_json({"ok": True})


@cli.command()
@package_argument
@db_argument
@click.argument("key")
@_KEY_HEX
@json_option
@home_option
@verbose_option
def persist(
    package: PackageId, db: str, key: str, key_hex: bool, as_json: bool, home: Path
) -> None:
    """Take the expiry off KEY (it never expires; none is fine); exit 1 if KEY is absent.

    \b
    Example:
      kvruntime persist my-app:publisher.os sessions abc123
    """
    raw_key = parse_bytes(key, is_hex=key_hex, what="KEY")
    _on_key(home, package, db, raw_key, lambda h: h.persist(raw_key))
    if as_json:
        echo_json({"ok": True})


@cli.command()
@package_argument
@db_argument
@click.argument("key")
@click.option("--ms", is_flag=True, help="Print milliseconds (as redis-cli's PTTL).")
@_KEY_HEX
@json_option
@home_option
@verbose_option
def ttl(
    package: PackageId, db: str, key: str, ms: bool, key_hex: bool, as_json: bool, home: Path
) -> None:
    """Print the seconds KEY has left (rounded up).

    Exit 0 with the seconds; exit 4 (nothing on stdout) if KEY never
    expires; exit 1 if KEY is absent. --json: {"key": ..., "ttl": SECONDS
    or null}.

    \b
    Example:
      kvruntime ttl my-app:publisher.os sessions abc123
      kvruntime ttl my-app:publisher.os sessions abc123 --ms
    """
    raw_key = parse_bytes(key, is_hex=key_hex, what="KEY")
    left = _on_key(home, package, db, raw_key, lambda h: h.ttl(raw_key))
    if as_json:
        echo_json({"key": render_value_json(raw_key, msgpack_values=False), "ttl": left})
    elif left is not None:
        click.echo(str(round(left * 1000)) if ms else str(math.ceil(left)))
    if left is None:
        if not as_json:
            click.echo(f"key {readable(raw_key)} has no expiry", err=True)
        raise click.exceptions.Exit(EXIT_NO_EXPIRY)


@cli.command(name="ttl-policy")
@package_argument
@db_argument
@click.option(
    "--enabled/--disabled",
    default=None,
    help="Whether keys of DB may have a TTL; --disabled takes every expiry off.",
)
@ttl_option("--max-ttl", help="The longest TTL allowed (with --enabled; default: no maximum).")
@json_option
@home_option
@verbose_option
def ttl_policy(
    package: PackageId,
    db: str,
    enabled: bool | None,
    max_ttl: float | None,
    as_json: bool,
    home: Path,
) -> None:
    """Set the TTL policy of DB, kept with its data (it replaces the one before).

    --enabled lets keys have a TTL, up to --max-ttl if given (a longer one
    is refused: TtlTooLarge); --disabled refuses every TTL (TtlDisabled)
    and makes every key of DB persistent. A new db has TTLs enabled and no
    maximum.

    \b
    Example:
      kvruntime ttl-policy my-app:publisher.os sessions --enabled --max-ttl 86400
      kvruntime ttl-policy my-app:publisher.os notes --disabled
    """
    if enabled is None:
        raise click.UsageError("give --enabled or --disabled")
    if not enabled and max_ttl is not None:
        raise click.UsageError("--max-ttl goes with --enabled only")

    async def body(ctx: ProcessContext) -> None:
        handle = await open_db(ctx, package, db, create=False)
        await handle.set_ttl_policy(enabled=enabled, max_ttl=max_ttl)

    run_in_home(home, lambda s: as_admin(s, package, body))
    if as_json:
        echo_json({"ok": True})
