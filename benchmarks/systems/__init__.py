"""One driver per system, all with the same shape (``Driver``).

A driver runs each workload's tight loop itself, in the form a user of that
system would write it, and times only that loop: setup (opening, loading,
spawning) is outside the clock. A system that cannot start raises
``Missing`` from ``__aenter__``; a workload it has no form for raises
``Unsupported``; both are reported with their reason, never dropped.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

import attrs

from kvruntime.storage.file_budget import FDS_PER_DB

from ..data import Dataset

__all__ = [
    "Driver",
    "DriverFactory",
    "Footprint",
    "Footprinted",
    "Missing",
    "PageScanner",
    "Unsupported",
    "check_descriptors",
    "check_read",
    "descriptors_under",
]


class Missing(Exception):
    """The system could not be started here (the message says why)."""


class Unsupported(Exception):
    """The system has no form of this workload (the message says why)."""


class Driver(Protocol):
    """A system under measurement. Every timing method returns seconds."""

    #: Short name used in the tables.
    name: str
    #: How it runs here, in one line (shown under the table).
    how: str

    async def __aenter__(self) -> Driver: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def set_seq(self, data: Dataset) -> float:
        """Set each pair in turn from one sender, each awaited."""
        ...

    async def get_seq(self, keys: Sequence[bytes]) -> float:
        """Get each key in turn from one sender (all present), each awaited."""
        ...

    async def get_latencies(self, keys: Sequence[bytes]) -> list[int]:
        """Get each key in turn; return each get's latency in nanoseconds."""
        ...

    async def set_concurrent(self, shares: Sequence[Dataset]) -> float:
        """One sender per share, all at once, each setting its pairs in turn."""
        ...

    async def get_concurrent(self, shares: Sequence[Sequence[bytes]]) -> float:
        """One sender per share, all at once, each getting its keys in turn."""
        ...

    async def set_many(self, batches: Sequence[Dataset]) -> float:
        """Write each batch in the system's batch form, one after the other."""
        ...

    async def transaction(self, txs: Sequence[Dataset]) -> float:
        """For each: a transaction of its pairs, in the system's best form.

        kvruntime: ``async with db.transaction()`` (writes buffered, one
        request at the end); redis: one MULTI/EXEC pipeline; plyvel: a write batch.
        """
        ...

    async def transaction_awaited(self, txs: Sequence[Dataset]) -> float:
        """For each: begin a transaction, set its pairs (each awaited), commit.

        One round trip per set: the form of kvruntime's begin_tx/set/commit_tx
        (plyvel, having no round trips, still writes a batch).
        """
        ...

    async def load_scan(self, data: Dataset) -> None:
        """Store ``data`` in the scan store (not timed)."""
        ...

    async def scan(self) -> tuple[float, int]:
        """Read the whole scan store in key order; return (seconds, pairs seen)."""
        ...

    async def multi_db(self, dbs: int, data: Dataset) -> float:
        """Set the pairs round-robin across ``dbs`` databases (opened before the clock)."""
        ...


@attrs.frozen(kw_only=True)
class Footprint:
    """What a system's many-dbs store held after a round."""

    #: Descriptors open on files under its folder.
    descriptors: int
    #: This process's RSS growth since that store started (other systems' included).
    rss_growth_bytes: int


@runtime_checkable
class Footprinted(Protocol):
    """A driver that reports what its many-dbs store holds (kvruntime)."""

    def db_footprint(self, dbs: int) -> Footprint | None:
        """After a ``multi_db(dbs, ...)`` round: what it held then."""
        ...


@runtime_checkable
class PageScanner(Protocol):
    """A driver whose system also reads a scan a page at a time (kvruntime)."""

    async def scan_pages(self) -> tuple[float, int]:
        """As ``scan``, a page at a time: (seconds, pairs seen)."""
        ...


def descriptors_under(folder: Path) -> int:
    """How many of this process's descriptors are open on files under ``folder``."""
    prefix = str(folder.resolve()) + os.sep
    fd_dir = Path("/proc/self/fd")
    count = 0
    for entry in fd_dir.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:  # closed since the listing
            continue
        count += target.startswith(prefix)
    return count


#: Builds a driver on a scratch folder.
DriverFactory = Callable[[Path], Driver]


def check_read(system: str, got_bytes: int, expected_bytes: int) -> None:
    """Raise if a read loop did not get back every value it should have."""
    if got_bytes != expected_bytes:
        raise AssertionError(f"{system}: read {got_bytes} value bytes, expected {expected_bytes}")


def check_descriptors(system: str, dbs: int) -> None:
    """Unsupported if ``dbs`` LevelDBs kept open at once would pass the file limit.

    For the peers that keep every db open: past the limit LevelDB fails to open
    (or, worse, to write a table file later), which says nothing of speed.
    """
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    need = dbs * FDS_PER_DB + soft // 5 + 256  # LevelDB's table files, the rest of the run
    if soft != resource.RLIM_INFINITY and need > soft:
        raise Unsupported(
            f"{system}: keeping {dbs:,} LevelDBs open needs ~{need:,} descriptors,"
            f" the file limit is {soft:,}"
        )
