"""The size checks the handlers share (PROTOCOL.md steps 6 and 6b), and the
reserved-key check of every user write (``reserved.py``).

Each check returns what is wrong (a ``KvError``) or None; it answers
nothing. A handler returns the error, and the loop answers it (one place).
"""

from __future__ import annotations

import operator
from typing import cast

from protocol.blobs import ops_fit
from protocol.messages import (
    BatchTooLarge,
    KeyReserved,
    KeyTooLarge,
    KvError,
    TransactionTooLarge,
    ValueTooLarge,
)

from .config import KvConfig
from .reserved import RESERVED

__all__ = [
    "batch_blob",
    "first",
    "key_reserved",
    "key_too_large",
    "keys_reserved",
    "ops_refused",
    "ops_too_large",
    "second",
    "value_too_large",
]

_Puts = list[tuple[bytes, bytes]]

#: The key and the value of a (key, value) op, for C-level passes over batches.
first = operator.itemgetter(0)
second = operator.itemgetter(1)


def key_too_large(config: KvConfig, *keys: bytes | None) -> KeyTooLarge | None:
    """KeyTooLarge for the first key past the limit, else None."""
    limit = config.max_key_bytes
    for key in keys:
        if key is not None and len(key) > limit:
            return KeyTooLarge(size=len(key), max=limit)
    return None


def value_too_large(config: KvConfig, value: bytes | None) -> ValueTooLarge | None:
    """ValueTooLarge if ``value`` is past the limit, else None."""
    limit = config.max_value_bytes
    if value is not None and len(value) > limit:
        return ValueTooLarge(size=len(value), max=limit)
    return None


def ops_too_large(config: KvConfig, ops: list[tuple[bytes, bytes | None]]) -> KvError | None:
    """KeyTooLarge for the first key past the limit, else ValueTooLarge for the
    first value past it, else None. None values (deletes) are fine."""
    try:  # batches hold thousands of ops: a C-level pass each over keys and values
        keys_total = len(b"".join(map(first, ops)))
        values_total = len(b"".join(map(second, cast(_Puts, ops))))
    except TypeError:  # a delete's None value: keys and values apart, below
        pass
    else:  # when the totals fit, every key and value does
        if keys_total <= config.max_key_bytes and values_total <= config.max_value_bytes:
            return None
    if ops and max(map(len, map(first, ops))) > config.max_key_bytes:
        return key_too_large(config, *map(first, ops))
    # filter(None, ...) drops deletes (and empty values, which fit anyway).
    for value in filter(None, map(second, ops)):
        if error := value_too_large(config, value):
            return error
    return None


_KEY_RESERVED = KeyReserved()


def ops_refused(config: KvConfig, ops: list[tuple[bytes, bytes | None]]) -> KvError | None:
    """``ops_too_large``, else ``keys_reserved``: what the first op past a limit or
    reserved is refused with, else None. Where the compiled helper finds every op
    fine (one C pass over the list, nothing copied: ``blobs.ops_fit``) that is
    None at once; the Python passes run only for a batch it refuses (to name
    the error) or when it is not built."""
    if ops_fit(ops, config.max_key_bytes, config.max_value_bytes, RESERVED):
        return None
    return ops_too_large(config, ops) or keys_reserved(ops)


def key_reserved(key: bytes) -> KeyReserved | None:
    """KeyReserved if ``key`` is kv's own, else None."""
    return _KEY_RESERVED if key >= RESERVED else None


def keys_reserved(ops: list[tuple[bytes, bytes | None]]) -> KeyReserved | None:
    """KeyReserved if a key of ``ops`` is kv's own, else None: one C-level pass
    (a key is reserved iff it sorts at or above ``RESERVED``)."""
    if ops and max(map(first, ops)) >= RESERVED:
        return _KEY_RESERVED
    return None


def batch_blob(config: KvConfig, blob: bytes | None, count: int) -> bytes | KvError:
    """The blob of a batch once its count and size pass (6, 6b), else the error."""
    if count > config.max_batch_items:
        return BatchTooLarge(count=count, max=config.max_batch_items)
    blob = blob or b""
    if len(blob) > config.max_transaction_bytes:
        return TransactionTooLarge(size=len(blob), max=config.max_transaction_bytes)
    return blob
