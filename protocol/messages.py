"""The kv:distro:sys message types: KvRequest, KvAction, KvResponse, KvError.

Pure data, no I/O. Each variant set is a union of small frozen classes; the
wire tag of each class is its ``TAG`` (serde's externally tagged form, see
PROTOCOL.md and ``codec.py``). Dispatch with ``match`` and close the match
with ``typing.assert_never``.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias

import attrs

from .ids import PackageId, ProcessId

__all__ = [
    "AddCapFailed",
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
    "Get",
    "GetMany",
    "GetManyResponse",
    "GetResponse",
    "Increment",
    "IncrementResponse",
    "IntegerOverflow",
    "IoError",
    "KeyNotFound",
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
    "NoWriteCap",
    "NotAnInteger",
    "OkResponse",
    "Open",
    "RemoteNotAllowed",
    "RemoveDb",
    "Revoke",
    "Rollback",
    "Scan",
    "ScanResponse",
    "Set",
    "SetMany",
    "TooManyTransactions",
    "TransactionConflict",
    "TransactionTooLarge",
    "TxExists",
    "TxGet",
    "TxGetMany",
    "ValueTooLarge",
    "WriteBatch",
]


# --- KvAction -----------------------------------------------------------


@attrs.frozen(kw_only=True)
class Open:
    """Open (creating if missing) a db of the sender's own package; grants read+write."""

    TAG: ClassVar[str] = "Open"


@attrs.frozen(kw_only=True)
class RemoveDb:
    """Delete a db of the sender's own package, its files, capabilities and transactions."""

    TAG: ClassVar[str] = "RemoveDb"


@attrs.frozen(kw_only=True)
class Set:
    """Write ``key`` to the request's blob; staged in ``tx_id`` when given."""

    TAG: ClassVar[str] = "Set"
    key: bytes
    tx_id: int | None = None


@attrs.frozen(kw_only=True)
class Delete:
    """Delete ``key`` (a missing key is fine); staged in ``tx_id`` when given."""

    TAG: ClassVar[str] = "Delete"
    key: bytes
    tx_id: int | None = None


@attrs.frozen(kw_only=True)
class Get:
    """Read ``key``; the value comes back as the response's blob."""

    TAG: ClassVar[str] = "Get"
    key: bytes


@attrs.frozen(kw_only=True)
class Exists:
    """Ask whether ``key`` is present."""

    TAG: ClassVar[str] = "Exists"
    key: bytes


@attrs.frozen(kw_only=True)
class BeginTx:
    """Begin a transaction owned by the sender on this db."""

    TAG: ClassVar[str] = "BeginTx"


@attrs.frozen(kw_only=True)
class Commit:
    """Apply every write staged in ``tx_id`` atomically."""

    TAG: ClassVar[str] = "Commit"
    tx_id: int


# Actions beyond Hyperware's (PROTOCOL.md, "Beyond the core set"). Where a
# request carries many keys or values they travel in the blob, in the shapes
# of ``protocol.blobs``; the body holds only their ``count``.


@attrs.frozen(kw_only=True)
class Scan:
    """One page of keys (with values unless ``keys_only``) in key order.

    The range is keys starting with ``prefix``, or ``start <= key < end``
    (either bound may be None); never both. ``limit`` is clamped by the
    server; ``cursor`` (the last key of the previous page) resumes strictly
    after it, or strictly before it when ``reverse``. With ``tx_id`` the
    transaction's staged writes are seen over the committed data.
    """

    TAG: ClassVar[str] = "Scan"
    prefix: bytes | None = None
    start: bytes | None = None
    end: bytes | None = None
    reverse: bool = False
    keys_only: bool = False
    limit: int | None = None
    cursor: bytes | None = None
    tx_id: int | None = None


@attrs.frozen(kw_only=True)
class TxGet:
    """Read ``key`` inside transaction ``tx_id`` (its staged writes first)."""

    TAG: ClassVar[str] = "TxGet"
    key: bytes
    tx_id: int


@attrs.frozen(kw_only=True)
class TxExists:
    """Ask whether ``key`` is present, inside transaction ``tx_id``."""

    TAG: ClassVar[str] = "TxExists"
    key: bytes
    tx_id: int


@attrs.frozen(kw_only=True)
class GetMany:
    """Read ``count`` keys, given in the blob; the values come back in the blob."""

    TAG: ClassVar[str] = "GetMany"
    count: int


@attrs.frozen(kw_only=True)
class TxGetMany:
    """Read ``count`` keys (in the blob) inside transaction ``tx_id``, as ``TxGet`` each."""

    TAG: ClassVar[str] = "TxGetMany"
    count: int
    tx_id: int


@attrs.frozen(kw_only=True)
class SetMany:
    """Write ``count`` (key, value) pairs from the blob in one atomic batch; last wins."""

    TAG: ClassVar[str] = "SetMany"
    count: int


@attrs.frozen(kw_only=True)
class DeleteMany:
    """Delete ``count`` keys, given in the blob, in one atomic batch."""

    TAG: ClassVar[str] = "DeleteMany"
    count: int


