"""The errors kv:distro:sys answers with: each KvError variant and the KvError union.

Errors that cross the bus are data (STYLE.md rule 3): the kv process answers
``ErrResponse(error=KeyNotFound())`` and the client turns it into one typed
exception. Each class carries its wire tag as ``TAG`` and its wire shape as ``WIRE``
(PROTOCOL.md, "KvError"; ``_wire.py``)
and a ``__str__`` for people. ``messages.py`` re-exports every name here, so
``from protocol.messages import KeyNotFound`` keeps working.
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias

from ._wire import UNIT, Field, WireShape, array, newtype, struct
from .ids import PackageId
from .variant import Variant, variant

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
    "ValueTooLarge",
    "WatchCompacted",
    "WatchEnded",
]


@variant
class NoDb(Variant):
    """The db does not exist."""

    TAG: ClassVar[str] = "NoDb"
    WIRE: ClassVar[WireShape] = array(package_id=Field.PACKAGE_ID, db=Field.DB)
    package_id: PackageId
    db: str

    def __str__(self) -> str:
        return f"db [{self.package_id}, {self.db}] does not exist"


@variant
class KeyNotFound(Variant):
    """The key is not in the db."""

    TAG: ClassVar[str] = "KeyNotFound"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "key not found"


@variant
class NoTx(Variant):
    """No transaction with this id belongs to the sender on this db."""

    TAG: ClassVar[str] = "NoTx"
    WIRE: ClassVar[WireShape] = newtype(tx_id=Field.UINT)
    tx_id: int

    def __str__(self) -> str:
        return f"no transaction {self.tx_id} found"


@variant
class NoWriteCap(Variant):
    """The sender holds no write capability on the db."""

    TAG: ClassVar[str] = "NoWriteCap"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "no write capability for requested DB"


@variant
class NoReadCap(Variant):
    """The sender holds no read capability on the db."""

    TAG: ClassVar[str] = "NoReadCap"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "no read capability for requested DB"


@variant
class MismatchingPackageId(Variant):
    """Open or RemoveDb named a package other than the sender's."""

    TAG: ClassVar[str] = "MismatchingPackageId"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "request to open or remove DB with mismatching package ID"


@variant
class AddCapFailed(Variant):
    """The capability store could not record a new capability."""

    TAG: ClassVar[str] = "AddCapFailed"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "failed to generate capability for new DB"


@variant
class MalformedRequest(Variant):
    """The body did not decode, a name was invalid, or a required blob was missing."""

    TAG: ClassVar[str] = "MalformedRequest"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return (
            "kv got a malformed request that either failed to deserialize "
            "or was missing a required blob"
        )


@variant
class LevelDbError(Variant):
    """LevelDB reported an error."""

    TAG: ClassVar[str] = "LevelDbError"
    WIRE: ClassVar[WireShape] = newtype(message=Field.TEXT)
    message: str

    def __str__(self) -> str:
        return f"LevelDB internal error: {self.message}"


@variant
class IoError(Variant):
    """The file system reported an error (wire tag ``IOError``)."""

    TAG: ClassVar[str] = "IOError"
    WIRE: ClassVar[WireShape] = newtype(message=Field.TEXT)
    message: str

    def __str__(self) -> str:
        return f"IO error: {self.message}"


@variant
class KeyTooLarge(Variant):
    """The key exceeds the configured limit."""

    TAG: ClassVar[str] = "KeyTooLarge"
    WIRE: ClassVar[WireShape] = struct(size=Field.UINT, max=Field.UINT)
    size: int
    max: int

    def __str__(self) -> str:
        return f"key of {self.size} bytes exceeds the limit of {self.max}"


@variant
class ValueTooLarge(Variant):
    """The value exceeds the configured limit."""

    TAG: ClassVar[str] = "ValueTooLarge"
    WIRE: ClassVar[WireShape] = struct(size=Field.UINT, max=Field.UINT)
    size: int
    max: int

    def __str__(self) -> str:
        return f"value of {self.size} bytes exceeds the limit of {self.max}"


@variant
class TooManyTransactions(Variant):
    """The sender already has the maximum number of open transactions."""

    TAG: ClassVar[str] = "TooManyTransactions"
    WIRE: ClassVar[WireShape] = struct(max=Field.UINT)
    max: int

    def __str__(self) -> str:
        return f"too many open transactions (limit {self.max})"


@variant
class RemoteNotAllowed(Variant):
    """The sender is on another node."""

    TAG: ClassVar[str] = "RemoteNotAllowed"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "kv only serves requests from its own node"


@variant
class TransactionTooLarge(Variant):
    """Staging this write would take the transaction past its byte limit."""

    TAG: ClassVar[str] = "TransactionTooLarge"
    WIRE: ClassVar[WireShape] = struct(size=Field.UINT, max=Field.UINT)
    size: int
    max: int

    def __str__(self) -> str:
        return f"transaction of {self.size} bytes exceeds the limit of {self.max}"


@variant
class CasMismatch(Variant):
    """CompareAndSwap found another value; the current one (if ``present``) is the blob."""

    TAG: ClassVar[str] = "CasMismatch"
    WIRE: ClassVar[WireShape] = struct(present=Field.BOOL)
    present: bool

    def __str__(self) -> str:
        state = "another value" if self.present else "no value"
        return f"compare-and-swap failed: the key holds {state}"


