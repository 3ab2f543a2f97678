"""``get``, ``set``, ``del`` and ``scan``: one key, or many, of one db."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import click

from protocol.ids import PackageId

from .. import kv
from ..kernel.process import ProcessContext
from ._app import (
    EXIT_KV,
    CliError,
    cli,
    db_argument,
    home_option,
    package_argument,
    verbose_option,
)
from ._render import Format, format_options, parse_bytes, render, render_value_json
from ._session import as_admin, open_db, page_ask, run_in_home

__all__ = ["delete", "get", "scan", "set_"]

_KEY_HEX = click.option("--key-hex", is_flag=True, help="KEY (and --prefix) are hex, not text.")


def _out(text: str) -> None:
    click.echo(text)


@cli.command()
@package_argument
@db_argument
@click.argument("key")
@_KEY_HEX
@format_options
@home_option
@verbose_option
def get(
    package: PackageId,
    db: str,
    key: str,
    key_hex: bool,
    fmt: Format,
    msgpack_values: bool,
    home: Path,
) -> None:
    """Print the value of KEY in DB of PACKAGE (exit 1 if the key is missing).

    \b
    Example:
      kvruntime get my-app:publisher.os notes hello
      kvruntime get my-app:publisher.os blobs 00ff --key-hex --raw > value.bin
    """
    raw_key = parse_bytes(key, is_hex=key_hex, what="KEY")

    async def body(ctx: ProcessContext) -> bytes:
        handle = await open_db(ctx, package, db, create=False)
        try:
            return await handle.get(raw_key)
        except kv.KeyNotFound:
            shown = render(raw_key, Format.TEXT, one_line=True) if raw_key else '""'
            raise CliError(f"key {shown} not found in db [{package}, {db}]") from None

    value = run_in_home(home, lambda rt: as_admin(rt, package, body))
    if fmt is Format.RAW and not msgpack_values:
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
    elif fmt is Format.JSON:
        doc = {
            "key": render_value_json(raw_key, msgpack_values=False),
            "value": render_value_json(value, msgpack_values=msgpack_values),
        }
        _out(json.dumps(doc, ensure_ascii=False))
    else:
        _out(render(value, fmt, msgpack_values=msgpack_values, one_line=False))


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
@click.option("--create", is_flag=True, help="Create DB if it does not exist.")
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
    home: Path,
) -> None:
    """Store VALUE at KEY in DB of PACKAGE.

    DB must exist unless --create is given (only Open creates a db, and
    set opens with --create only).

    \b
    Example:
      kvruntime set my-app:publisher.os notes hello world --create
      kvruntime set my-app:publisher.os blobs 00ff --key-hex --value-file photo.jpg
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
        await handle.set(raw_key, raw_value)

    _hinted(lambda: run_in_home(home, lambda rt: as_admin(rt, package, body), create_home=create))


@cli.command(name="del")
@package_argument
@db_argument
@click.argument("key")
@_KEY_HEX
@home_option
@verbose_option
def delete(package: PackageId, db: str, key: str, key_hex: bool, home: Path) -> None:
    """Delete KEY from DB of PACKAGE (a missing key is fine).

    \b
    Example:
      kvruntime del my-app:publisher.os notes hello
    """
    raw_key = parse_bytes(key, is_hex=key_hex, what="KEY")

    async def body(ctx: ProcessContext) -> None:
        handle = await open_db(ctx, package, db, create=False)
        await handle.delete(raw_key)

    run_in_home(home, lambda rt: as_admin(rt, package, body))


@cli.command()
@package_argument
@db_argument
@click.option("--prefix", help="Only keys starting with this (text, or hex with --key-hex).")
@_KEY_HEX
@click.option("--limit", type=click.IntRange(min=1), help="At most this many entries.")
@click.option("--keys-only", is_flag=True, help="Print keys only.")
@format_options
@home_option
@verbose_option
def scan(
    package: PackageId,
    db: str,
    prefix: str | None,
    key_hex: bool,
    limit: int | None,
    keys_only: bool,
    fmt: Format,
    msgpack_values: bool,
    home: Path,
) -> None:
    """Print the entries of DB of PACKAGE in key order: KEY<TAB>VALUE per line.

    \b
    Example:
      kvruntime scan my-app:publisher.os notes --prefix user: --limit 10
      kvruntime scan my-app:publisher.os notes --json --msgpack
    """
    raw_prefix = None if prefix is None else parse_bytes(prefix, is_hex=key_hex, what="--prefix")

    async def body(ctx: ProcessContext) -> None:
        handle = await open_db(ctx, package, db, create=False)
        left, cursor = limit, None
        while left is None or left > 0:
            page = await handle.list_page(
                prefix=raw_prefix, keys_only=keys_only, limit=page_ask(left), cursor=cursor
            )
            for key, value in page.items:
                _print_entry(key, value, fmt, msgpack_values)
            if left is not None:
                left -= len(page.items)
            if page.cursor is None:
                break
            cursor = page.cursor

    run_in_home(home, lambda rt: as_admin(rt, package, body))


def _print_entry(key: bytes, value: bytes | None, fmt: Format, msgpack_values: bool) -> None:
    if fmt is Format.JSON:
        doc: dict[str, object] = {"key": render_value_json(key, msgpack_values=False)}
        if value is not None:
            doc["value"] = render_value_json(value, msgpack_values=msgpack_values)
        _out(json.dumps(doc, ensure_ascii=False))
    elif fmt is Format.RAW:
        out = sys.stdout.buffer
        out.write(key if value is None else key + b"\t" + value)
        out.write(b"\n")
    else:
        shown = render(key, fmt, one_line=True)
        if value is not None:
            shown += "\t" + render(value, fmt, msgpack_values=msgpack_values, one_line=True)
        _out(shown)


def _hinted(run: Callable[[], object]) -> None:
    """Run ``run()``, adding the ``--create`` hint to a NoDb error."""
    try:
        run()
    except CliError as exc:
        if exc.exit_code == EXIT_KV and "does not exist" in exc.message:
            raise CliError(f"{exc.message} (use --create to create it)") from None
        raise