@attrs.frozen(kw_only=True)
class Increment:
    """Add ``delta`` (signed 64-bit) to the ASCII-decimal counter at ``key``; missing is 0."""

    TAG: ClassVar[str] = "Increment"
    key: bytes
    delta: int


@attrs.frozen(kw_only=True)
class CompareAndSwap:
    """Replace ``key``'s value if it equals the expected one; both travel in the blob."""

    TAG: ClassVar[str] = "CompareAndSwap"
    key: bytes


@attrs.frozen(kw_only=True)
class Rollback:
    """Abandon transaction ``tx_id``: nothing it staged is applied."""

    TAG: ClassVar[str] = "Rollback"
    tx_id: int


@attrs.frozen(kw_only=True)
class DeleteRange:
    """Delete every key under ``prefix``, or in ``start <= key < end``, atomically."""

    TAG: ClassVar[str] = "DeleteRange"
    prefix: bytes | None = None
    start: bytes | None = None
    end: bytes | None = None


@attrs.frozen(kw_only=True)
class Revoke:
    """Take every capability on this db from ``process`` (owning package only)."""

    TAG: ClassVar[str] = "Revoke"
    process: ProcessId


@attrs.frozen(kw_only=True)
class Capabilities:
    """Ask which capabilities the sender holds on this db."""

    TAG: ClassVar[str] = "Capabilities"


@attrs.frozen(kw_only=True)
class WriteBatch:
    """Apply ``count`` writes from the blob (``[[key, value | nil], ...]``; nil deletes).

    With ``tx_id`` None they apply atomically in one batch, as SetMany; with a
    ``tx_id`` every one is staged in that transaction. Later entries win.
    """

    TAG: ClassVar[str] = "WriteBatch"
    tx_id: int | None
    count: int


@attrs.frozen(kw_only=True)
class CommitBatch:
    """Stage ``count`` writes from the blob (as WriteBatch) in ``tx_id``, then commit it."""

    TAG: ClassVar[str] = "CommitBatch"
    tx_id: int
    count: int


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
)


@attrs.frozen(kw_only=True)
class KvRequest:
    """One request to kv:distro:sys: an action on ``db`` of ``package_id``."""

    package_id: PackageId
    db: str
    action: KvAction


# --- KvError --------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NoDb:
    """The db does not exist."""

    TAG: ClassVar[str] = "NoDb"
    package_id: PackageId
    db: str

    def __str__(self) -> str:
        return f"db [{self.package_id}, {self.db}] does not exist"


@attrs.frozen(kw_only=True)
class KeyNotFound:
    """The key is not in the db."""

    TAG: ClassVar[str] = "KeyNotFound"

    def __str__(self) -> str:
        return "key not found"


@attrs.frozen(kw_only=True)
class NoTx:
    """No transaction with this id belongs to the sender on this db."""

    TAG: ClassVar[str] = "NoTx"
    tx_id: int

    def __str__(self) -> str:
        return f"no transaction {self.tx_id} found"


@attrs.frozen(kw_only=True)
class NoWriteCap:
    """The sender holds no write capability on the db."""

    TAG: ClassVar[str] = "NoWriteCap"

    def __str__(self) -> str:
        return "no write capability for requested DB"


@attrs.frozen(kw_only=True)
class NoReadCap:
    """The sender holds no read capability on the db."""

    TAG: ClassVar[str] = "NoReadCap"

    def __str__(self) -> str:
        return "no read capability for requested DB"


@attrs.frozen(kw_only=True)
class MismatchingPackageId:
    """Open or RemoveDb named a package other than the sender's."""

    TAG: ClassVar[str] = "MismatchingPackageId"

    def __str__(self) -> str:
        return "request to open or remove DB with mismatching package ID"


@attrs.frozen(kw_only=True)
class AddCapFailed:
    """The capability store could not record a new capability."""

    TAG: ClassVar[str] = "AddCapFailed"

    def __str__(self) -> str:
        return "failed to generate capability for new DB"


@attrs.frozen(kw_only=True)
class MalformedRequest:
    """The body did not decode, a name was invalid, or a required blob was missing."""

    TAG: ClassVar[str] = "MalformedRequest"

    def __str__(self) -> str:
        return (
            "kv got a malformed request that either failed to deserialize "
            "or was missing a required blob"
        )


@attrs.frozen(kw_only=True)
class LevelDbError:
    """LevelDB reported an error."""

    TAG: ClassVar[str] = "LevelDbError"
    message: str

    def __str__(self) -> str:
        return f"LevelDB internal error: {self.message}"


@attrs.frozen(kw_only=True)
class IoError:
    """The file system reported an error (wire tag ``IOError``)."""

    TAG: ClassVar[str] = "IOError"
    message: str

    def __str__(self) -> str:
        return f"IO error: {self.message}"


