"""The size checks the extended actions share (PROTOCOL.md steps 6 and 6b).

Each check answers ``msg`` with its error and returns True (or None, for
``batch_blob``) when the request fails it, so a handler returns at once.
"""

from __future__ import annotations

import operator
from itertools import chain
from typing import TYPE_CHECKING, cast

from protocol.messages import BatchTooLarge, KeyTooLarge, TransactionTooLarge, ValueTooLarge

from ..kernel.message import Request

if TYPE_CHECKING:
    from .loop import KvProcess

__all__ = [
    "batch_blob",
    "first",
    "key_too_large",
    "ops_too_large",
    "second",
    "value_too_large",
]

_Puts = list[tuple[bytes, bytes]]

#: The key and the value of a (key, value) op, for C-level passes over batches.
first = operator.itemgetter(0)
second = operator.itemgetter(1)


def key_too_large(kv: KvProcess, msg: Request, *keys: bytes | None) -> bool:
    """Answer KeyTooLarge for the first key past the limit, and say so."""
    limit = kv.config.max_key_bytes
    for key in keys:
        if key is not None and len(key) > limit:
            kv.fail(msg, KeyTooLarge(size=len(key), max=limit))
            return True
    return False


def ops_too_large(kv: KvProcess, msg: Request, ops: list[tuple[bytes, bytes | None]]) -> bool:
    """Answer KeyTooLarge for the first key past the limit, else ValueTooLarge for
    the first value past it, and say so. None values (deletes) are fine."""
    cfg = kv.config
    try:  # batches hold thousands of ops: one C-level pass over all keys and values
        longest = max(map(len, chain.from_iterable(cast(_Puts, ops))), default=0)
    except TypeError:  # len(None) of a delete: keys and values apart, below
        pass
    else:
        if longest <= min(cfg.max_key_bytes, cfg.max_value_bytes):
            return False
    if ops and max(map(len, map(first, ops))) > cfg.max_key_bytes:
        return key_too_large(kv, msg, *map(first, ops))
    # filter(None, ...) drops deletes (and empty values, which fit anyway).
    values = list(filter(None, map(second, ops)))
    if values and max(map(len, values)) > cfg.max_value_bytes:
        return any(value_too_large(kv, msg, value) for value in values)
    return False


def value_too_large(kv: KvProcess, msg: Request, value: bytes | None) -> bool:
    """Answer ValueTooLarge if ``value`` is past the limit, and say so."""
    limit = kv.config.max_value_bytes
    if value is not None and len(value) > limit:
        kv.fail(msg, ValueTooLarge(size=len(value), max=limit))
        return True
    return False


def batch_blob(kv: KvProcess, msg: Request, count: int) -> bytes | None:
    """The blob of a batch once its count and size pass (6, 6b), else answer and None."""
    cfg = kv.config
    if count > cfg.max_batch_items:
        kv.fail(msg, BatchTooLarge(count=count, max=cfg.max_batch_items))
        return None
    blob = msg.blob or b""
    if len(blob) > cfg.max_transaction_bytes:
        kv.fail(msg, TransactionTooLarge(size=len(blob), max=cfg.max_transaction_bytes))
        return None
    return blob
