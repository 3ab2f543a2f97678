"""What a home holds and who may use it: the one reading behind ``ls``, ``caps`` and the explorer.

- ``list_dbs``: every db with its size on disk and its key count, the count
  read through kv:distro:sys as the db's administrative process (the same
  path as every command), up to a limit.
- ``db_rights``: who holds which capability on which db, from the
  runtime's capability table (a plain value the runtime hands out).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ._session import Session, as_admin, open_db, page_ask

if TYPE_CHECKING:
    from protocol.ids import PackageId
    from protocol.messages import KvCapabilityParams

    from ..kernel.message import Capability
    from ..kernel.process import ProcessContext

__all__ = ["DbInfo", "Right", "db_rights", "list_dbs"]


@attrs.frozen(kw_only=True)
class DbInfo:
    """One db of a home.

    ``size`` is the bytes of its files (None on an engine that keeps no
    files); ``keys`` its key count up to the limit asked (None: not counted),
    or the storage error that kept it from being read.
    """

    package: PackageId
    db: str
    size: int | None
    keys: int | str | None


@attrs.frozen(kw_only=True)
class Right:
    """``process`` holds ``rights`` (read, write; or message) on ``db`` of ``package``.

    For a messaging capability ``package`` is the issuer and ``db`` is empty.
    """

    process: str
    package: str
    db: str
    rights: tuple[str, ...]


def disk_usage(path: Path) -> int:
    """The bytes of the files directly in ``path``."""
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


async def list_dbs(session: Session, *, max_count: int) -> list[DbInfo]:
    """Every db of the home, sorted, with sizes and key counts up to ``max_count`` (0: none)."""
    rt = session.rt
    by_package: defaultdict[PackageId, list[str]] = defaultdict(list)
    for package, db in rt.list_dbs():  # no kv action lists dbs: the runtime's own view
        by_package[package].append(db)
    rows: list[DbInfo] = []
    for package, names in by_package.items():

        async def count(
            ctx: ProcessContext, package: PackageId = package, names: list[str] = names
        ) -> list[int | str | None]:
            return [await count_keys(ctx, package, db, max_count) for db in names]

        counts = await as_admin(session, package, count) if max_count else [None] * len(names)
        for db, keys in zip(names, counts, strict=True):
            try:
                size: int | None = disk_usage(rt.db_path(package, db))
            except ValueError:  # an engine that keeps no files
                size = None
            rows.append(DbInfo(package=package, db=db, size=size, keys=keys))
    return rows


async def count_keys(ctx: ProcessContext, package: PackageId, db: str, limit: int) -> int | str:
    """How many keys ``db`` holds, up to ``limit``; LevelDB's error if it cannot be read."""
    from protocol.messages import IoError, LevelDbError

    from .. import kv

    try:
        return await _count_readable(ctx, package, db, limit)
    except kv.KvError as exc:
        if isinstance(exc.error, LevelDbError | IoError):
            return f"{exc.error.TAG}: {exc.error.message}"  # the message names the db
        raise


async def _count_readable(ctx: ProcessContext, package: PackageId, db: str, limit: int) -> int:
    handle = await open_db(ctx, package, db, create=False)
    seen, cursor = 0, None
    while seen < limit:
        page = await handle.list_page(keys_only=True, limit=page_ask(limit - seen), cursor=cursor)
        seen += len(page.items)
        if page.cursor is None:
            break
        cursor = page.cursor
    return seen


def db_rights(
    session: Session, *, only: PackageId | None = None, messaging: bool = False
) -> list[Right]:
    """Who holds what on which db (of ``only``, if given), sorted; ``messaging`` adds kv's own."""
    rt = session.rt
    rights: defaultdict[tuple[str, str, str], set[str]] = defaultdict(set)
    for holder, cap in rt.capability_holders():
        process = holder.process if holder.node == rt.node else holder
        params = _kv_params(cap) if cap.issuer == rt.kv_address else None
        if params is not None:
            if only is None or params.package_id == only:
                rights[(str(process), str(params.package_id), params.db)].add(params.kind)
        elif messaging and only is None:  # the right to message the issuer
            rights[(str(process), str(cap.issuer), "")].add("message")
    return [
        Right(process=p, package=k, db=d, rights=tuple(sorted(r)))
        for (p, k, d), r in sorted(rights.items())
    ]


def _kv_params(cap: Capability) -> KvCapabilityParams | None:
    from protocol.codec import DecodeError, decode_capability_params

    try:
        return decode_capability_params(cap.params)
    except DecodeError:
        return None  # not a db capability (the messaging one, for instance)
