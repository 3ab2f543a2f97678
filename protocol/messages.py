"""The kv:distro:sys message types: KvRequest, KvAction, KvResponse.

Pure data, no I/O. Each variant set is a union of small frozen classes (on
``Variant``, ``variant.py``: equality, hashing and repr shared rather than
generated per class); the wire tag of each class is its ``TAG`` and its wire
shape its ``WIRE``
(serde's externally tagged form, see PROTOCOL.md and ``_wire.py``): the
one place that says how the class travels. Dispatch with ``match`` and close the match
with ``typing.assert_never``. The KvError variants live in ``errors.py`` and
are re-exported here, so this module names every type a message can hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal, TypeAlias, TypeVar

import attrs

from ._wire import UNIT, Field, WireShape, newtype, prefix_excludes_range, struct
from .errors import (
    AddCapFailed,
    AnswerTooLarge,
    BatchTooLarge,
    CasMismatch,
    IntegerOverflow,
    IoError,
    KeyNotFound,
    KeyReserved,
    KeyTooLarge,
    KvError,
    LevelDbError,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NotAnInteger,
    NoTx,
    NoWatch,
    NoWriteCap,
    RemoteNotAllowed,
    TooManyTransactions,
    TooManyWatches,
    TransactionConflict,
    TransactionTooLarge,
    TtlDisabled,
    TtlTooLarge,
    ValueTooLarge,
    WatchCompacted,
    WatchEnded,
)
from .ids import PackageId, ProcessId
from .variant import Variant, variant

__all__ = [
    "AddCapFailed",
    "AnswerTooLarge",
    "BatchTooLarge",
    "BeginTx",
    "BeginTxResponse",
    "Capabilities",
    "CapabilitiesResponse",
    "CasMismatch",
    "Commit",
    "CommitBatch",
    "CompareAndSwap",
    "Delete",
    "DeleteMany",
    "DeleteRange",
    "DeleteRangeResponse",
    "ErrResponse",
    "Exists",
    "ExistsResponse",
    "Expire",
    "Get",
    "GetMany",
    "GetManyResponse",
    "GetResponse",
    "Increment",
    "IncrementResponse",
    "IntegerOverflow",
    "IoError",
    "KeyNotFound",
    "KeyReserved",
    "KeyTooLarge",
    "KvAction",
    "KvCapabilityParams",
    "KvError",
    "KvRequest",
    "KvResponse",
    "LevelDbError",
    "MalformedRequest",
    "MismatchingPackageId",
    "NoDb",
    "NoReadCap",
    "NoTx",
    "NoWatch",
    "NoWriteCap",
    "NotAnInteger",
    "OkResponse",
    "Open",
    "Persist",
    "RemoteNotAllowed",
    "RemoveDb",
    "Revoke",
    "Rollback",
    "Scan",
    "ScanResponse",
    "Set",
    "SetExpiring",
    "SetMany",
    "SetManyExpiring",
    "SetTtlPolicy",
    "TooManyTransactions",
    "TooManyWatches",
    "TransactionConflict",
    "TransactionTooLarge",
    "Ttl",
    "TtlDisabled",
    "TtlResponse",
    "TtlTooLarge",
    "TxExists",
    "TxGet",
    "TxGetMany",
    "Unwatch",
    "ValueTooLarge",
    "Watch",
    "WatchChangesResponse",
    "WatchCompacted",
    "WatchEnded",
    "WatchNext",
    "WatchResponse",
    "WriteBatch",
]


C = TypeVar("C", bound=attrs.AttrsInstance)


def _trusted(**fixed: None) -> Callable[[type[C]], type[C]]:
    """Give an attrs class its trusted constructor ``_parsed(key)``: ``cls(key=key, **fixed)``.

    The hot readers (``hot.py``) call it with a key they have read as bytes;
    it fills the slots directly, without ``__init__`` (h11's ``_parsed``), at
    about a third of the cost. That is the object ``__init__`` would build
    only while ``__init__`` does nothing but set the fields, so this checks,
    when the class is made, that every field is ``key`` or in ``fixed`` and
    that no validator, converter, on-setattr hook or post-init would run.
    """

    def install(cls: type[C]) -> type[C]:
        fields = attrs.fields(cls)
        if {field.name for field in fields} != {"key", *fixed}:
            raise TypeError(f"{cls.__name__}._parsed must set every field, and only them")
        if hasattr(cls, "__attrs_post_init__") or any(
            field.validator or field.converter or field.on_setattr for field in fields
        ):
            raise TypeError(f"{cls.__name__}.__init__ does more than set its fields")
        new = object.__new__
        set_key = cls.__dict__["key"].__set__
        others = tuple((cls.__dict__[name].__set__, value) for name, value in fixed.items())

        def parsed(key: bytes) -> C:
            built: C = new(cls)
            set_key(built, key)
            for set_field, value in others:
                set_field(built, value)
            return built

        def parsed_key(key: bytes) -> C:  # a class with no other field: no loop to run
            built: C = new(cls)
            set_key(built, key)
            return built

        cls._parsed = staticmethod(parsed if others else parsed_key)  # type: ignore[attr-defined]
        return cls

    return install


# --- KvAction -----------------------------------------------------------


@variant
class Open(Variant):
    """Open (creating if missing) a db of the sender's own package; grants read+write."""

    TAG: ClassVar[str] = "Open"
    WIRE: ClassVar[WireShape] = UNIT


@variant
class RemoveDb(Variant):
    """Delete a db of the sender's own package, its files, capabilities and transactions."""

    TAG: ClassVar[str] = "RemoveDb"
    WIRE: ClassVar[WireShape] = UNIT


@_trusted(tx_id=None)
@variant
class Set(Variant):
    """Write ``key`` to the request's blob; staged in ``tx_id`` when given."""

    TAG: ClassVar[str] = "Set"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN, tx_id=Field.OPTIONAL_UINT)
    key: bytes
    tx_id: int | None = None
    #: ``Set(key=key)`` outside a transaction, without __init__ (see ``_trusted``).
    _parsed: ClassVar[Callable[[bytes], Set]]


