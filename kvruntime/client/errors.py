"""The client's exceptions: one per KvError variant, all under ``KvError``.

Each carries the protocol value it was raised for as ``.error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from operator import itemgetter
from typing import NoReturn, cast

from protocol import messages as m

__all__ = [
    "AddCapFailed",
    "AnswerTooLarge",
    "BatchTooLarge",
    "CasMismatch",
    "IntegerOverflow",
    "IoError",
    "KeyNotFound",
    "KeyReserved",
    "KeyTooLarge",
    "KvError",
    "LevelDbError",
    "MalformedRequest",
    "MismatchingPackageId",
    "NoDb",
    "NoReadCap",
    "NoTx",
    "NoWatch",
    "NoWriteCap",
    "NotAnInteger",
    "RemoteNotAllowed",
    "TooManyTransactions",
    "TooManyWatches",
    "TransactionConflict",
    "TransactionTooLarge",
    "TtlDisabled",
    "TtlTooLarge",
    "UnexpectedResponse",
    "ValueTooLarge",
    "WatchCompacted",
    "WatchEnded",
    "raise_kv_error",
]


class KvError(Exception):
    """kv:distro:sys answered with an error; ``.error`` is the protocol value."""

    def __init__(self, error: m.KvError) -> None:
        super().__init__(str(error))
        self.error = error


class NoDb(KvError):
    """The db does not exist."""


class KeyNotFound(KvError):
    """The key is not in the db."""


class NoTx(KvError):
    """No such transaction for this sender and db (never begun, committed, or expired)."""


class NoWriteCap(KvError):
    """This process holds no write capability on the db."""


class NoReadCap(KvError):
    """This process holds no read capability on the db."""


class MismatchingPackageId(KvError):
    """Open or remove named another package's db."""


class AddCapFailed(KvError):
    """The runtime could not record the db's capabilities."""


class MalformedRequest(KvError):
    """The request did not decode, named an invalid db, or lacked its blob."""


class LevelDbError(KvError):
    """LevelDB reported an error."""


class IoError(KvError):
    """The file system reported an error."""


class KeyTooLarge(KvError):
    """The key is longer than the store accepts."""


class ValueTooLarge(KvError):
    """The value is longer than the store accepts."""


class TooManyTransactions(KvError):
    """This process has too many open transactions."""


class RemoteNotAllowed(KvError):
    """kv:distro:sys serves only its own node."""


class TransactionTooLarge(KvError):
    """The transaction would stage more bytes than allowed."""


class CasMismatch(KvError):
    """compare_and_swap found another value; ``.current`` is it (None: the key is absent)."""

    def __init__(self, error: m.KvError, current: bytes | None = None) -> None:
        super().__init__(error)
        #: The stored bytes of the key when the swap was refused (raw, not decoded).
        self.current = current


class TransactionConflict(KvError):
    """A key the transaction read was changed by another writer; nothing was applied."""


class NotAnInteger(KvError):
    """increment found a value that is not an ASCII-decimal signed 64-bit integer."""


class IntegerOverflow(KvError):
    """increment would take the counter outside the signed 64-bit range."""


class BatchTooLarge(KvError):
    """A batch names more keys than the store accepts in one request."""


class AnswerTooLarge(KvError):
    """A batch read would answer more bytes than the store sends at once: ask fewer keys."""


class KeyReserved(KvError):
    """The key starts with eight 0xff bytes, a region kv keeps for its own records."""


class TtlDisabled(KvError):
    """This db's settings forbid keys with a TTL (``set_ttl_policy(enabled=False)``)."""


class TtlTooLarge(KvError):
    """The TTL is longer than this db's maximum (``set_ttl_policy(max_ttl=...)``)."""


class WatchCompacted(KvError):
    """The change log no longer holds what follows the asked position (or the
    position is past the db's last change): ``oldest`` is the oldest change
    still held, ``last`` the db's last. Resynchronise (a snapshot), then watch."""

    @property
    def oldest(self) -> int:
        """The oldest seq the db's log still holds."""
        error = self.error
        return error.oldest if isinstance(error, m.WatchCompacted) else 0

    @property
    def last(self) -> int:
        """The db's last seq."""
        error = self.error
        return error.last if isinstance(error, m.WatchCompacted) else 0


