"""``dump`` and ``load``: a db to and from the portable line format of ``_dumpformat``.

A dump is consistent: the command's own runtime holds the home (no other
runtime can write to it meanwhile). A load is atomic per chunk (one
``set_many`` each, at most ``CHUNK_ENTRIES`` entries or ``CHUNK_BYTES``
bytes): a failure leaves every earlier chunk written and nothing of its own.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from protocol.ids import PackageId

from ..kernel.process import ProcessContext
from ._app import (
    EXIT_USAGE,
    CliError,
    cli,
    db_argument,
    home_option,
    package_argument,
    verbose_option,
)
from ._dumpformat import (
    DumpFormatError,
    End,
    Header,
    Record,
    end_line,
    header_line,
    parse_line,
    record_line,
)
from ._session import as_admin, open_db, run_in_home

__all__ = ["CHUNK_BYTES", "CHUNK_ENTRIES", "dump", "load"]

#: Most entries written by one atomic ``set_many`` of ``load``.
CHUNK_ENTRIES = 1000
#: Most key and value bytes in one chunk (an entry larger than this is a chunk alone).
CHUNK_BYTES = 4 * 1024 * 1024


def _progress(console: Console, *, total: bool) -> Progress:
    columns = (
        [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn()]
        if total
        else [SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn()]
    )
    # Shown on a terminal only: rich disables it when stderr is a pipe or file.
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


@cli.command()
@package_argument
@db_argument
@home_option
@verbose_option
def dump(package: PackageId, db: str, home: Path) -> None:
    """Write every entry of DB of PACKAGE to stdout, in the dump format (JSON lines).

    The format is documented in the README ("Command line"): a header line,
    one {"k": base64, "v": base64} line per entry in key order, a trailer
    {"end": {"count": N}}.

    \b
    Example:
      kvruntime dump my-app:publisher.os notes > notes.jsonl
    """
    out = sys.stdout.buffer
    console = Console(stderr=True)

    async def body(ctx: ProcessContext) -> int:
        handle = await open_db(ctx, package, db, create=False)
        out.write(header_line(str(package), db))
        count = 0
        with _progress(console, total=False) as progress:
            task = progress.add_task(escape(f"dump [{package}, {db}]"), total=None)
            async for key, value in handle.scan():  # read to the end: nothing left open
                out.write(record_line(key, value))
                count += 1
                progress.advance(task)
        out.write(end_line(count))
        out.flush()
        return count

    count = run_in_home(home, lambda rt: as_admin(rt, package, body))
    console.print(f"dumped {count} entries of [{package}, {db}]", markup=False, highlight=False)


@cli.command()
@package_argument
@db_argument
@click.option("--create", is_flag=True, help="Create DB if it does not exist.")
@home_option
@verbose_option
def load(package: PackageId, db: str, create: bool, home: Path) -> None:
    """Read a dump from stdin into DB of PACKAGE (existing other keys stay).

    Each chunk of entries is written atomically; a bad line stops the load
    before its chunk is written. DB must exist unless --create is given.

    \b
    Example:
      kvruntime load my-app:publisher.os notes-copy --create < notes.jsonl
    """
    source = sys.stdin.buffer
    if source.isatty():  # the user forgot "< FILE": do not sit waiting for typed JSON
        raise CliError("stdin is a terminal: give the dump on stdin (... < FILE)", EXIT_USAGE)
    console = Console(stderr=True)
    size = _regular_file_size(source)
    stats = {"entries": 0, "chunks": 0}
    stopped: list[CliError] = []

    async def body(ctx: ProcessContext) -> None:
        handle = await open_db(ctx, package, db, create=create)
        with _progress(console, total=size is not None) as progress:
            task = progress.add_task(escape(f"load [{package}, {db}]"), total=size)
            try:
                for chunk in _chunks(source, progress, task):
                    await handle.set_many(chunk)
                    stats["entries"] += len(chunk)
                    stats["chunks"] += 1
            except CliError as exc:
                stopped.append(exc)

    try:
        run_in_home(home, lambda rt: as_admin(rt, package, body), create_home=create)
    except CliError as exc:
        if exc.exit_code == 1 and "does not exist" in exc.message and not create:
            raise CliError(f"{exc.message} (use --create to create it)") from None
        raise
    done = f"loaded {stats['entries']} entries into [{package}, {db}] in {stats['chunks']} chunks"
    if stopped:
        raise CliError(f"{stopped[0].message}; {done} before it", stopped[0].exit_code)
    click.echo(done)


def _regular_file_size(stream: BinaryIO) -> int | None:
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _chunks(
    source: BinaryIO, progress: Progress, task: TaskID
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Chunks of records, checked line by line; CliError for a bad or truncated dump."""
    chunk: list[tuple[bytes, bytes]] = []
    chunk_bytes = 0
    records = 0
    number = 0
    end: End | None = None
    for number, line in enumerate(source, start=1):  # number is reported below
        progress.advance(task, len(line))
        try:
            parsed = parse_line(line)
        except DumpFormatError as exc:
            raise CliError(f"line {number}: {exc}", EXIT_USAGE) from None
        if number == 1 and not isinstance(parsed, Header):
            raise CliError("line 1: not a dump header (is this a kvruntime dump?)", EXIT_USAGE)
        if end is not None:
            raise CliError(f"line {number}: data after the trailer", EXIT_USAGE)
        match parsed:
            case Header():
                if number != 1:
                    raise CliError(f"line {number}: a second header", EXIT_USAGE)
            case Record(key=key, value=value):
                chunk.append((key, value))
                records += 1
                chunk_bytes += len(key) + len(value)
                if len(chunk) >= CHUNK_ENTRIES or chunk_bytes >= CHUNK_BYTES:
                    yield chunk
                    chunk, chunk_bytes = [], 0
            case End(count=count):
                if count != records:
                    raise CliError(
                        f"line {number}: the trailer counts {count} entries, "
                        f"the dump has {records}",
                        EXIT_USAGE,
                    )
                end = parsed
    if number == 0:
        raise CliError("the input is empty (expected a dump on stdin)", EXIT_USAGE)
    if end is None:
        if chunk:
            yield chunk  # every line read is well formed: keep what the file holds
        raise CliError("the dump ends without its trailer line (truncated?)")
    if chunk:
        yield chunk