@_trusted(tx_id=None)
@variant
class Delete(Variant):
    """Delete ``key`` (a missing key is fine); staged in ``tx_id`` when given."""

    TAG: ClassVar[str] = "Delete"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN, tx_id=Field.OPTIONAL_UINT)
    key: bytes
    tx_id: int | None = None
    #: ``Delete(key=key)`` outside a transaction, without __init__ (see ``_trusted``).
    _parsed: ClassVar[Callable[[bytes], Delete]]


@_trusted()
@variant
class Get(Variant):
    """Read ``key``; the value comes back as the response's blob."""

    TAG: ClassVar[str] = "Get"
    WIRE: ClassVar[WireShape] = newtype(key=Field.BIN)
    key: bytes
    #: ``Get(key=key)`` for a key read as bytes, without __init__ (see ``_trusted``).
    _parsed: ClassVar[Callable[[bytes], Get]]


@_trusted()
@variant
class Exists(Variant):
    """Ask whether ``key`` is present."""

    TAG: ClassVar[str] = "Exists"
    WIRE: ClassVar[WireShape] = newtype(key=Field.BIN)
    key: bytes
    #: ``Exists(key=key)`` for a key read as bytes, without __init__ (see ``_trusted``).
    _parsed: ClassVar[Callable[[bytes], Exists]]


@variant
class BeginTx(Variant):
    """Begin a transaction owned by the sender on this db."""

    TAG: ClassVar[str] = "BeginTx"
    WIRE: ClassVar[WireShape] = UNIT


@variant
class Commit(Variant):
    """Apply every write staged in ``tx_id`` atomically."""

    TAG: ClassVar[str] = "Commit"
    WIRE: ClassVar[WireShape] = struct(tx_id=Field.UINT)
    tx_id: int


# Actions beyond Hyperware's (PROTOCOL.md, "Beyond the core set"). Where a
# request carries many keys or values they travel in the blob, in the shapes
# of ``protocol.blobs``; the body holds only their ``count``.


