"""``dump`` and ``load``: a db to and from the portable line format of ``_dumpformat``.

A dump is consistent: the command's own runtime holds the home (no other
runtime can write to it meanwhile). A load reads and checks its whole input
before it starts a runtime: input that is refused (empty, not a dump, a
version it does not read, a bad line, data after the trailer, a missing
trailer) writes nothing and creates nothing, not even with ``--create``.
Input from a pipe is kept in a temporary file meanwhile. Then it writes in
chunks, each atomic (one ``set_many``, at most ``CHUNK_ENTRIES`` entries or
``CHUNK_BYTES`` bytes): an error kv:distro:sys answers leaves every earlier
chunk written and nothing of its own, and names the lines of its chunk.

Ctrl-C (SIGINT) exits 130 and leaves only what kv acknowledged: while the
input is read and checked, nothing is written at all; once writing began,
the chunk in flight is let finish (it is atomic, and kv may have applied it
already), the load stops before the next one and says how many entries and
chunks went in.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

import click

from ._app import (
    EXIT_INTERRUPTED,
    EXIT_KV,
    EXIT_USAGE,
    CliError,
    cli,
    db_argument,
    echo_json,
    home_option,
    json_option,
    package_argument,
    plural,
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
from ._seconds import ttl_option
from ._session import as_admin, on_interrupt, open_db, run_in_home

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from protocol.ids import PackageId

    from ..kernel.process import ProcessContext

__all__ = ["CHUNK_BYTES", "CHUNK_ENTRIES", "dump", "load"]

#: Most entries written by one atomic ``set_many`` of ``load``.
CHUNK_ENTRIES = 1000
#: Most key and value bytes in one chunk (an entry larger than this is a chunk alone).
CHUNK_BYTES = 4 * 1024 * 1024


def _progress(console: Console, *, total: bool) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

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
@json_option
@home_option
@verbose_option
def dump(package: PackageId, db: str, as_json: bool, home: Path) -> None:
    """Write every entry of DB of PACKAGE to stdout, in the dump format (JSON lines).

    The format is documented in the README ("Command line"): a header line,
    one {"k": base64, "v": base64} line per entry in key order, a trailer
    {"end": {"count": N}}. With --json an error is a JSON object on stdout
    (after what was written: a dump without its trailer, which load refuses).

    \b
    Example:
      kvruntime dump my-app:publisher.os notes > notes.jsonl
    """
    from rich.console import Console
    from rich.markup import escape

    del as_json  # it changes how an error is shown (set_json_mode), not the dump
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

    count = run_in_home(home, lambda s: as_admin(s, package, body))
    done = f"dumped {plural(count, 'entry')} of [{package}, {db}]"
    console.print(done, markup=False, highlight=False)


@cli.command()
@package_argument
@db_argument
@click.option("--create", is_flag=True, help="Create DB if it does not exist.")
@ttl_option("--ttl", help="Every loaded key expires SECONDS after its chunk is written.")
@json_option
@home_option
@verbose_option
def load(
    package: PackageId, db: str, create: bool, ttl: float | None, as_json: bool, home: Path
) -> None:
    """Read a dump from stdin into DB of PACKAGE (existing other keys stay).

    The whole input is checked first: a refused dump writes (and creates)
    nothing. Then each chunk of entries is written atomically. DB must exist
    unless --create is given. Loaded keys never expire, unless --ttl gives
    them all one (a dump does not record TTLs).

    \b
    Example:
      kvruntime load my-app:publisher.os notes-copy --create < notes.jsonl
      kvruntime load my-app:publisher.os cache --ttl 3600 < cache.jsonl
    """
    from rich.console import Console
    from rich.markup import escape

    from .. import kv

    source = sys.stdin.buffer
    if source.isatty():  # the user forgot "< FILE": do not sit waiting for typed JSON
        raise CliError("stdin is a terminal: give the dump on stdin (... < FILE)", EXIT_USAGE)
    console = Console(stderr=True)
    with _checked(source) as (checked, size):
        stats = {"entries": 0, "chunks": 0}

        async def body(ctx: ProcessContext) -> None:
            interrupted: list[bool] = []  # Ctrl-C: stop before the next chunk
            with (
                on_interrupt(lambda: interrupted.append(True)),
                _progress(console, total=True) as progress,
            ):
                handle = await open_db(ctx, package, db, create=create)
                task = progress.add_task(escape(f"load [{package}, {db}]"), total=size)
                for first, last, chunk in _chunks(_records(_advancing(checked, progress, task))):
                    if interrupted:
                        raise CliError(
                            f"interrupted: {_done(stats, package, db)};"
                            " the rest of the dump was not loaded",
                            EXIT_INTERRUPTED,
                        )
                    try:
                        await handle.set_many(chunk, ttl=ttl)
                    except kv.KvError as exc:
                        raise CliError(
                            f"lines {first}-{last}: kv:distro:sys answered: {exc};"
                            f" {_done(stats, package, db)} before them"
                        ) from None
                    stats["entries"] += len(chunk)
                    stats["chunks"] += 1

        try:
            run_in_home(home, lambda s: as_admin(s, package, body), create_home=create)
        except CliError as exc:
            if exc.exit_code == EXIT_KV and "does not exist" in exc.message and not create:
                raise CliError(f"{exc.message} (use --create to create it)") from None
            raise
    if as_json:
        echo_json({"loaded": stats["entries"], "chunks": stats["chunks"]})
    else:
        click.echo(_done(stats, package, db))


def _done(stats: dict[str, int], package: PackageId, db: str) -> str:
    entries, chunks = plural(stats["entries"], "entry"), plural(stats["chunks"], "chunk")
    return f"loaded {entries} into [{package}, {db}] in {chunks}"


def _regular_file_size(stream: BinaryIO) -> int | None:
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class _Checked:
    """``load``'s input, read to its end and checked; a pipe's bytes kept in a temporary file."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._spool: IO[bytes] | None = None

    def __enter__(self) -> tuple[BinaryIO, int]:
        try:
            return self._read()
        except KeyboardInterrupt:  # nothing was written: say so (the runtime is not up yet)
            message = "interrupted while reading the dump: nothing was loaded"
            raise CliError(message, EXIT_INTERRUPTED) from None

    def _read(self) -> tuple[BinaryIO, int]:
        import shutil
        import tempfile

        size = _regular_file_size(self._source)
        if size is not None:  # a file: check it, then read it again from the start
            start = self._source.tell()
            for _ in _records(self._source):
                pass
            self._source.seek(start)
            return self._source, size - start
        spool = tempfile.TemporaryFile()  # noqa: SIM115  (closed by __exit__)
        self._spool = spool
        try:
            shutil.copyfileobj(self._source, spool)
            spool.seek(0)
            for _ in _records(spool):
                pass
            size = spool.tell()
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool, size

    def __exit__(self, *_: object) -> None:
        if self._spool is not None:
            self._spool.close()


