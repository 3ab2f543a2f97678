"""``get``, ``set``, ``del`` and ``scan``: one key, or many, of one db."""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from ._app import (
    EXIT_KV,
    EXIT_USAGE,
    CliError,
    cli,
    db_argument,
    echo_json,
    home_option,
    json_option,
    keys_argument,
    package_argument,
    verbose_option,
)
from ._render import (
    Format,
    NotMsgpack,
    format_options,
    parse_bytes,
    readable,
    render,
    render_value_json,
    resolve,
)
from ._seconds import ttl_option
from ._session import as_admin, open_db, page_ask, run_in_home

if TYPE_CHECKING:
    from protocol.ids import PackageId

    from ..kernel.process import ProcessContext

__all__ = ["delete", "get", "glob_prefix", "scan", "set_"]

_KEY_HEX = click.option(
    "--key-hex", is_flag=True, help="KEY (and --prefix, --start, --end) are hex, not text."
)


def _shown_key(key: bytes) -> str:
    return readable(key) if key else '""'


@cli.command()
@package_argument
@db_argument
@keys_argument
@_KEY_HEX
@format_options
@home_option
@verbose_option
def get(
    package: PackageId,
    db: str,
    keys: tuple[str, ...],
    key_hex: bool,
    fmt: Format | None,
    msgpack_values: bool,
    home: Path,
) -> None:
    """Print the value of KEY in DB of PACKAGE (exit 1 if a key is missing).

    With several keys (read in one request), text and hex lines are
    KEY<TAB>VALUE, raw values end with a newline, and a missing key is
    named on stderr (with --json: "value": null); the exit code is 1 if any
    is missing.

    \b
    Example:
      kvruntime get my-app:publisher.os notes hello
      kvruntime get my-app:publisher.os notes hello bye --json
      kvruntime get my-app:publisher.os blobs 00ff --key-hex --raw > value.bin
    """
    fmt = resolve(fmt)
    raw_keys = [parse_bytes(key, is_hex=key_hex, what="KEY") for key in keys]

    async def body(ctx: ProcessContext) -> list[bytes | None]:
        handle = await open_db(ctx, package, db, create=False)
        if len(raw_keys) == 1:
            return [await handle.get(raw_keys[0], None)]
        return await handle.get_many(raw_keys)

    values = run_in_home(home, lambda s: as_admin(s, package, body))
    where = f"db [{package}, {db}]"
    if len(raw_keys) == 1:
        (value,) = values
        if value is None:
            raise CliError(f"key {_shown_key(raw_keys[0])} not found in {where}")
        _print_value(raw_keys[0], value, fmt, msgpack_values, alone=True)
        return
    missing = []
    for key, found in zip(raw_keys, values, strict=True):
        if found is None:
            missing.append(key)
            if fmt is Format.JSON:
                echo_json({"key": render_value_json(key, msgpack_values=False), "value": None})
            continue
        _print_value(key, found, fmt, msgpack_values, alone=False)
    if missing:
        shown = ", ".join(_shown_key(key) for key in missing)
        if fmt is Format.JSON:
            sys.exit(EXIT_KV)
        raise CliError(f"not found in {where}: {shown}")


def _print_value(
    key: bytes, value: bytes, fmt: Format, msgpack_values: bool, *, alone: bool
) -> None:
    try:
        if fmt is Format.RAW and not msgpack_values:
            out = sys.stdout.buffer
            out.write(value if alone else value + b"\n")
            out.flush()
        elif fmt is Format.JSON:
            doc = {
                "key": render_value_json(key, msgpack_values=False),
                "value": render_value_json(value, msgpack_values=msgpack_values),
            }
            echo_json(doc)
        elif alone:
            click.echo(render(value, fmt, msgpack_values=msgpack_values))
        else:
            shown = render(value, fmt, msgpack_values=msgpack_values)
            click.echo(render(key, fmt) + "\t" + shown)
    except NotMsgpack as exc:
        raise CliError(
            f"value of key {_shown_key(key)}: {exc} (drop --msgpack to see its bytes)"
        ) from None


