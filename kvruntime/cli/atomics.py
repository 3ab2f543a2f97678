"""``incr`` and ``cas``: the two atomic writes of kv:distro:sys, one key each."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
from ._render import bytes_json, parse_bytes, readable
from ._session import as_admin, open_db, run_in_home

if TYPE_CHECKING:
    from protocol.ids import PackageId

    from ..kernel.process import ProcessContext

__all__ = ["cas", "incr"]

_KEY_HEX = click.option("--key-hex", is_flag=True, help="KEY is hex, not text.")


@cli.command()
@package_argument
@db_argument
@click.argument("key")
@click.argument("delta", type=int, default=1)
@_KEY_HEX
@json_option
@home_option
@verbose_option
def incr(
    package: PackageId, db: str, key: str, delta: int, key_hex: bool, as_json: bool, home: Path
) -> None:
    """Add DELTA (default 1; negative subtracts) to the counter at KEY; print the new value.

    The counter is a signed 64-bit integer stored as ASCII decimal; a
    missing key counts from 0. A value that is no such integer, or a result
    outside int64, changes nothing and exits 1.

    \b
    Example:
      kvruntime incr my-app:publisher.os counters visits
      kvruntime incr my-app:publisher.os counters stock -- -3
    """
    raw_key = parse_bytes(key, is_hex=key_hex, what="KEY")

    async def body(ctx: ProcessContext) -> int:
        handle = await open_db(ctx, package, db, create=False)
        return await handle.increment(raw_key, delta)

    value = run_in_home(home, lambda s: as_admin(s, package, body))
    if as_json:
        echo_json({"value": value})
    else:
        click.echo(str(value))


@cli.command()
@package_argument
@db_argument
@click.argument("key")
@click.option("--expect", "expected", help="The value KEY must hold now.")
@click.option("--expect-absent", is_flag=True, help="KEY must be absent now.")
@click.option("--new", "new", help="The value to store.")
@click.option("--delete", "delete_it", is_flag=True, help="Delete KEY instead of storing.")
@click.option("--value-hex", is_flag=True, help="--expect and --new are hex, not text.")
@_KEY_HEX
@json_option
@home_option
@verbose_option
def cas(
    package: PackageId,
    db: str,
    key: str,
    expected: str | None,
    expect_absent: bool,
    new: str | None,
    delete_it: bool,
    value_hex: bool,
    key_hex: bool,
    as_json: bool,
    home: Path,
) -> None:
    """Compare and swap: set KEY to --new (or --delete it) only if it holds --expect now.

    On a mismatch nothing changes, the current value is named, and the exit
    code is 1.

    \b
    Example:
      kvruntime cas my-app:publisher.os notes lock --expect-absent --new me
      kvruntime cas my-app:publisher.os notes lock --expect me --delete
    """
    if (expected is not None) == expect_absent:
        raise click.UsageError("give either --expect VALUE or --expect-absent")
    if (new is not None) == delete_it:
        raise click.UsageError("give either --new VALUE or --delete")
    raw_key = parse_bytes(key, is_hex=key_hex, what="KEY")
    want = None if expected is None else parse_bytes(expected, is_hex=value_hex, what="--expect")
    put = None if new is None else parse_bytes(new, is_hex=value_hex, what="--new")

    async def body(ctx: ProcessContext) -> None:
        from .. import kv

        handle = await open_db(ctx, package, db, create=False)
        try:
            await handle.compare_and_swap(raw_key, want, put)
        except kv.CasMismatch as exc:
            now = "absent" if exc.current is None else f"holds {readable(exc.current)}"
            if as_json:
                current = None if exc.current is None else bytes_json(exc.current)
                raise _Mismatch(current) from None
            raise CliError(
                f"cas mismatch: key {readable(raw_key)} {now}; nothing changed"
            ) from None

    try:
        run_in_home(home, lambda s: as_admin(s, package, body))
    except _Mismatch as exc:
        echo_json({"ok": False, "current": exc.current})
        raise SystemExit(1) from None
    if as_json:
        echo_json({"ok": True})


class _Mismatch(Exception):
    """A CasMismatch for ``--json``: shown as ``{"ok": false, "current": ...}``."""

    def __init__(self, current: dict[str, str] | None) -> None:
        super().__init__("cas mismatch")
        self.current = current