@variant
class Scan(Variant):
    """One page of keys (with values unless ``keys_only``) in key order.

    The range is keys starting with ``prefix``, or ``start <= key < end``
    (either bound may be None); never both. ``limit`` is clamped by the
    server; ``cursor`` (the last key of the previous page) resumes strictly
    after it, or strictly before it when ``reverse``. With ``tx_id`` the
    transaction's staged writes are seen over the committed data.
    """

    TAG: ClassVar[str] = "Scan"
    WIRE: ClassVar[WireShape] = struct(
        prefix=Field.OPTIONAL_BIN,
        start=Field.OPTIONAL_BIN,
        end=Field.OPTIONAL_BIN,
        reverse=Field.BOOL,
        keys_only=Field.BOOL,
        limit=Field.OPTIONAL_UINT,
        cursor=Field.OPTIONAL_BIN,
        tx_id=Field.OPTIONAL_UINT,
        check=prefix_excludes_range,
    )
    prefix: bytes | None = None
    start: bytes | None = None
    end: bytes | None = None
    reverse: bool = False
    keys_only: bool = False
    limit: int | None = None
    cursor: bytes | None = None
    tx_id: int | None = None


@variant
class TxGet(Variant):
    """Read ``key`` inside transaction ``tx_id`` (its staged writes first)."""

    TAG: ClassVar[str] = "TxGet"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN, tx_id=Field.UINT)
    key: bytes
    tx_id: int


@variant
class TxExists(Variant):
    """Ask whether ``key`` is present, inside transaction ``tx_id``."""

    TAG: ClassVar[str] = "TxExists"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN, tx_id=Field.UINT)
    key: bytes
    tx_id: int


@variant
class GetMany(Variant):
    """Read ``count`` keys, given in the blob; the values come back in the blob."""

    TAG: ClassVar[str] = "GetMany"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT)
    count: int


@variant
class TxGetMany(Variant):
    """Read ``count`` keys (in the blob) inside transaction ``tx_id``, as ``TxGet`` each."""

    TAG: ClassVar[str] = "TxGetMany"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT, tx_id=Field.UINT)
    count: int
    tx_id: int


@variant
class SetMany(Variant):
    """Write ``count`` (key, value) pairs from the blob in one atomic batch; last wins."""

    TAG: ClassVar[str] = "SetMany"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT)
    count: int


@variant
class DeleteMany(Variant):
    """Delete ``count`` keys, given in the blob, in one atomic batch."""

    TAG: ClassVar[str] = "DeleteMany"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT)
    count: int


@variant
class Increment(Variant):
    """Add ``delta`` (signed 64-bit) to the ASCII-decimal counter at ``key``; missing is 0."""

    TAG: ClassVar[str] = "Increment"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN, delta=Field.INT64)
    key: bytes
    delta: int


@variant
class CompareAndSwap(Variant):
    """Replace ``key``'s value if it equals the expected one; both travel in the blob."""

    TAG: ClassVar[str] = "CompareAndSwap"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN)
    key: bytes


@variant
class Rollback(Variant):
    """Abandon transaction ``tx_id``: nothing it staged is applied."""

    TAG: ClassVar[str] = "Rollback"
    WIRE: ClassVar[WireShape] = struct(tx_id=Field.UINT)
    tx_id: int


@variant
class DeleteRange(Variant):
    """Delete every key under ``prefix``, or in ``start <= key < end``, atomically."""

    TAG: ClassVar[str] = "DeleteRange"
    WIRE: ClassVar[WireShape] = struct(
        prefix=Field.OPTIONAL_BIN,
        start=Field.OPTIONAL_BIN,
        end=Field.OPTIONAL_BIN,
        check=prefix_excludes_range,
    )
    prefix: bytes | None = None
    start: bytes | None = None
    end: bytes | None = None


@variant
class Revoke(Variant):
    """Take every capability on this db from ``process`` (owning package only)."""

    TAG: ClassVar[str] = "Revoke"
    WIRE: ClassVar[WireShape] = struct(process=Field.PROCESS_ID)
    process: ProcessId


@variant
class Capabilities(Variant):
    """Ask which capabilities the sender holds on this db."""

    TAG: ClassVar[str] = "Capabilities"
    WIRE: ClassVar[WireShape] = UNIT


@variant
class WriteBatch(Variant):
    """Apply ``count`` writes from the blob (``[[key, value | nil], ...]``; nil deletes).

    With ``tx_id`` None they apply atomically in one batch, as SetMany; with a
    ``tx_id`` every one is staged in that transaction. Later entries win.
    """

    TAG: ClassVar[str] = "WriteBatch"
    WIRE: ClassVar[WireShape] = struct(tx_id=Field.OPTIONAL_UINT, count=Field.UINT)
    tx_id: int | None
    count: int