@cli.command(name="set")
@package_argument
@db_argument
@click.argument("key")
@click.argument("value", required=False)
@_KEY_HEX
@click.option("--value-hex", is_flag=True, help="VALUE is hex, not text.")
@click.option(
    "--value-file",
    type=click.File("rb"),
    help="Read the value's bytes from this file ('-' for stdin) instead of VALUE.",
)
@click.option("--create", is_flag=True, help="Create DB (and the home) if it does not exist.")
@ttl_option(
    "--ttl", help="Expire KEY SECONDS from now (as SET EX); without, any expiry it had is cleared."
)
@json_option
@home_option
@verbose_option
def set_(
    package: PackageId,
    db: str,
    key: str,
    value: str | None,
    key_hex: bool,
    value_hex: bool,
    value_file: BinaryIO | None,
    create: bool,
    ttl: float | None,
    as_json: bool,
    home: Path,
) -> None:
    """Store VALUE at KEY in DB of PACKAGE.

    DB must exist unless --create is given (only Open creates a db, and
    set opens with --create only). --create makes a home only of a folder
    that does not exist or is empty. --ttl makes KEY expire (see ttl,
    expire, persist); a set without it makes KEY persistent, as in Redis.

    \b
    Example:
      kvruntime set my-app:publisher.os notes hello world --create
      kvruntime set my-app:publisher.os blobs 00ff --key-hex --value-file photo.jpg
      kvruntime set my-app:publisher.os sessions abc123 alice --ttl 3600
    """
    raw_key = parse_bytes(key, is_hex=key_hex, what="KEY")
    if (value is None) == (value_file is None):
        raise click.UsageError("give either VALUE or --value-file")
    if value_file is not None:
        raw_value: bytes = value_file.read()
    else:
        assert value is not None
        raw_value = parse_bytes(value, is_hex=value_hex, what="VALUE")

    async def body(ctx: ProcessContext) -> None:
        handle = await open_db(ctx, package, db, create=create)
        await handle.set(raw_key, raw_value, ttl=ttl)

    hinted(lambda: run_in_home(home, lambda s: as_admin(s, package, body), create_home=create))
    if as_json:
        echo_json({"ok": True})


@cli.command(name="del")
@package_argument
@db_argument
@keys_argument
@_KEY_HEX
@json_option
@home_option
@verbose_option
def delete(
    package: PackageId, db: str, keys: tuple[str, ...], key_hex: bool, as_json: bool, home: Path
) -> None:
    """Delete KEY from DB of PACKAGE (a missing key is fine); several keys atomically.

    \b
    Example:
      kvruntime del my-app:publisher.os notes hello
      kvruntime del my-app:publisher.os notes a b c
    """
    raw_keys = [parse_bytes(key, is_hex=key_hex, what="KEY") for key in keys]

    async def body(ctx: ProcessContext) -> None:
        handle = await open_db(ctx, package, db, create=False)
        if len(raw_keys) == 1:
            await handle.delete(raw_keys[0])
        else:
            await handle.delete_many(raw_keys)

    run_in_home(home, lambda s: as_admin(s, package, body))
    if as_json:
        echo_json({"ok": True, "keys": len(raw_keys)})


_GLOB_SPECIAL = re.compile(r"[*?\[]")


def glob_prefix(pattern: str) -> str:
    """The literal text a glob's matches all start with (``user:*`` -> ``user:``)."""
    special = _GLOB_SPECIAL.search(pattern)
    return pattern if special is None else pattern[: special.start()]