@variant
class TransactionConflict(Variant):
    """A key the transaction read was changed by another writer; nothing was applied."""

    TAG: ClassVar[str] = "TransactionConflict"
    WIRE: ClassVar[WireShape] = newtype(tx_id=Field.UINT)
    tx_id: int

    def __str__(self) -> str:
        return f"transaction {self.tx_id} conflicts with a concurrent write and was not applied"


@variant
class NotAnInteger(Variant):
    """Increment found a value that is not an ASCII-decimal signed 64-bit integer."""

    TAG: ClassVar[str] = "NotAnInteger"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "value is not an integer or out of range"


@variant
class IntegerOverflow(Variant):
    """Increment would take the counter outside the signed 64-bit range."""

    TAG: ClassVar[str] = "IntegerOverflow"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "increment or decrement would overflow"


@variant
class BatchTooLarge(Variant):
    """A batch names more keys than the server accepts in one request."""

    TAG: ClassVar[str] = "BatchTooLarge"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT, max=Field.UINT)
    count: int
    max: int

    def __str__(self) -> str:
        return f"batch of {self.count} items exceeds the limit of {self.max}"


@variant
class AnswerTooLarge(Variant):
    """An answer would hold more bytes of values than the server sends in one."""

    TAG: ClassVar[str] = "AnswerTooLarge"
    WIRE: ClassVar[WireShape] = struct(size=Field.UINT, max=Field.UINT)
    size: int
    max: int

    def __str__(self) -> str:
        return f"answer of at least {self.size} bytes exceeds the limit of {self.max}"


@variant
class KeyReserved(Variant):
    """The key starts with eight 0xff bytes: that region of the key space is kv's own."""

    TAG: ClassVar[str] = "KeyReserved"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "keys starting with eight 0xff bytes are reserved for kv"


@variant
class TtlDisabled(Variant):
    """The db's settings forbid keys with a TTL (``SetTtlPolicy``)."""

    TAG: ClassVar[str] = "TtlDisabled"
    WIRE: ClassVar[WireShape] = UNIT

    def __str__(self) -> str:
        return "keys with a TTL are disabled on this db"


@variant
class TtlTooLarge(Variant):
    """A TTL longer than the db's maximum (``SetTtlPolicy``); milliseconds."""

    TAG: ClassVar[str] = "TtlTooLarge"
    WIRE: ClassVar[WireShape] = struct(ttl_ms=Field.UINT, max_ms=Field.UINT)
    ttl_ms: int
    max_ms: int

    def __str__(self) -> str:
        return f"a TTL of {self.ttl_ms} ms exceeds this db's maximum of {self.max_ms} ms"


# Change feeds (PROTOCOL.md, "Change feeds"; issue 14).


@variant
class WatchCompacted(Variant):
    """The retained change log no longer holds what follows the asked position
    (or the position is past the db's last change): ``oldest`` is the oldest
    change still held, ``last`` the db's last."""

    TAG: ClassVar[str] = "WatchCompacted"
    WIRE: ClassVar[WireShape] = struct(oldest=Field.UINT, last=Field.UINT)
    oldest: int
    last: int

    def __str__(self) -> str:
        return f"the change log no longer holds that position: it holds {self.oldest}..{self.last}"


@variant
class WatchEnded(Variant):
    """kv ended the watch: its db was removed, or the watcher lost read access."""

    TAG: ClassVar[str] = "WatchEnded"
    WIRE: ClassVar[WireShape] = newtype(reason=Field.TEXT)
    reason: str

    def __str__(self) -> str:
        return f"the watch ended: {self.reason}"


@variant
class TooManyWatches(Variant):
    """A watch past the per-process or per-node bound."""

    TAG: ClassVar[str] = "TooManyWatches"
    WIRE: ClassVar[WireShape] = struct(max=Field.UINT)
    max: int

    def __str__(self) -> str:
        return f"too many watches: at most {self.max}"


@variant
class NoWatch(Variant):
    """No watch with this id belongs to the sender on this db."""

    TAG: ClassVar[str] = "NoWatch"
    WIRE: ClassVar[WireShape] = newtype(watch_id=Field.UINT)
    watch_id: int

    def __str__(self) -> str:
        return f"no watch {self.watch_id} found"


KvError: TypeAlias = (
    NoDb
    | KeyNotFound
    | NoTx
    | NoWriteCap
    | NoReadCap
    | MismatchingPackageId
    | AddCapFailed
    | MalformedRequest
    | LevelDbError
    | IoError
    | KeyTooLarge
    | ValueTooLarge
    | TooManyTransactions
    | RemoteNotAllowed
    | TransactionTooLarge
    | CasMismatch
    | TransactionConflict
    | NotAnInteger
    | IntegerOverflow
    | BatchTooLarge
    | AnswerTooLarge
    | KeyReserved
    | TtlDisabled
    | TtlTooLarge
    | WatchCompacted
    | WatchEnded
    | TooManyWatches
    | NoWatch
)
