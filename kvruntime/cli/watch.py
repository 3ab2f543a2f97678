"""``watch``: tail a db's changes (issue 15), as redis-cli's MONITOR does.

One line per change, printed (and flushed) as kv pushes it:
``SEQ<TAB>KIND<TAB>KEY<TAB>VALUE`` (no VALUE for "delete" and "expire"),
keys and values in the CLI's rendering (``_render.py``: text on a terminal,
raw bytes into a pipe or a file, ``--hex``, ``--text``); ``--json`` writes one
object a line, ``{"seq", "kind", "key", "value"}`` (value null for "delete"
and "expire"). ``--snapshot`` first prints every matching entry as of the
watch's start, with kind ``snapshot`` and that start's seq, then the changes
that follow it (no gap, no repeat: the client's invariant 3).

Invariants:
1. It ends on Ctrl-C (exit 130), after ``--count`` changes (exit 0), or on
   kv's typed end: ``WatchCompacted`` (the message names the oldest seq
   still held and the db's last), ``WatchEnded`` (db removed, read access
   revoked), a missing db; each as the CLI's other errors (exit 1).
2. Ctrl-C stops the watch inside its process: the watch's block ends (an
   ``Unwatch``), the runtime shuts down cleanly and the command's grants are
   taken back (``_session`` invariant 3) before it exits 130. In ``kvruntime
   shell`` the shell's Ctrl-C does the same and the prompt comes back.
3. ``--since SEQ`` resumes strictly after SEQ: the last seq a run printed,
   given to the next, prints every later change once.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._app import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    cli,
    db_argument,
    home_option,
    package_argument,
    verbose_option,
)
from ._render import Format, NotMsgpack, format_options, parse_bytes, render, render_value_json
from ._session import OPEN_HOME, as_admin, on_interrupt, open_db, run_in_home

if TYPE_CHECKING:
    from protocol.ids import PackageId

    from ..kernel.process import ProcessContext

__all__ = ["change_line", "watch"]


def change_line(
    seq: int, kind: str, key: bytes, value: bytes | None, fmt: Format, *, msgpack_values: bool
) -> bytes:
    """One change as the line ``watch`` prints (with its newline), in format ``fmt``."""
    if fmt is Format.JSON:
        doc = {
            "seq": seq,
            "kind": kind,
            "key": render_value_json(key, msgpack_values=False),
            "value": None
            if value is None
            else render_value_json(value, msgpack_values=msgpack_values),
        }
        return json.dumps(doc, ensure_ascii=False).encode() + b"\n"
    head = f"{seq}\t{kind}\t".encode()
    if fmt is Format.RAW and not msgpack_values:
        return head + key + (b"" if value is None else b"\t" + value) + b"\n"
    shown = render(key, Format.TEXT if fmt is Format.RAW else fmt)
    if value is not None:
        shown += "\t" + render(value, fmt, msgpack_values=msgpack_values)
    return head + shown.encode() + b"\n"


@cli.command()
@package_argument
@db_argument
@click.option("--prefix", help="Only keys starting with this.")
@click.option("--start", help="Only keys >= this (with --end).")
@click.option("--end", help="Only keys < this.")
@click.option("--key-hex", is_flag=True, help="--prefix/--start/--end are hex.")
@click.option(
    "--since", type=click.IntRange(min=0), help="Resume strictly after this seq (default: now)."
)
@click.option(
    "--snapshot", is_flag=True, help="First print every matching entry (kind 'snapshot')."
)
@click.option("--count", "limit", type=click.IntRange(min=1), help="Stop after this many changes.")
@format_options
@home_option
@verbose_option
def watch(
    package: PackageId,
    db: str,
    prefix: str | None,
    start: str | None,
    end: str | None,
    key_hex: bool,
    since: int | None,
    snapshot: bool,
    limit: int | None,
    fmt: Format | None,
    msgpack_values: bool,
    home: Path,
) -> None:
    """Print DB's changes as they happen: SEQ<TAB>KIND<TAB>KEY<TAB>VALUE per line.

    KIND is set, delete or expire (no VALUE for the last two). Runs until
    Ctrl-C (exit 130) or --count changes. --since SEQ resumes after the
    last SEQ a run printed; exit 1 with WatchCompacted if the db's log no
    longer holds it.

    \b
    Example:
      kvruntime watch my-app:publisher.os notes
      kvruntime watch my-app:publisher.os notes --prefix user: --json
      kvruntime watch my-app:publisher.os notes --since 1733580000000123 --count 10
    """
    from ._render import resolve

    shown = resolve(fmt)
    if prefix is not None and (start is not None or end is not None):
        raise CliError("give --prefix or --start/--end, not both", EXIT_USAGE)
    if snapshot and since is not None:
        raise CliError("--snapshot starts from now: it does not go with --since", EXIT_USAGE)
    raw_prefix = None if prefix is None else parse_bytes(prefix, is_hex=key_hex, what="--prefix")
    raw_start = None if start is None else parse_bytes(start, is_hex=key_hex, what="--start")
    raw_end = None if end is None else parse_bytes(end, is_hex=key_hex, what="--end")
    out = sys.stdout.buffer

    def emit(seq: int, kind: str, key: bytes, value: bytes | None) -> None:
        try:
            line = change_line(seq, kind, key, value, shown, msgpack_values=msgpack_values)
        except NotMsgpack as exc:
            raise CliError(f"change {seq}: {exc} (drop --msgpack to see its bytes)") from None
        out.write(line)
        out.flush()

    async def body(ctx: ProcessContext) -> bool:
        """Watch until the count, kv's end, or Ctrl-C (then False)."""
        import anyio

        from .. import kv

        handle = await open_db(ctx, package, db, create=False)
        scope = anyio.CancelScope()
        stopping = (
            on_interrupt(scope.cancel) if OPEN_HOME.get() is None else contextlib.nullcontext()
        )
        with stopping, scope:
            try:
                async with handle.watch(
                    raw_prefix, start=raw_start, end=raw_end, since=since, snapshot=snapshot
                ) as changes:
                    for key, value in changes.snapshot:
                        emit(changes.start, "snapshot", key, value)
                    seen = 0
                    async for change in changes:
                        emit(change.seq, change.kind, change.key, change.value)
                        seen += 1
                        if limit is not None and seen >= limit:
                            return True
            except kv.WatchCompacted as exc:
                raise CliError(
                    f"db [{package}, {db}]: the change log no longer holds what follows"
                    f" seq {since}: the oldest change held is {exc.oldest}, the last"
                    f" {exc.last} (resume from a snapshot: --snapshot)"
                ) from None
            except kv.WatchEnded as exc:
                raise CliError(f"watch of db [{package}, {db}] ended: {exc.reason}") from None
        return not scope.cancelled_caught

    if not run_in_home(home, lambda s: as_admin(s, package, body)):
        raise CliError("interrupted", EXIT_INTERRUPTED)
