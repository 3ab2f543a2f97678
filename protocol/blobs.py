"""Blob shapes of the batch, scan and compare-and-swap messages (PROTOCOL.md, "Blobs").

Keys and values never travel in the body: a request or response that
carries many of them puts them in its blob as one msgpack array, and its
body says how many (``count``). The shapes:

- keys (GetMany, DeleteMany): ``[bin, ...]``;
- items (SetMany): ``[[bin key, bin value], ...]``;
- writes (WriteBatch, CommitBatch): ``[[bin key, bin value | nil], ...]`` (nil deletes);
- optional values (GetMany's answer): ``[bin | nil, ...]``;
- a scan page: ``[bin key, bin value, bin key, bin value, ...]`` (flat: no
  array per entry, so neither side builds or checks one), or ``[bin key, ...]``
  when keys only; decoded in C where built (``_cblobs.c``, issue 12), the
  Python decoder its reference;
- compare-and-swap: ``[expected: bin | nil, new: bin | nil]``.

Decoding is as strict as the body codec: exactly ``count`` entries, the
right type in every position, no ext types, no trailing bytes. Anything
else raises ``DecodeError`` (the kv process answers ``MalformedRequest``).
The blob's size is bounded by the caller before decoding.

The batch blobs (items and writes) have a compiled twin, ``_cblobs.c``
(issue 12): it reads a blob straight into the pairs with no msgpack object
in between, and packs exact ``(bytes, bytes)`` tuples with one copy each.
The Python functions here stay the reference: a blob the C reader refuses
is decoded again by them, so the DecodeError and its message are theirs,
and they serve alone when the extension is not built (``HAVE_C``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Final, cast

import msgpack

from ._schema import _pack
from ._shapes import DecodeError, _bin, _optional_bin
from .codec import _reject_ext

try:
    from . import _cblobs as _c
except ImportError:  # not built (no compiler at install): the Python functions alone
    _c = None  # type: ignore[assignment]

#: Whether the compiled twin of the batch blobs and scan pages is in use (``_cblobs.c``).
HAVE_C: Final = _c is not None

__all__ = [
    "CHANGE_KINDS",
    "HAVE_C",
    "ScanPageWriter",
    "decode_cas",
    "decode_changes",
    "decode_items",
    "decode_keys",
    "decode_optional_values",
    "decode_scan_page",
    "decode_scan_page_py",
    "decode_writes",
    "encode_cas",
    "encode_changes",
    "encode_items",
    "encode_items_within",
    "encode_keys",
    "encode_optional_values",
    "encode_scan_page",
    "encode_writes",
    "encode_writes_within",
    "ops_fit",
]

_CAS_LEN: Final = 2
_first: Final = itemgetter(0)
_second: Final = itemgetter(1)


def _array(data: bytes, count: int, inner: int = _CAS_LEN) -> tuple[object, ...]:
    """The top-level array of ``data``, which must have exactly ``count`` entries
    (an inner array at most ``inner``)."""
    if not isinstance(data, bytes):
        raise DecodeError("a blob is bytes")
    try:
        value: object = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            ext_hook=_reject_ext,
            max_array_len=max(count, inner),
            max_map_len=0,
        )
    except DecodeError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise DecodeError(f"blob: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if type(value) is not tuple:
        raise DecodeError(f"blob: expected an array, got {type(value).__name__}")
    if len(value) != count:
        raise DecodeError(f"blob: expected {count} entries, got {len(value)}")
    return value


def _pair(value: object, index: int) -> tuple[bytes, bytes]:
    if type(value) is not tuple or len(value) != 2:
        raise DecodeError(f"blob entry {index}: expected [key, value]")
    return _bin(value[0], f"blob entry {index} key"), _bin(value[1], f"blob entry {index} value")


def encode_keys(keys: Iterable[bytes]) -> bytes:
    """``[bin, ...]``."""
    return _pack([bytes(key) for key in keys])


def decode_keys(data: bytes, count: int) -> list[bytes]:
    """``count`` keys from a ``[bin, ...]`` blob."""
    keys = _array(data, count)
    if _all_bytes(keys):  # one C-level pass; the loop below only names the culprit
        return list(keys)  # type: ignore[arg-type]
    return [_bin(key, f"blob entry {i}") for i, key in enumerate(keys)]


def _all_bytes(values: Sequence[object]) -> bool:
    """Whether every one of ``values``, decoded by msgpack, is bytes (one C-level pass).

    ``b"".join`` takes bytes-like objects only, and of those msgpack decodes
    nothing but bytes; the join's copy costs less than a pass collecting types.
    """
    try:
        b"".join(values)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def encode_items(items: Sequence[tuple[bytes, bytes]]) -> bytes:
    """``[[bin key, bin value], ...]`` (msgpack writes each pair, a tuple, as an array).

    Entries are packed as they are; the decoder checks every one.
    """
    return _pack(items)


def encode_items_within(items: list[Any], max_key: int, max_value: int) -> bytes | None:
    """``encode_items(items)`` when every item is an exact ``(bytes, bytes)`` tuple
    whose key and value are within ``max_key`` and ``max_value`` bytes, done in C;
    None otherwise, or when the C twin is not built: then the caller checks the
    items and packs them with ``encode_items``."""
    return None if _c is None else _c.encode_items(items, max_key, max_value)


def encode_writes_within(writes: list[Any], max_key: int, max_value: int) -> bytes | None:
    """``encode_items_within`` for writes: a value may be None (a delete)."""
    return None if _c is None else _c.encode_writes(writes, max_key, max_value)


def ops_fit(
    ops: list[tuple[bytes, bytes | None]], max_key: int, max_value: int, reserved: bytes
) -> bool | None:
    """True if every op is a tuple of an exact bytes key of at most ``max_key``
    bytes that sorts below ``reserved`` and an exact bytes value of at most
    ``max_value`` (or None); False if not; None when the C twin is not built (the
    caller then checks the ops itself). One C pass, nothing copied."""
    return None if _c is None else _c.ops_fit(ops, max_key, max_value, reserved)


def decode_items(data: bytes, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` (key, value) pairs from a ``[[bin, bin], ...]`` blob (a new list)."""
    if _c is not None and (pairs := _c.decode_items(data, count)) is not None:
        return pairs
    return _py_decode_items(data, count)