@variant
class CommitBatch(Variant):
    """Stage ``count`` writes from the blob (as WriteBatch) in ``tx_id``, then commit it."""

    TAG: ClassVar[str] = "CommitBatch"
    WIRE: ClassVar[WireShape] = struct(tx_id=Field.UINT, count=Field.UINT)
    tx_id: int
    count: int


# Keys with a TTL (PROTOCOL.md, "Keys with a TTL"): a TTL travels in whole
# milliseconds, at least 1; a Set without one keeps Hyperware's exact shape.


@variant
class SetExpiring(Variant):
    """Set, with the key expiring ``ttl_ms`` milliseconds from now."""

    TAG: ClassVar[str] = "SetExpiring"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN, tx_id=Field.OPTIONAL_UINT, ttl_ms=Field.UINT)
    key: bytes
    tx_id: int | None
    ttl_ms: int


@variant
class SetManyExpiring(Variant):
    """SetMany, with every key expiring ``ttl_ms`` milliseconds from now."""

    TAG: ClassVar[str] = "SetManyExpiring"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT, ttl_ms=Field.UINT)
    count: int
    ttl_ms: int


@variant
class Expire(Variant):
    """Make the present ``key`` expire ``ttl_ms`` milliseconds from now."""

    TAG: ClassVar[str] = "Expire"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN, ttl_ms=Field.UINT)
    key: bytes
    ttl_ms: int


@variant
class Persist(Variant):
    """Take the expiry off the present ``key``."""

    TAG: ClassVar[str] = "Persist"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN)
    key: bytes


@variant
class Ttl(Variant):
    """Ask how long the present ``key`` has left."""

    TAG: ClassVar[str] = "Ttl"
    WIRE: ClassVar[WireShape] = struct(key=Field.BIN)
    key: bytes


@variant
class SetTtlPolicy(Variant):
    """The db's TTL settings: whether keys may have a TTL, and the longest allowed."""

    TAG: ClassVar[str] = "SetTtlPolicy"
    WIRE: ClassVar[WireShape] = struct(enabled=Field.BOOL, max_ttl_ms=Field.OPTIONAL_UINT)
    enabled: bool
    max_ttl_ms: int | None


# Change feeds (PROTOCOL.md, "Change feeds"; issue 14).


@variant
class Watch(Variant):
    """Begin a watch of the db's changes to keys under ``prefix`` or in
    ``start <= key < end`` (all keys if none), strictly after ``since`` (None:
    from now). With ``snapshot`` (only with ``since`` None) the answer's blob
    holds every matching entry as of the answer's position, as SetMany's blob."""

    TAG: ClassVar[str] = "Watch"
    WIRE: ClassVar[WireShape] = struct(
        prefix=Field.OPTIONAL_BIN,
        start=Field.OPTIONAL_BIN,
        end=Field.OPTIONAL_BIN,
        since=Field.OPTIONAL_UINT,
        snapshot=Field.BOOL,
        check=prefix_excludes_range,
    )
    prefix: bytes | None = None
    start: bytes | None = None
    end: bytes | None = None
    since: int | None = None
    snapshot: bool = False


@variant
class WatchNext(Variant):
    """Ask watch ``watch_id`` for its changes strictly after ``after`` (the
    acknowledgement of every change up to it); answered once there is one."""

    TAG: ClassVar[str] = "WatchNext"
    WIRE: ClassVar[WireShape] = struct(watch_id=Field.UINT, after=Field.UINT)
    watch_id: int
    after: int


@variant
class Unwatch(Variant):
    """End watch ``watch_id``."""

    TAG: ClassVar[str] = "Unwatch"
    WIRE: ClassVar[WireShape] = newtype(watch_id=Field.UINT)
    watch_id: int


KvAction: TypeAlias = (
    Open
    | RemoveDb
    | Set
    | Delete
    | Get
    | Exists
    | BeginTx
    | Commit
    | Scan
    | TxGet
    | TxExists
    | GetMany
    | TxGetMany
    | SetMany
    | DeleteMany
    | Increment
    | CompareAndSwap
    | Rollback
    | DeleteRange
    | Revoke
    | Capabilities
    | WriteBatch
    | CommitBatch
    | SetExpiring
    | SetManyExpiring
    | Expire
    | Persist
    | Ttl
    | SetTtlPolicy
    | Watch
    | WatchNext
    | Unwatch
)


@variant
class KvRequest(Variant):
    """One request to kv:distro:sys: an action on ``db`` of ``package_id``."""

    package_id: PackageId
    db: str
    action: KvAction


