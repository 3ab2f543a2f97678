"""``share``, ``revoke`` and ``rm-db``: who may use a db, and removing one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._app import (
    EXIT_USAGE,
    CliError,
    cli,
    db_argument,
    echo_json,
    home_option,
    json_option,
    package_argument,
    verbose_option,
)
from ._session import as_admin, open_db, run_in_home

if TYPE_CHECKING:
    from protocol.ids import PackageId, ProcessId

    from ..kernel.process import ProcessContext

__all__ = ["remove_db", "revoke", "share"]


def _process(text: str) -> ProcessId:
    from protocol.ids import IdError, ProcessId

    try:
        return ProcessId.parse(text)
    except IdError as exc:
        raise CliError(f"bad process id {text!r}: {exc}", EXIT_USAGE) from None


@cli.command()
@package_argument
@db_argument
@click.argument("process")
@click.option("--write", is_flag=True, help="Grant write as well as read.")
@json_option
@home_option
@verbose_option
def share(
    package: PackageId, db: str, process: str, write: bool, as_json: bool, home: Path
) -> None:
    """Grant PROCESS (name:package:publisher) read access to DB of PACKAGE (and write).

    The grant lasts until `kvruntime revoke`. PROCESS also needs the right
    to message kv:distro:sys, which it asks for when it is spawned.

    \b
    Example:
      kvruntime share my-app:publisher.os notes reader:other-app:publisher.os --write
    """
    target = _process(process)

    async def body(ctx: ProcessContext) -> None:
        handle = await open_db(ctx, package, db, create=False)
        await handle.share(target, write=write)

    run_in_home(home, lambda s: as_admin(s, package, body))
    kinds = ["read", "write"] if write else ["read"]
    if as_json:
        echo_json({"process": str(target), "package": str(package), "db": db, "granted": kinds})
    else:
        click.echo(f"{target} may now {' and '.join(kinds)} [{package}, {db}]")


@cli.command()
@package_argument
@db_argument
@click.argument("process")
@json_option
@home_option
@verbose_option
def revoke(package: PackageId, db: str, process: str, as_json: bool, home: Path) -> None:
    """Take read and write on DB of PACKAGE from PROCESS (name:package:publisher).

    \b
    Example:
      kvruntime revoke my-app:publisher.os notes reader:other-app:publisher.os
    """
    target = _process(process)

    async def body(ctx: ProcessContext) -> None:
        handle = await open_db(ctx, package, db, create=False)
        await handle.revoke(target)

    run_in_home(home, lambda s: as_admin(s, package, body))
    if as_json:
        echo_json({"process": str(target), "package": str(package), "db": db, "revoked": True})
    else:
        click.echo(f"{target} may no longer read or write [{package}, {db}]")


@cli.command(name="rm-db")
@package_argument
@db_argument
@click.option("--yes", is_flag=True, help="Do not ask.")
@json_option
@home_option
@verbose_option
def remove_db(package: PackageId, db: str, yes: bool, as_json: bool, home: Path) -> None:
    """Remove DB of PACKAGE: its data and every capability on it.

    Asks first on a terminal; elsewhere it needs --yes.

    \b
    Example:
      kvruntime rm-db my-app:publisher.os scratch --yes
    """
    if not yes:
        if not sys.stdin.isatty():
            raise CliError("refusing to remove a db without --yes", EXIT_USAGE)
        click.confirm(f"Remove [{package}, {db}] and all its data?", abort=True, err=True)

    async def body(ctx: ProcessContext) -> None:
        from .. import kv

        await open_db(ctx, package, db, create=False)  # NoDb for a missing one
        await kv.remove_db(ctx, package, db)

    run_in_home(home, lambda s: as_admin(s, package, body))
    if as_json:
        echo_json({"removed": {"package": str(package), "db": db}})
    else:
        click.echo(f"removed [{package}, {db}]")
