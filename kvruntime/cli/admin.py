"""``ls``, ``caps`` and ``repair``: what a home holds, who may use it, and mending a db."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._app import (
    EXIT_KV,
    EXIT_USAGE,
    CliError,
    cli,
    db_argument,
    home_option,
    package_argument,
    set_json_mode,
    storage,
    verbose_option,
)
from ._session import (
    Session,
    caps_path,
    check_home,
    home_in_use,
    run_in_home,
)

if TYPE_CHECKING:
    from rich.table import Table

    from protocol.ids import PackageId

    from ._inventory import DbInfo

__all__ = ["caps", "ls", "repair"]

_JSON = click.option(
    "--json",
    "as_json",
    is_flag=True,
    callback=set_json_mode,
    help="One JSON object per line, errors included.",
)


@cli.command()
@click.option(
    "--max-count",
    type=click.IntRange(min=0),
    default=1_000_000,
    show_default=True,
    help="Stop counting a db's keys here (0: do not count).",
)
@_JSON
@home_option
@verbose_option
def ls(max_count: int, as_json: bool, home: Path) -> None:
    """List packages and their databases, with size on disk and key count.

    Sizes are the bytes of the db's files (LevelDB compresses, so they are
    approximate); keys are counted through kv:distro:sys, up to --max-count.
    A db that cannot be read (damaged files) is listed as "unreadable", with
    LevelDB's error on stderr (and as "error" with --json).

    \b
    Example:
      kvruntime ls --home ./data
    """

    from rich.filesize import decimal
    from rich.table import Table
    from rich.text import Text

    from ._inventory import list_dbs

    async def work(session: Session) -> list[DbInfo]:
        return await list_dbs(session, max_count=max_count)

    rows = [(d.package, d.db, d.size, d.keys) for d in run_in_home(home, work)]
    if as_json:
        for package, db, size, keys in rows:
            doc: dict[str, object] = {"package": str(package), "db": db, "bytes": size}
            if isinstance(keys, str):
                doc |= {"keys": None, "error": keys}
            else:
                doc["keys"] = keys
            click.echo(json.dumps(doc))
        return
    table = Table("package", "db", "size", "keys", title=f"dbs in {home}")
    for package, db, size, keys in rows:
        match keys:
            case None:
                shown = "-"
            case str():
                shown = "unreadable"
            case int() if keys < max_count:
                shown = f"{keys}"
            case int():
                shown = f">= {max_count}"
        size_shown = "-" if size is None else decimal(size)
        table.add_row(Text(str(package)), Text(db), size_shown, shown)  # Text: no markup
    if rows:
        _print_table(table)
    else:
        click.echo(f"no dbs in {home}")
    for _, _, _, keys in rows:
        if isinstance(keys, str):
            click.echo(f"unreadable: {keys}", err=True)
    if any(isinstance(keys, str) for _, _, _, keys in rows):
        click.echo("(`kvruntime repair PACKAGE DB` may recover a damaged db)", err=True)


@cli.command()
@click.option("--package", "only", help="Only capabilities on dbs of this package.")
@click.option("--all", "show_all", is_flag=True, help="Also list messaging capabilities.")
@_JSON
@home_option
@verbose_option
def caps(only: str | None, show_all: bool, as_json: bool, home: Path) -> None:
    """List who holds which capability on which db.

    \b
    Example:
      kvruntime caps --package my-app:publisher.os
    """
    from rich.table import Table
    from rich.text import Text

    from protocol.ids import PackageId

    wanted = None if only is None else PackageId.parse(only) if _valid(only) else None
    if only is not None and wanted is None:
        raise CliError(f"bad package id {only!r}", EXIT_USAGE)

    from ._inventory import db_rights

    async def work(session: Session) -> list[tuple[str, str, str, str]]:
        rights = db_rights(session, only=wanted, messaging=show_all)
        return [(r.process, r.package, r.db, ", ".join(r.rights)) for r in rights]

    rows = run_in_home(home, work)
    if as_json:
        for process, package, db, kinds in rows:
            doc = {"process": process, "package": package, "db": db, "rights": kinds.split(", ")}
            click.echo(json.dumps(doc))
        return
    if not rows:
        click.echo("no capabilities held")
        return
    table = Table("process", "package / issuer", "db", "rights", title=f"capabilities in {home}")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: a db name is not markup
    _print_table(table)


def _print_table(table: Table) -> None:
    from rich.console import Console

    # On a terminal, fit it; into a pipe or file, never cut an id short.
    console = Console()
    if not console.is_terminal:
        console = Console(width=1000)
    console.print(table)


def _valid(text: str) -> bool:
    from protocol.ids import PackageId

    try:
        PackageId.parse(text)
    except ValueError:
        return False
    return True


_REPAIR_WARNING = (
    "LevelDB repair rebuilds the db from whatever files it can read: entries in damaged\n"
    "files are dropped and recently deleted entries may come back. Copy {path} first\n"
    "if the data matters."
)


@cli.command()
@package_argument
@db_argument
@click.option("--yes", is_flag=True, help="Do not ask: I have read the warning.")
@_JSON
@home_option
@verbose_option
def repair(package: PackageId, db: str, yes: bool, as_json: bool, home: Path) -> None:
    """Run LevelDB's repair on DB of PACKAGE (the runtime must be stopped).

    The one command that works on storage directly: a db that needs repair
    may not open, so kv:distro:sys cannot serve it. It holds the home's lock
    (the capability table) meanwhile, so no runtime can start on the home.

    \b
    Example:
      kvruntime repair my-app:publisher.os notes --yes
    """
    from ..kernel.capabilities import CapabilityStore, CapabilityStoreError, HomeInUse
    from ..runtime import DEFAULT_NODE
    from ..storage.databases import Databases, NoSuchDb
    from ..storage.store import StoreError

    if storage() is not None:  # issue 13: a networked engine has no files here to repair
        raise CliError("repair works on the LevelDB dbs under --home, not on --storage", EXIT_USAGE)
    check_home(home, create=False)
    store = CapabilityStore(caps_path(home), node=DEFAULT_NODE)  # the CLI's runtimes' node
    try:
        store.open()  # the home's lock: fails if a runtime is running
    except HomeInUse:
        raise home_in_use(home) from None
    except CapabilityStoreError as exc:
        raise CliError(f"cannot open home {home}: {exc}", EXIT_USAGE) from None
    try:
        dbs = Databases(root=home / "kv")
        if not dbs.exists(package, db):
            raise CliError(f"db [{package}, {db}] does not exist", EXIT_KV)
        path = dbs.path_for(package, db)
        click.echo(_REPAIR_WARNING.format(path=path), err=True)
        if not yes:
            if not sys.stdin.isatty():
                raise CliError("refusing to repair without --yes", EXIT_USAGE)
            click.confirm("Repair now?", abort=True, err=True)
        try:
            dbs.repair(package, db)
            repaired = dbs.open(package, db, create=False)
            keys = sum(1 for _ in repaired.iterate(include_value=False))
        except (StoreError, NoSuchDb) as exc:
            raise CliError(f"repair failed: {exc}", EXIT_KV) from None
        finally:
            dbs.close_all()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"repaired": {"package": str(package), "db": db}, "keys": keys}))
    else:
        click.echo(f"repaired [{package}, {db}]: {keys} keys readable")