# --- KvResponse -------------------------------------------------------------


@variant
class OkResponse(Variant):
    """The action succeeded (wire form ``"Ok"``)."""

    TAG: ClassVar[str] = "Ok"
    WIRE: ClassVar[WireShape] = UNIT


@variant
class BeginTxResponse(Variant):
    """A transaction began; ``tx_id`` names it."""

    TAG: ClassVar[str] = "BeginTx"
    WIRE: ClassVar[WireShape] = struct(tx_id=Field.UINT)
    tx_id: int


@_trusted()
@variant
class GetResponse(Variant):
    """The value of ``key`` is the response's blob."""

    TAG: ClassVar[str] = "Get"
    WIRE: ClassVar[WireShape] = newtype(key=Field.BIN)
    key: bytes
    #: ``GetResponse(key=key)`` for a key read as bytes, without __init__ (see ``_trusted``).
    _parsed: ClassVar[Callable[[bytes], GetResponse]]


@variant
class ExistsResponse(Variant):
    """Whether the key is present."""

    TAG: ClassVar[str] = "Exists"
    WIRE: ClassVar[WireShape] = newtype(exists=Field.BOOL)
    exists: bool


@variant
class ErrResponse(Variant):
    """The action failed with ``error``."""

    TAG: ClassVar[str] = "Err"
    WIRE: ClassVar[WireShape] = newtype(error=Field.ERROR)
    error: KvError


@variant
class ScanResponse(Variant):
    """A page of ``count`` entries (in the blob); ``cursor`` resumes it, None when done."""

    TAG: ClassVar[str] = "Scan"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT, cursor=Field.OPTIONAL_BIN)
    count: int
    cursor: bytes | None


@variant
class GetManyResponse(Variant):
    """``count`` values (nil for a missing key) in the blob, aligned with the keys asked."""

    TAG: ClassVar[str] = "GetMany"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT)
    count: int


@variant
class IncrementResponse(Variant):
    """The counter's value after the increment."""

    TAG: ClassVar[str] = "Increment"
    WIRE: ClassVar[WireShape] = newtype(value=Field.INT64)
    value: int


@variant
class DeleteRangeResponse(Variant):
    """How many keys the range delete removed."""

    TAG: ClassVar[str] = "DeleteRange"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT)
    count: int


@variant
class CapabilitiesResponse(Variant):
    """Which capabilities the sender holds on the db."""

    TAG: ClassVar[str] = "Capabilities"
    WIRE: ClassVar[WireShape] = struct(read=Field.BOOL, write=Field.BOOL)
    read: bool
    write: bool


@variant
class TtlResponse(Variant):
    """How long the key has left, in milliseconds; None: it never expires."""

    TAG: ClassVar[str] = "Ttl"
    WIRE: ClassVar[WireShape] = struct(ttl_ms=Field.OPTIONAL_UINT)
    ttl_ms: int | None


@variant
class WatchResponse(Variant):
    """A watch began: ``watch_id`` names it; it delivers the changes after
    ``position``; ``count`` entries of a snapshot as of ``position`` are in the blob."""

    TAG: ClassVar[str] = "Watch"
    WIRE: ClassVar[WireShape] = struct(watch_id=Field.UINT, position=Field.UINT, count=Field.UINT)
    watch_id: int
    position: int
    count: int


@variant
class WatchChangesResponse(Variant):
    """``count`` changes (in the blob) of the watch, in order; the watcher has
    seen every change of the db up to ``last`` (filtered ones included)."""

    TAG: ClassVar[str] = "WatchChanges"
    WIRE: ClassVar[WireShape] = struct(count=Field.UINT, last=Field.UINT)
    count: int
    last: int


KvResponse: TypeAlias = (
    OkResponse
    | BeginTxResponse
    | GetResponse
    | ExistsResponse
    | ErrResponse
    | ScanResponse
    | GetManyResponse
    | IncrementResponse
    | DeleteRangeResponse
    | CapabilitiesResponse
    | TtlResponse
    | WatchResponse
    | WatchChangesResponse
)


# --- Capabilities -------------------------------------------------------------


@variant
class KvCapabilityParams(Variant):
    """What a kv capability grants: ``kind`` access to ``db`` of ``package_id``."""

    kind: Literal["read", "write"]
    package_id: PackageId
    db: str