def _py_decode_items(data: bytes, count: int) -> list[tuple[bytes, bytes]]:
    """``decode_items`` in Python: the reference, and the fallback."""
    entries = _array(data, count)
    # Batches hold thousands of pairs: check them with C-level passes, and walk
    # them one by one only to name the culprit of a malformed blob. Transposed,
    # every entry must give exactly one key and one value (zip's strict check);
    # an entry that is bin or str gives ints or str, which _all_bytes refuses.
    try:
        keys, values = zip(*entries, strict=True)
    except (TypeError, ValueError):  # an entry no array, or not of two
        pass
    else:
        if _all_bytes(keys) and _all_bytes(values):
            return list(entries)  # type: ignore[arg-type]
    return [_pair(entry, i) for i, entry in enumerate(entries)]


def encode_writes(writes: Sequence[tuple[bytes, bytes | None]]) -> bytes:
    """``[[bin key, bin value | nil], ...]``: a None value is a delete.

    Entries are packed as they are; the decoder checks every one.
    """
    return _pack(writes)


_WRITE_VALUE_TYPES: Final = frozenset((bytes, type(None)))


def decode_writes(data: bytes, count: int) -> list[tuple[bytes, bytes | None]]:
    """``count`` (key, value or None) writes from a ``[[bin, bin | nil], ...]`` blob
    (a new list)."""
    if _c is not None and (writes := _c.decode_writes(data, count)) is not None:
        return writes
    return _py_decode_writes(data, count)


def _py_decode_writes(data: bytes, count: int) -> list[tuple[bytes, bytes | None]]:
    """``decode_writes`` in Python: the reference, and the fallback."""
    entries = _array(data, count)
    # As decode_items: C-level passes over the whole batch; the walk below only
    # runs for a malformed blob, to name the culprit.
    if set(map(type, entries)) == {tuple}:
        pairs = cast(tuple[tuple[object, ...], ...], entries)
        if (
            set(map(len, pairs)) == {2}
            and set(map(type, map(_first, pairs))) == {bytes}
            and set(map(type, map(_second, pairs))) <= _WRITE_VALUE_TYPES
        ):
            return list(pairs)  # type: ignore[arg-type]
    return [_write(entry, i) for i, entry in enumerate(entries)]


def _write(value: object, index: int) -> tuple[bytes, bytes | None]:
    if type(value) is not tuple or len(value) != 2:
        raise DecodeError(f"blob entry {index}: expected [key, value or nil]")
    return _bin(value[0], f"blob entry {index} key"), _optional_bin(
        value[1], f"blob entry {index} value"
    )


def encode_optional_values(values: Iterable[bytes | None]) -> bytes:
    """``[bin | nil, ...]``."""
    return _pack([None if value is None else bytes(value) for value in values])


def decode_optional_values(data: bytes, count: int) -> list[bytes | None]:
    """``count`` values (None for nil) from a ``[bin | nil, ...]`` blob."""
    return [_optional_bin(v, f"blob entry {i}") for i, v in enumerate(_array(data, count))]


