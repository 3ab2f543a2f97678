"""The client's argument checks: what goes on the wire is bytes, measured honestly.

A key, value, prefix or cursor is ``bytes``, ``bytearray`` or ``memoryview``
(taken as the bytes it holds, so a ``bytes`` subclass is measured by its real
length, not its ``len``); anything else is a TypeError naming the argument and
the type got, raised in the caller's task before anything is sent. The common
case (exact ``bytes``) costs one ``type(x) is bytes`` test per item, or a few
C-level passes over a batch, which check its sizes too (a batch's bytes-like
keys and values may go as they are: msgpack packs them as ``bin``); the walk
item by item runs only to convert or to name the culprit. Those passes take
any buffer (``b"".join`` does), so a batch is checked as its blob is packed:
msgpack refuses a buffer other than the three, and then the walk names it.
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any, Final, TypeVar

from protocol.blobs import encode_items, encode_items_within, encode_writes, encode_writes_within

from .codecs import BytesCodec, Codec
from .errors import check_batch_sizes, check_pair_sizes

__all__ = ["as_bytes", "encoded", "pairs_blob", "raw_keys", "ttl_ms", "writes_blob"]

T = TypeVar("T")

_BYTES_LIKE: Final = (bytes, bytearray, memoryview)
_BYTES: Final = frozenset((bytes,))
_BYTES_OR_NONE: Final = frozenset((bytes, type(None)))
_first = itemgetter(0)
_second = itemgetter(1)
_U64_MAX: Final = 2**64 - 1


def ttl_ms(seconds: float, name: str = "ttl") -> int:
    """A TTL in seconds as the wire's whole milliseconds (rounded up, at least 1).

    A TTL that is not a positive finite number, or past the wire's uint64 of
    milliseconds, is a ValueError (a bool or a non-number a TypeError),
    raised before anything is sent; kv refuses one past a db's maximum
    (TtlTooLarge).
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {seconds!r}")
    ms = max(1, math.ceil(seconds * 1000))
    if ms > _U64_MAX:
        raise ValueError(f"{name} of {seconds!r} s does not fit the wire's milliseconds")
    return ms


def as_bytes(value: object, what: str) -> bytes:
    """``value`` as exact bytes if it is bytes-like, else TypeError naming ``what``."""
    if type(value) is bytes:
        return value
    if isinstance(value, _BYTES_LIKE):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, bytearray or memoryview, got {type(value).__name__}")


def encoded(codec: Codec[T], value: T, what: str) -> bytes:
    """``value`` through ``codec`` (BytesCodec: checked as ``as_bytes`` does).

    A codec whose ``encode`` gives no bytes-like object is a TypeError too.
    """
    if isinstance(codec, BytesCodec):
        return as_bytes(value, what)
    raw: object = codec.encode(value)
    if type(raw) is bytes:
        return raw
    if isinstance(raw, _BYTES_LIKE):
        return bytes(raw)
    name = type(codec).__name__
    raise TypeError(f"{name}.encode gave {type(raw).__name__} for the {what}, not bytes")


def raw_keys(keys: list[Any]) -> list[bytes]:
    """``keys`` if every one is exact bytes (one C-level pass), else converted or TypeError."""
    if set(map(type, keys)) <= _BYTES:
        return keys
    return [as_bytes(key, f"key {i}") for i, key in enumerate(keys)]


def pairs_blob(pairs: list[Any], max_key: int, max_value: int) -> tuple[int, bytes]:
    """How many ``pairs`` and their items blob, checked as (key, value) pairs of
    bytes within the limits.

    TypeError names the first item that is no pair of bytes-like objects;
    KeyTooLarge / ValueTooLarge as ``check_batch_sizes`` raises them.
    """
    # Exact (bytes, bytes) tuples within the limits: checked and packed in one C
    # call (blobs.encode_items_within); anything else takes the passes below.
    if (blob := encode_items_within(pairs, max_key, max_value)) is not None:
        return len(pairs), blob
    raw = _raw_pairs(pairs, max_key, max_value)
    try:
        return len(raw), encode_items(raw)
    except TypeError:  # a buffer msgpack does not pack, which the passes let by
        _walk_pairs(pairs)  # raises, naming it
        raise