def _checked(source: BinaryIO) -> _Checked:
    return _Checked(source)


def _advancing(source: Iterable[bytes], progress: Progress, task: TaskID) -> Iterator[bytes]:
    for line in source:
        progress.advance(task, len(line))
        yield line


def _records(source: Iterable[bytes]) -> Iterator[tuple[int, Record]]:
    """The records of a dump with their line numbers; CliError (naming the line) if it is bad."""
    records = 0
    number = 0
    end: End | None = None
    for number, line in enumerate(source, start=1):  # number is reported below
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
            case Record():
                records += 1
                yield number, parsed
            case End(count=count):
                if count != records:
                    raise CliError(
                        f"line {number}: the trailer counts {count} entries, "
                        f"the dump has {records}",
                        EXIT_USAGE,
                    )
                end = parsed
    if number == 0:
        raise CliError("line 1: the input is empty (expected a dump on stdin)", EXIT_USAGE)
    if end is None:
        raise CliError(
            f"line {number + 1}: the dump ends without its trailer line (truncated?);"
            " nothing was loaded",
            EXIT_USAGE,
        )


def _chunks(
    records: Iterable[tuple[int, Record]],
) -> Iterator[tuple[int, int, list[tuple[bytes, bytes]]]]:
    """Chunks of entries, each with the numbers of its first and last lines."""
    chunk: list[tuple[bytes, bytes]] = []
    chunk_bytes = 0
    first = last = 0
    for number, record in records:
        if not chunk:
            first = number
        chunk.append((record.key, record.value))
        chunk_bytes += len(record.key) + len(record.value)
        last = number
        if len(chunk) >= CHUNK_ENTRIES or chunk_bytes >= CHUNK_BYTES:
            yield first, last, chunk
            chunk, chunk_bytes = [], 0
    if chunk:
        yield first, last, chunk
