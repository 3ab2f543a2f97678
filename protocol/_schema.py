"""The decoding schema: one parser per variant, and the tag tables that dispatch to them.

Each parser takes the payload of a tagged variant (already unpacked) and
builds the attrs value, checking every field with the shape checkers of
``_shapes.py`` (codec.py's Rule 2). ``_UNIT_*`` map the tag of a variant
without payload to its one value; ``_PAYLOAD_*`` map a tag to its parser;
``_tagged`` picks between them. ``_capability_params_from_text`` parses a
capability's JSON params. Parsers raise DecodeError or let foreign errors
escape: ``codec.py``'s boundary turns those into DecodeError (Rule 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from ._shapes import (
    DecodeError,
    _bin,
    _bool,
    _db_name,
    _int64,
    _kind,
    _optional_bin,
    _optional_uint,
    _package_id,
    _str,
    _struct,
    _tagged,
    _uint,
)
from .errors import (
    AddCapFailed,
    AnswerTooLarge,
    BatchTooLarge,
    CasMismatch,
    IntegerOverflow,
    IoError,
    KeyNotFound,
    KeyTooLarge,
    KvError,
    LevelDbError,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NotAnInteger,
    NoTx,
    NoWriteCap,
    RemoteNotAllowed,
    TooManyTransactions,
    TransactionConflict,
    TransactionTooLarge,
    ValueTooLarge,
)
from .ids import ProcessId
from .messages import (
    BeginTx,
    BeginTxResponse,
    Capabilities,
    CapabilitiesResponse,
    Commit,
    CommitBatch,
    CompareAndSwap,
    Delete,
    DeleteMany,
    DeleteRange,
    DeleteRangeResponse,
    ErrResponse,
    Exists,
    ExistsResponse,
    Get,
    GetMany,
    GetManyResponse,
    GetResponse,
    Increment,
    IncrementResponse,
    KvAction,
    KvResponse,
    OkResponse,
    Open,
    RemoveDb,
    Revoke,
    Rollback,
    Scan,
    ScanResponse,
    Set,
    SetMany,
    TxExists,
    TxGet,
    TxGetMany,
    WriteBatch,
)

# --- Schema tables ---------------------------------------------------------------

_REQUEST_FIELDS: Final = frozenset(("package_id", "db", "action"))
_KEY_TX_FIELDS: Final = frozenset(("key", "tx_id"))
_TX_FIELDS: Final = frozenset(("tx_id",))
_SIZE_FIELDS: Final = frozenset(("size", "max"))
_MAX_FIELDS: Final = frozenset(("max",))
_PRESENT_FIELDS: Final = frozenset(("present",))
_COUNT_MAX_FIELDS: Final = frozenset(("count", "max"))
_CURSOR_FIELDS: Final = frozenset(("count", "cursor"))
_READ_WRITE_FIELDS: Final = frozenset(("read", "write"))


def _set(payload: object) -> KvAction:
    fields = _struct(payload, "Set", _KEY_TX_FIELDS)
    return Set(
        key=_bin(fields["key"], "Set.key"), tx_id=_optional_uint(fields["tx_id"], "Set.tx_id")
    )


def _delete(payload: object) -> KvAction:
    fields = _struct(payload, "Delete", _KEY_TX_FIELDS)
    return Delete(
        key=_bin(fields["key"], "Delete.key"),
        tx_id=_optional_uint(fields["tx_id"], "Delete.tx_id"),
    )


def _commit(payload: object) -> KvAction:
    return Commit(tx_id=_uint(_struct(payload, "Commit", _TX_FIELDS)["tx_id"], "Commit.tx_id"))


_SCAN_FIELDS: Final = frozenset(
    ("prefix", "start", "end", "reverse", "keys_only", "limit", "cursor", "tx_id")
)
_RANGE_FIELDS: Final = frozenset(("prefix", "start", "end"))
_COUNT_FIELDS: Final = frozenset(("count",))
_COUNT_TX_FIELDS: Final = frozenset(("count", "tx_id"))
_KEY_FIELDS: Final = frozenset(("key",))
_KEY_DELTA_FIELDS: Final = frozenset(("key", "delta"))
_PROCESS_FIELDS: Final = frozenset(("process",))
_PROCESS_ID_FIELDS: Final = frozenset(("process_name", "package_name", "publisher_node"))


def _range(fields: dict[object, object], what: str) -> tuple[bytes | None, ...]:
    """prefix, start and end; a prefix excludes start and end (PROTOCOL.md)."""
    prefix = _optional_bin(fields["prefix"], f"{what}.prefix")
    start = _optional_bin(fields["start"], f"{what}.start")
    end = _optional_bin(fields["end"], f"{what}.end")
    if prefix is not None and (start is not None or end is not None):
        raise DecodeError(f"{what}: prefix excludes start and end")
    return prefix, start, end


def _scan(payload: object) -> KvAction:
    fields = _struct(payload, "Scan", _SCAN_FIELDS)
    prefix, start, end = _range(fields, "Scan")
    return Scan(
        prefix=prefix,
        start=start,
        end=end,
        reverse=_bool(fields["reverse"], "Scan.reverse"),
        keys_only=_bool(fields["keys_only"], "Scan.keys_only"),
        limit=_optional_uint(fields["limit"], "Scan.limit"),
        cursor=_optional_bin(fields["cursor"], "Scan.cursor"),
        tx_id=_optional_uint(fields["tx_id"], "Scan.tx_id"),
    )


def _delete_range(payload: object) -> KvAction:
    prefix, start, end = _range(_struct(payload, "DeleteRange", _RANGE_FIELDS), "DeleteRange")
    return DeleteRange(prefix=prefix, start=start, end=end)


def _tx_read(cls: type[TxGet] | type[TxExists]) -> Callable[[object], KvAction]:
    def parse(payload: object) -> KvAction:
        fields = _struct(payload, cls.TAG, _KEY_TX_FIELDS)
        return cls(
            key=_bin(fields["key"], f"{cls.TAG}.key"),
            tx_id=_uint(fields["tx_id"], f"{cls.TAG}.tx_id"),
        )

    return parse


def _counted(cls: type[GetMany] | type[SetMany] | type[DeleteMany]) -> Callable[[object], KvAction]:
    def parse(payload: object) -> KvAction:
        fields = _struct(payload, cls.TAG, _COUNT_FIELDS)
        return cls(count=_uint(fields["count"], f"{cls.TAG}.count"))

    return parse


def _tx_get_many(payload: object) -> KvAction:
    fields = _struct(payload, "TxGetMany", _COUNT_TX_FIELDS)
    return TxGetMany(
        count=_uint(fields["count"], "TxGetMany.count"),
        tx_id=_uint(fields["tx_id"], "TxGetMany.tx_id"),
    )


def _increment(payload: object) -> KvAction:
    fields = _struct(payload, "Increment", _KEY_DELTA_FIELDS)
    return Increment(
        key=_bin(fields["key"], "Increment.key"),
        delta=_int64(fields["delta"], "Increment.delta"),
    )


def _compare_and_swap(payload: object) -> KvAction:
    fields = _struct(payload, "CompareAndSwap", _KEY_FIELDS)
    return CompareAndSwap(key=_bin(fields["key"], "CompareAndSwap.key"))


def _rollback(payload: object) -> KvAction:
    return Rollback(
        tx_id=_uint(_struct(payload, "Rollback", _TX_FIELDS)["tx_id"], "Rollback.tx_id")
    )


def _revoke(payload: object) -> KvAction:
    fields = _struct(
        _struct(payload, "Revoke", _PROCESS_FIELDS)["process"], "ProcessId", _PROCESS_ID_FIELDS
    )
    return Revoke(
        process=ProcessId(
            process_name=_str(fields["process_name"], "ProcessId.process_name"),
            package_name=_str(fields["package_name"], "ProcessId.package_name"),
            publisher_node=_str(fields["publisher_node"], "ProcessId.publisher_node"),
        )
    )


_TX_COUNT_FIELDS: Final = frozenset(("tx_id", "count"))


def _write_batch(payload: object) -> KvAction:
    fields = _struct(payload, "WriteBatch", _TX_COUNT_FIELDS)
    return WriteBatch(
        tx_id=_optional_uint(fields["tx_id"], "WriteBatch.tx_id"),
        count=_uint(fields["count"], "WriteBatch.count"),
    )


def _commit_batch(payload: object) -> KvAction:
    fields = _struct(payload, "CommitBatch", _TX_COUNT_FIELDS)
    return CommitBatch(
        tx_id=_uint(fields["tx_id"], "CommitBatch.tx_id"),
        count=_uint(fields["count"], "CommitBatch.count"),
    )


_UNIT_ACTIONS: Final[Mapping[str, KvAction]] = {
    Open.TAG: Open(),
    RemoveDb.TAG: RemoveDb(),
    BeginTx.TAG: BeginTx(),
    Capabilities.TAG: Capabilities(),
}
_PAYLOAD_ACTIONS: Final[Mapping[str, Callable[[object], KvAction]]] = {
    Set.TAG: _set,
    Delete.TAG: _delete,
    Get.TAG: lambda payload: Get(key=_bin(payload, "Get")),
    Exists.TAG: lambda payload: Exists(key=_bin(payload, "Exists")),
    Commit.TAG: _commit,
    Scan.TAG: _scan,
    TxGet.TAG: _tx_read(TxGet),
    TxExists.TAG: _tx_read(TxExists),
    GetMany.TAG: _counted(GetMany),
    TxGetMany.TAG: _tx_get_many,
    SetMany.TAG: _counted(SetMany),
    DeleteMany.TAG: _counted(DeleteMany),
    Increment.TAG: _increment,
    CompareAndSwap.TAG: _compare_and_swap,
    Rollback.TAG: _rollback,
    DeleteRange.TAG: _delete_range,
    Revoke.TAG: _revoke,
    WriteBatch.TAG: _write_batch,
    CommitBatch.TAG: _commit_batch,
}


def _no_db(payload: object) -> KvError:
    if type(payload) is not tuple or len(payload) != 2:
        raise DecodeError(f"NoDb: expected an array of 2, got {_kind(payload, sized=True)}")
    return NoDb(package_id=_package_id(payload[0]), db=_db_name(payload[1]))


def _size_limit(
    cls: type[KeyTooLarge] | type[ValueTooLarge] | type[TransactionTooLarge] | type[AnswerTooLarge],
) -> Callable[[object], KvError]:
    def parse(payload: object) -> KvError:
        fields = _struct(payload, cls.TAG, _SIZE_FIELDS)
        return cls(
            size=_uint(fields["size"], f"{cls.TAG}.size"),
            max=_uint(fields["max"], f"{cls.TAG}.max"),
        )

    return parse


def _too_many_transactions(payload: object) -> KvError:
    fields = _struct(payload, TooManyTransactions.TAG, _MAX_FIELDS)
    return TooManyTransactions(max=_uint(fields["max"], "TooManyTransactions.max"))


_UNIT_ERRORS: Final[Mapping[str, KvError]] = {
    KeyNotFound.TAG: KeyNotFound(),
    NoWriteCap.TAG: NoWriteCap(),
    NoReadCap.TAG: NoReadCap(),
    MismatchingPackageId.TAG: MismatchingPackageId(),
    AddCapFailed.TAG: AddCapFailed(),
    MalformedRequest.TAG: MalformedRequest(),
    RemoteNotAllowed.TAG: RemoteNotAllowed(),
    NotAnInteger.TAG: NotAnInteger(),
    IntegerOverflow.TAG: IntegerOverflow(),
}


def _cas_mismatch(payload: object) -> KvError:
    fields = _struct(payload, CasMismatch.TAG, _PRESENT_FIELDS)
    return CasMismatch(present=_bool(fields["present"], "CasMismatch.present"))


def _batch_too_large(payload: object) -> KvError:
    fields = _struct(payload, BatchTooLarge.TAG, _COUNT_MAX_FIELDS)
    return BatchTooLarge(
        count=_uint(fields["count"], "BatchTooLarge.count"),
        max=_uint(fields["max"], "BatchTooLarge.max"),
    )


_PAYLOAD_ERRORS: Final[Mapping[str, Callable[[object], KvError]]] = {
    NoDb.TAG: _no_db,
    NoTx.TAG: lambda payload: NoTx(tx_id=_uint(payload, "NoTx")),
    LevelDbError.TAG: lambda payload: LevelDbError(message=_str(payload, "LevelDbError")),
    IoError.TAG: lambda payload: IoError(message=_str(payload, "IOError")),
    KeyTooLarge.TAG: _size_limit(KeyTooLarge),
    ValueTooLarge.TAG: _size_limit(ValueTooLarge),
    TransactionTooLarge.TAG: _size_limit(TransactionTooLarge),
    TooManyTransactions.TAG: _too_many_transactions,
    CasMismatch.TAG: _cas_mismatch,
    TransactionConflict.TAG: lambda payload: TransactionConflict(
        tx_id=_uint(payload, "TransactionConflict")
    ),
    BatchTooLarge.TAG: _batch_too_large,
    AnswerTooLarge.TAG: _size_limit(AnswerTooLarge),
}


def _err(payload: object) -> KvResponse:
    return ErrResponse(error=_tagged(payload, "KvError", _UNIT_ERRORS, _PAYLOAD_ERRORS))


def _begin_tx_response(payload: object) -> KvResponse:
    tx_id = _struct(payload, "BeginTx", _TX_FIELDS)["tx_id"]
    return BeginTxResponse(tx_id=_uint(tx_id, "BeginTx.tx_id"))


def _scan_response(payload: object) -> KvResponse:
    fields = _struct(payload, "Scan", _CURSOR_FIELDS)
    return ScanResponse(
        count=_uint(fields["count"], "Scan.count"),
        cursor=_optional_bin(fields["cursor"], "Scan.cursor"),
    )


def _count_response(
    cls: type[GetManyResponse] | type[DeleteRangeResponse],
) -> Callable[[object], KvResponse]:
    def parse(payload: object) -> KvResponse:
        fields = _struct(payload, cls.TAG, _COUNT_FIELDS)
        return cls(count=_uint(fields["count"], f"{cls.TAG}.count"))

    return parse


def _capabilities_response(payload: object) -> KvResponse:
    fields = _struct(payload, "Capabilities", _READ_WRITE_FIELDS)
    return CapabilitiesResponse(
        read=_bool(fields["read"], "Capabilities.read"),
        write=_bool(fields["write"], "Capabilities.write"),
    )


_UNIT_RESPONSES: Final[Mapping[str, KvResponse]] = {OkResponse.TAG: OkResponse()}
_PAYLOAD_RESPONSES: Final[Mapping[str, Callable[[object], KvResponse]]] = {
    BeginTxResponse.TAG: _begin_tx_response,
    GetResponse.TAG: lambda payload: GetResponse(key=_bin(payload, "Get")),
    ExistsResponse.TAG: lambda payload: ExistsResponse(exists=_bool(payload, "Exists")),
    ErrResponse.TAG: _err,
    ScanResponse.TAG: _scan_response,
    GetManyResponse.TAG: _count_response(GetManyResponse),
    DeleteRangeResponse.TAG: _count_response(DeleteRangeResponse),
    IncrementResponse.TAG: lambda payload: IncrementResponse(value=_int64(payload, "Increment")),
    CapabilitiesResponse.TAG: _capabilities_response,
}