class WatchEnded(KvError):
    """kv ended the watch: its db was removed, or read access was revoked."""

    @property
    def reason(self) -> str:
        """Why it ended."""
        error = self.error
        return error.reason if isinstance(error, m.WatchEnded) else str(error)


class TooManyWatches(KvError):
    """A watch past the per-process or per-node bound."""


class NoWatch(KvError):
    """No such watch of this process on this db (it ended)."""


class UnexpectedResponse(RuntimeError):
    """kv:distro:sys answered with a response of the wrong kind (a protocol bug)."""


_BY_VARIANT: dict[type, type[KvError]] = {
    m.NoDb: NoDb,
    m.KeyNotFound: KeyNotFound,
    m.NoTx: NoTx,
    m.NoWriteCap: NoWriteCap,
    m.NoReadCap: NoReadCap,
    m.MismatchingPackageId: MismatchingPackageId,
    m.AddCapFailed: AddCapFailed,
    m.MalformedRequest: MalformedRequest,
    m.LevelDbError: LevelDbError,
    m.IoError: IoError,
    m.KeyTooLarge: KeyTooLarge,
    m.ValueTooLarge: ValueTooLarge,
    m.TooManyTransactions: TooManyTransactions,
    m.RemoteNotAllowed: RemoteNotAllowed,
    m.TransactionTooLarge: TransactionTooLarge,
    m.TransactionConflict: TransactionConflict,
    m.NotAnInteger: NotAnInteger,
    m.IntegerOverflow: IntegerOverflow,
    m.BatchTooLarge: BatchTooLarge,
    m.AnswerTooLarge: AnswerTooLarge,
    m.KeyReserved: KeyReserved,
    m.TtlDisabled: TtlDisabled,
    m.TtlTooLarge: TtlTooLarge,
    m.WatchCompacted: WatchCompacted,
    m.WatchEnded: WatchEnded,
    m.TooManyWatches: TooManyWatches,
    m.NoWatch: NoWatch,
}


_Pairs = Sequence[tuple[bytes, bytes]]


def raise_kv_error(error: m.KvError, blob: bytes | None = None) -> NoReturn:
    """Raise the exception class for ``error`` (``blob``: the error response's blob)."""
    if isinstance(error, m.CasMismatch):
        raise CasMismatch(error, blob if error.present else None)
    raise _BY_VARIANT.get(type(error), KvError)(error)


def check_batch_sizes(
    keys: Iterable[bytes], values: Iterable[bytes], max_key: int, max_value: int
) -> None:
    """Raise KeyTooLarge for the first key over ``max_key``, else ValueTooLarge for
    the first value over ``max_value``: what kv would answer for the batch."""
    keys, values = list(keys), list(values)
    # C-speed passes (every entry is bytes: ``_checks`` saw to it); the culprit is
    # looked for only when there is one.
    key_over = max(map(len, keys), default=0) > max_key
    value_over = max(map(len, values), default=0) > max_value
    if key_over:
        size = next(n for n in map(len, keys) if n > max_key)
        raise KeyTooLarge(m.KeyTooLarge(size=size, max=max_key))
    if value_over:
        size = next(n for n in map(len, values) if n > max_value)
        raise ValueTooLarge(m.ValueTooLarge(size=size, max=max_value))


def check_pair_sizes(
    pairs: Sequence[tuple[bytes, bytes | None]], max_key: int, max_value: int
) -> None:
    """``check_batch_sizes`` for (key, value) pairs; a None value (a delete) is fine."""
    try:  # the common case, every key and value small: one C-level pass
        if max(map(len, chain.from_iterable(cast(_Pairs, pairs))), default=0) <= min(
            max_key, max_value
        ):
            return
    except TypeError:  # a None value (a delete): keys and values apart, below
        pass
    check_batch_sizes(
        map(itemgetter(0), pairs),
        (value for _, value in pairs if value is not None),
        max_key,
        max_value,
    )