class ScanPageWriter:
    """Packs a scan page chunk by chunk, so the page itself is never built.

    A page may hold thousands of entries: each chunk is packed as it comes
    (one C-level call) and can be freed at once. ``blob`` is
    ``encode_scan_page``'s bytes for all the chunks added.
    """

    __slots__ = ("_count", "_keys_only", "_packb", "_parts")

    def __init__(self, *, keys_only: bool) -> None:
        self._keys_only = keys_only
        self._packb = msgpack.Packer(use_bin_type=True).pack
        self._parts: list[memoryview] = []
        self._count = 0

    @property
    def count(self) -> int:
        """How many entries were added."""
        return self._count

    def add(self, flat: Sequence[bytes]) -> None:
        """Append a chunk of entries, flat: ``[key, value, key, value, ...]``, or
        ``[key, ...]`` when ``keys_only``."""
        # The chunk packed as one array (a single C call), without that array's header.
        packed: bytes = self._packb(flat)
        self._parts.append(memoryview(packed)[_array_header_size(len(flat)) :])
        self._count += len(flat) if self._keys_only else len(flat) // 2

    def blob(self) -> bytes:
        """The page: the array's header, then every entry added."""
        size = self._count if self._keys_only else 2 * self._count
        header: bytes = msgpack.Packer().pack_array_header(size)
        return b"".join([header, *self._parts])  # one copy of the page


def _array_header_size(length: int) -> int:
    """Bytes of the header msgpack writes for an array of ``length`` entries."""
    if length <= 0x0F:
        return 1  # fixarray
    return 3 if length <= 0xFFFF else 5  # array16, array32


def encode_scan_page(entries: Sequence[tuple[bytes, bytes | None]], *, keys_only: bool) -> bytes:
    """A page: ``[key, value, key, value, ...]``, or ``[key, ...]`` when ``keys_only``."""
    writer = ScanPageWriter(keys_only=keys_only)
    if keys_only:
        writer.add([key for key, _ in entries])
    else:
        writer.add(list(chain.from_iterable(entries)))  # type: ignore[arg-type]
    return writer.blob()


def decode_scan_page(
    data: bytes, count: int, *, keys_only: bool
) -> list[tuple[bytes, bytes | None]]:
    """``count`` entries of a page; the value is None for every entry when ``keys_only``.

    Decoded in C (``_cblobs.c``: the page's tuples built straight from its
    bytes) where built; a page the C twin refuses is decoded again by
    ``decode_scan_page_py``, the reference, so the DecodeError is its own.
    """
    if _c is not None:
        page = _c.decode_scan_page(data, count, keys_only)
        if page is not None:
            return page
    return decode_scan_page_py(data, count, keys_only=keys_only)


def decode_scan_page_py(
    data: bytes, count: int, *, keys_only: bool
) -> list[tuple[bytes, bytes | None]]:
    """``decode_scan_page`` in Python: the reference of the C twin, and its fallback."""
    if isinstance(data, bytes) and count > len(data):  # each entry takes bytes: none fit
        raise DecodeError(f"blob: {count} entries cannot fit in {len(data)} bytes")
    if keys_only:
        return list(zip(decode_keys(data, count), repeat(None)))
    flat = _array(data, 2 * count)
    if not _all_bytes(flat):  # one C-level pass; the walk only names the culprit
        for i, value in enumerate(flat):
            _bin(value, f"blob entry {i // 2} {'value' if i % 2 else 'key'}")
    return list(zip(flat[::2], flat[1::2], strict=True))  # type: ignore[arg-type]


def encode_cas(expected: bytes | None, new: bytes | None) -> bytes:
    """``[expected, new]``, each bin or nil."""
    return _pack([expected, new])


def decode_cas(data: bytes) -> tuple[bytes | None, bytes | None]:
    """(expected, new) from a ``[bin | nil, bin | nil]`` blob."""
    expected, new = _array(data, _CAS_LEN)
    return _optional_bin(expected, "blob expected"), _optional_bin(new, "blob new")


# --- change feeds (PROTOCOL.md, "Change feeds") --------------------------------------

#: The kinds of change, as they travel.
CHANGE_KINDS: Final = ("set", "delete", "expire")


def encode_changes(changes: Sequence[tuple[int, str, bytes, bytes | None]]) -> bytes:
    """The blob of WatchChanges: ``[[seq, kind, key, value | nil], ...]``."""
    return _pack(changes)


def decode_changes(data: bytes, count: int) -> list[tuple[int, str, bytes, bytes | None]]:
    """The ``count`` changes of a WatchChanges blob, each checked; DecodeError else."""
    out: list[tuple[int, str, bytes, bytes | None]] = []
    for index, entry in enumerate(_array(data, count, inner=4)):
        if type(entry) is not tuple or len(entry) != 4:
            raise DecodeError(f"change {index} is not a [seq, kind, key, value] array")
        seq, kind, key, value = entry
        if type(seq) is not int or seq < 1 or kind not in CHANGE_KINDS:
            raise DecodeError(f"change {index} has a bad seq or kind")
        if type(key) is not bytes or not (value is None or type(value) is bytes):
            raise DecodeError(f"change {index}: key and value must be bin (value nil)")
        out.append((seq, kind, key, value))
    return out