@attrs.frozen(kw_only=True)
class KeyTooLarge:
    """The key exceeds the configured limit."""

    TAG: ClassVar[str] = "KeyTooLarge"
    size: int
    max: int

    def __str__(self) -> str:
        return f"key of {self.size} bytes exceeds the limit of {self.max}"


@attrs.frozen(kw_only=True)
class ValueTooLarge:
    """The value exceeds the configured limit."""

    TAG: ClassVar[str] = "ValueTooLarge"
    size: int
    max: int

    def __str__(self) -> str:
        return f"value of {self.size} bytes exceeds the limit of {self.max}"


@attrs.frozen(kw_only=True)
class TooManyTransactions:
    """The sender already has the maximum number of open transactions."""

    TAG: ClassVar[str] = "TooManyTransactions"
    max: int

    def __str__(self) -> str:
        return f"too many open transactions (limit {self.max})"


@attrs.frozen(kw_only=True)
class RemoteNotAllowed:
    """The sender is on another node."""

    TAG: ClassVar[str] = "RemoteNotAllowed"

    def __str__(self) -> str:
        return "kv only serves requests from its own node"


@attrs.frozen(kw_only=True)
class TransactionTooLarge:
    """Staging this write would take the transaction past its byte limit."""

    TAG: ClassVar[str] = "TransactionTooLarge"
    size: int
    max: int

    def __str__(self) -> str:
        return f"transaction of {self.size} bytes exceeds the limit of {self.max}"


@attrs.frozen(kw_only=True)
class CasMismatch:
    """CompareAndSwap found another value; the current one (if ``present``) is the blob."""

    TAG: ClassVar[str] = "CasMismatch"
    present: bool

    def __str__(self) -> str:
        state = "another value" if self.present else "no value"
        return f"compare-and-swap failed: the key holds {state}"


@attrs.frozen(kw_only=True)
class TransactionConflict:
    """A key the transaction read was changed by another writer; nothing was applied."""

    TAG: ClassVar[str] = "TransactionConflict"
    tx_id: int

    def __str__(self) -> str:
        return f"transaction {self.tx_id} conflicts with a concurrent write and was not applied"


@attrs.frozen(kw_only=True)
class NotAnInteger:
    """Increment found a value that is not an ASCII-decimal signed 64-bit integer."""

    TAG: ClassVar[str] = "NotAnInteger"

    def __str__(self) -> str:
        return "value is not an integer or out of range"


@attrs.frozen(kw_only=True)
class IntegerOverflow:
    """Increment would take the counter outside the signed 64-bit range."""

    TAG: ClassVar[str] = "IntegerOverflow"

    def __str__(self) -> str:
        return "increment or decrement would overflow"


@attrs.frozen(kw_only=True)
class BatchTooLarge:
    """A batch names more keys than the server accepts in one request."""

    TAG: ClassVar[str] = "BatchTooLarge"
    count: int
    max: int

    def __str__(self) -> str:
        return f"batch of {self.count} items exceeds the limit of {self.max}"


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
)


# --- KvResponse -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OkResponse:
    """The action succeeded (wire form ``"Ok"``)."""

    TAG: ClassVar[str] = "Ok"


@attrs.frozen(kw_only=True)
class BeginTxResponse:
    """A transaction began; ``tx_id`` names it."""

    TAG: ClassVar[str] = "BeginTx"
    tx_id: int


@attrs.frozen(kw_only=True)
class GetResponse:
    """The value of ``key`` is the response's blob."""

    TAG: ClassVar[str] = "Get"
    key: bytes


@attrs.frozen(kw_only=True)
class ExistsResponse:
    """Whether the key is present."""

    TAG: ClassVar[str] = "Exists"
    exists: bool


@attrs.frozen(kw_only=True)
class ErrResponse:
    """The action failed with ``error``."""

    TAG: ClassVar[str] = "Err"
    error: KvError


@attrs.frozen(kw_only=True)
class ScanResponse:
    """A page of ``count`` entries (in the blob); ``cursor`` resumes it, None when done."""

    TAG: ClassVar[str] = "Scan"
    count: int
    cursor: bytes | None


@attrs.frozen(kw_only=True)
class GetManyResponse:
    """``count`` values (nil for a missing key) in the blob, aligned with the keys asked."""

    TAG: ClassVar[str] = "GetMany"
    count: int


@attrs.frozen(kw_only=True)
class IncrementResponse:
    """The counter's value after the increment."""

    TAG: ClassVar[str] = "Increment"
    value: int


@attrs.frozen(kw_only=True)
class DeleteRangeResponse:
    """How many keys the range delete removed."""

    TAG: ClassVar[str] = "DeleteRange"
    count: int


@attrs.frozen(kw_only=True)
class CapabilitiesResponse:
    """Which capabilities the sender holds on the db."""

    TAG: ClassVar[str] = "Capabilities"
    read: bool
    write: bool


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
)


# --- Capabilities -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class KvCapabilityParams:
    """What a kv capability grants: ``kind`` access to ``db`` of ``package_id``."""

    kind: Literal["read", "write"]
    package_id: PackageId
    db: str
