"""The storage seam: what the kv service asks of one open database.

``Store`` is the interface every engine implements; ``StoreError`` is the one
exception a store raises, carrying the protocol error to answer with (the
engine translates its own failures into it, at its boundary and nowhere
else). The stores are ``leveldb.LevelDbStore`` and ``memory.MemoryStore``;
``engine.py`` is the seam one level up, mapping db names to stores.

``write`` is the only way to change a store: one batch, atomic.

A ``Store`` is for the synchronous stretch of code that uses it: never keep
one across an ``await`` (another thread may close it meanwhile; a later call
then raises ``StoreError``, it never crashes).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Final, Literal, Protocol, TypeAlias, overload

from protocol.blobs import ScanPageWriter
from protocol.messages import IoError, LevelDbError

try:
    from . import _cpage
except ImportError:  # not built (no compiler at install): fill_page_py alone
    _cpage = None  # type: ignore[assignment]

__all__ = [
    "HAVE_C_PAGE",
    "NotAtHand",
    "PageRead",
    "Store",
    "StoreError",
    "fill_page",
    "fill_page_py",
    "prefix_end",
]

#: A page read: its blob (``protocol.blobs``' scan page), how many entries it
#: holds, the last one's key (None if none) and whether more remain after it.
PageRead: TypeAlias = tuple[bytes, int, bytes | None, bool]

#: Whether pages are built by the compiled twin of ``fill_page_py`` (``_cpage.c``).
HAVE_C_PAGE: Final = _cpage is not None


class StoreError(Exception):
    """A storage call failed; ``error`` is the protocol error to answer with."""

    def __init__(self, error: LevelDbError | IoError) -> None:
        super().__init__(str(error))
        self.error = error


class NotAtHand(Exception):
    """A networked store cannot answer inline: ``need`` must be fetched first.

    ``store.fetch(need)`` (awaited on the event loop) brings it at hand; the
    caller then serves the request again. Embedded stores never raise it.
    """

    def __init__(self, store: object, need: tuple[object, ...]) -> None:
        super().__init__(need[0])
        self.store = store
        self.need = need


class Store(Protocol):
    """One open key-value database. Keys and values are bytes.

    Every method raises ``StoreError`` when the database fails or is closed.
    """

    @property
    def closed(self) -> bool:
        """Whether ``close`` has run."""

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None when absent."""

    def write(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        """Apply ``(key, value)`` ops as one atomic batch; None deletes; later ops win.

        If iterating ``ops`` raises, nothing is written. ``sync`` fsyncs the batch.
        """

    @overload
    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: Literal[True] = True,
    ) -> Generator[tuple[bytes, bytes], None, None]: ...

    @overload
    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: Literal[False],
    ) -> Generator[bytes, None, None]: ...

    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: bool = True,
    ) -> Generator[tuple[bytes, bytes], None, None] | Generator[bytes, None, None]:
        """Entries in key order (``reverse``: descending), from a snapshot taken now.

        The range is ``start <= key < stop`` or, instead, keys starting with
        ``prefix`` (ValueError if both are given). Yields ``(key, value)``, or
        keys alone when ``include_value`` is False. Exhaust it or ``close()`` it
        to release the snapshot.
        """

    def read_page(
        self,
        *,
        start: bytes | None,
        stop: bytes | None,
        reverse: bool,
        include_value: bool,
        limit: int,
        max_bytes: int,
    ) -> PageRead:
        """Up to ``limit`` entries of ``start <= key < stop`` from one snapshot, as a page.

        The page is the scan page blob of ``protocol.blobs``, in order: keys
        and values interleaved, or keys alone when ``include_value`` is false.
        It stops before the entry that would take it past ``max_bytes`` (keys
        plus values; a first entry is taken whatever its size). Returns the
        blob, how many entries, the last one's key (None if none), and whether
        more remain (``fill_page``'s rule, which every engine uses).
        """
        ...

    def close(self) -> None:
        """Close the database; idempotent."""


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


# --- the page rule every engine shares ------------------------------------------

_MAX_CHUNK = 256


def fill_page(raw: Iterator[Any], include_value: bool, limit: int, max_bytes: int) -> PageRead:
    """A page from ``raw`` (an engine's iterator of entries in key order:
    ``(key, value)`` pairs of bytes, or keys alone without ``include_value``)
    the way ``Store.read_page`` promises, so every engine bounds its pages
    alike: in C (``_cpage.c``: the page's bytes written straight from the
    entries) where built, else ``fill_page_py``, the reference. Both read at
    most one entry past the page.
    """
    if _cpage is not None:
        return _cpage.fill_page(raw, include_value, limit, max_bytes)
    return fill_page_py(raw, include_value, limit, max_bytes)


def fill_page_py(raw: Iterator[Any], include_value: bool, limit: int, max_bytes: int) -> PageRead:
    """``fill_page`` in Python: the reference of the compiled twin, and its fallback.

    Entries are packed in flat chunks that grow while entries of twice the
    last chunk's mean size would fit.
    """
    page = ScanPageWriter(keys_only=not include_value)
    count, last, more = _fill_chunks(raw, include_value, limit, max_bytes, page.add)
    return page.blob(), count, last, more


def _fill_chunks(
    raw: Iterator[Any],
    include_value: bool,
    limit: int,
    max_bytes: int,
    sink: Callable[[list[bytes]], None],
) -> tuple[int, bytes | None, bool]:
    width = 2 if include_value else 1  # items per entry in a flat chunk
    count, size, chunk = 0, 0, 1
    last: bytes | None = None
    while count < limit:
        taken = list(itertools.islice(raw, min(chunk, limit - count)))
        if not taken:
            return count, last, False
        flat: list[bytes] = list(itertools.chain.from_iterable(taken)) if include_value else taken
        total = len(b"".join(flat))  # one C-level pass; each length only past the bound
        over = size + total > max_bytes
        fits = (
            _fits(list(map(len, flat)), include_value, size, max_bytes, count)
            if over
            else len(taken)
        )
        if fits:
            sink(flat if fits == len(taken) else flat[: fits * width])
            count += fits
            last = flat[(fits - 1) * width]
        if over:  # cut inside this chunk, or a lone first entry past the bound
            return count, last, fits < len(taken) or next(raw, None) is not None
        size += total
        # Double the chunk while entries of twice this chunk's mean key or value
        # leave room for it (a max over the lengths would cost more than the read).
        mean = total // len(flat)
        chunk = max(1, min(2 * chunk, _MAX_CHUNK, (max_bytes - size) // (4 * mean + 1)))
    return count, last, next(raw, None) is not None


def _fits(lengths: list[int], include_value: bool, size: int, max_bytes: int, count: int) -> int:
    """How many entries of a chunk fit within ``max_bytes`` after ``size`` (a first
    entry of the page always does)."""
    sizes = list(map(operator.add, lengths[::2], lengths[1::2])) if include_value else lengths
    totals = list(itertools.accumulate(sizes, initial=size))[1:]
    return bisect.bisect_right(totals, max_bytes) or (0 if count else 1)