@cli.command()
@package_argument
@db_argument
@click.option("--prefix", help="Only keys starting with this (text, or hex with --key-hex).")
@click.option("--start", help="Only keys >= this one.")
@click.option("--end", help="Only keys < this one.")
@click.option("--reverse", is_flag=True, help="In descending key order.")
@click.option(
    "--match",
    "pattern",
    help="Only keys matching this glob (* ? [abc]), on the key's text; its literal"
    " prefix is asked of the server.",
)
@_KEY_HEX
@click.option("--limit", type=click.IntRange(min=1), help="At most this many entries.")
@click.option("--keys-only", is_flag=True, help="Print keys only.")
@click.option("--count", "count_only", is_flag=True, help="Print only how many entries match.")
@format_options
@home_option
@verbose_option
def scan(
    package: PackageId,
    db: str,
    prefix: str | None,
    start: str | None,
    end: str | None,
    reverse: bool,
    pattern: str | None,
    key_hex: bool,
    limit: int | None,
    keys_only: bool,
    count_only: bool,
    fmt: Format | None,
    msgpack_values: bool,
    home: Path,
) -> None:
    """Print the entries of DB of PACKAGE in key order: KEY<TAB>VALUE per line.

    --prefix, or --start/--end, choose a range; --match filters keys by a
    glob (here, after the server's prefix range); --limit counts what is
    printed.

    \b
    Example:
      kvruntime scan my-app:publisher.os notes --prefix user: --limit 10
      kvruntime scan my-app:publisher.os notes --match 'user:*:name' --json
      kvruntime scan my-app:publisher.os notes --start a --end m --reverse --keys-only
      kvruntime scan my-app:publisher.os notes --count
    """
    fmt = resolve(fmt)
    if prefix is not None and (start is not None or end is not None):
        raise CliError("give --prefix or --start/--end, not both", EXIT_USAGE)
    raw_prefix = None if prefix is None else parse_bytes(prefix, is_hex=key_hex, what="--prefix")
    raw_start = None if start is None else parse_bytes(start, is_hex=key_hex, what="--start")
    raw_end = None if end is None else parse_bytes(end, is_hex=key_hex, what="--end")
    matches: Callable[[bytes], bool] = lambda _key: True  # noqa: E731
    if pattern is not None:
        compiled = re.compile(fnmatch.translate(pattern), re.DOTALL)
        matches = lambda key: compiled.match(key.decode("utf-8", "surrogateescape")) is not None  # noqa: E731
        literal = glob_prefix(pattern).encode("utf-8", "surrogateescape")
        if raw_prefix is None and raw_start is None and raw_end is None and literal:
            raw_prefix = literal
        elif raw_prefix is not None and literal.startswith(raw_prefix):
            raw_prefix = literal  # the narrower of the two
    only_keys = keys_only or count_only

    async def body(ctx: ProcessContext) -> int:
        handle = await open_db(ctx, package, db, create=False)
        left, cursor, seen = limit, None, 0
        while left is None or left > 0:
            page = await handle.list_page(
                prefix=raw_prefix,
                start=raw_start,
                end=raw_end,
                reverse=reverse,
                keys_only=only_keys,
                limit=page_ask(left) if pattern is None else None,
                cursor=cursor,
            )
            for key, value in page.items:
                if not matches(key):
                    continue
                if left is not None:
                    if left == 0:
                        break
                    left -= 1
                seen += 1
                if not count_only:
                    _print_entry(key, value, fmt, msgpack_values)
            if page.cursor is None:
                break
            cursor = page.cursor
        return seen

    seen = run_in_home(home, lambda s: as_admin(s, package, body))
    if count_only:
        if fmt is Format.JSON:
            echo_json({"count": seen})
        else:
            click.echo(str(seen))


def _print_entry(key: bytes, value: bytes | None, fmt: Format, msgpack_values: bool) -> None:
    try:
        if fmt is Format.JSON:
            doc: dict[str, object] = {"key": render_value_json(key, msgpack_values=False)}
            if value is not None:
                doc["value"] = render_value_json(value, msgpack_values=msgpack_values)
            echo_json(doc)
        elif fmt is Format.RAW:
            out = sys.stdout.buffer
            out.write(key if value is None else key + b"\t" + value)
            out.write(b"\n")
        else:
            shown = render(key, fmt)
            if value is not None:
                shown += "\t" + render(value, fmt, msgpack_values=msgpack_values)
            click.echo(shown)
    except NotMsgpack as exc:
        raise CliError(
            f"value of key {_shown_key(key)}: {exc} (drop --msgpack to see its bytes)"
        ) from None


def hinted(run: Callable[[], object]) -> None:
    """Run ``run()``, adding the ``--create`` hint to a NoDb error."""
    try:
        run()
    except CliError as exc:
        if exc.exit_code == EXIT_KV and "does not exist" in exc.message:
            raise CliError(f"{exc.message} (use --create to create it)") from None
        raise