def writes_blob(writes: list[Any], max_key: int, max_value: int) -> tuple[int, bytes]:
    """``pairs_blob`` for writes, whose value may be None (a delete)."""
    if (blob := encode_writes_within(writes, max_key, max_value)) is not None:
        return len(writes), blob
    raw = _raw_writes(writes, max_key, max_value)
    try:
        return len(raw), encode_writes(raw)
    except TypeError:  # as in pairs_blob
        _walk_writes(writes)
        raise


def _raw_pairs(pairs: list[Any], max_key: int, max_value: int) -> list[tuple[bytes, bytes]]:
    """``pairs`` as they are when C-level passes find them bytes-like pairs within
    the limits (a value total within ``max_value`` means each value is), else walked."""
    keys = _keys_of(pairs, max_key)
    if keys is not None:
        values = keys[1]
        try:  # as the keys: bytes-like values only, their real bytes measured
            values_total = len(b"".join(values))
        except TypeError:  # a value not bytes-like: named below
            pass
        else:
            if values_total <= max_value:  # then every value fits
                return pairs
            if set(map(type, values)) <= _BYTES:
                if max(map(len, values)) > max_value:
                    check_batch_sizes(keys[0], values, max_key, max_value)
                return pairs
    checked = _walk_pairs(pairs)
    check_batch_sizes(map(_first, checked), map(_second, checked), max_key, max_value)
    return checked


def _raw_writes(
    writes: list[Any], max_key: int, max_value: int
) -> list[tuple[bytes, bytes | None]]:
    """``_raw_pairs`` for writes."""
    keys = _keys_of(writes, max_key)
    if keys is not None:
        values = keys[1]
        if set(map(type, values)) <= _BYTES_OR_NONE:
            # filter(None, ...) drops deletes (and empty values, which fit anyway).
            if max(map(len, filter(None, values)), default=0) > max_value:
                check_pair_sizes(writes, max_key, max_value)
            return writes
    checked = _walk_writes(writes)
    check_pair_sizes(checked, max_key, max_value)
    return checked


def _walk_pairs(pairs: list[Any]) -> list[tuple[bytes, bytes]]:
    """``pairs`` converted to exact bytes item by item; TypeError names the first bad one."""
    return [
        (as_bytes(key, f"key {i}"), as_bytes(value, f"value {i}"))
        for i, (key, value) in enumerate(_pairs(pairs))
    ]


def _walk_writes(writes: list[Any]) -> list[tuple[bytes, bytes | None]]:
    """``_walk_pairs`` for writes (a None value stays None)."""
    return [
        (as_bytes(key, f"key {i}"), None if value is None else as_bytes(value, f"value {i}"))
        for i, (key, value) in enumerate(_pairs(writes))
    ]


def _keys_of(pairs: list[Any], max_key: int) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """The keys and values of ``pairs`` when every item is a pair and every key is
    bytes-like and within ``max_key`` (else None: the caller walks the items).

    C-level passes: ``zip`` checks the shape; ``b"".join`` takes only bytes-like
    keys and measures what they hold, so when the keys' total fits, each does
    (a bytes subclass's ``len`` cannot lie to it); a larger total is measured
    key by key, on exact bytes only. The values are the caller's to check.
    """
    if not pairs:
        return (), ()
    try:
        keys, values = zip(*pairs, strict=True)
        total = len(b"".join(keys))
    except (TypeError, ValueError):  # an item that is no pair, a key not bytes-like
        return None
    if total > max_key:
        if not set(map(type, keys)) <= _BYTES:
            return None
        if max(map(len, keys)) > max_key:
            check_batch_sizes(keys, (), max_key, max_value=0)
    return keys, values


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    """``items`` as 2-tuples; TypeError naming the first item that is no pair."""
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"item {i} must be a (key, value) pair, got {type(item).__name__}")
        out.append((item[0], item[1]))
    return out
