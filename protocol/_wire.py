"""The encoders: message objects -> the wire shapes msgpack packs (codec.py's canonical form).

``_action_wire``, ``_response_wire`` and ``_error_wire`` build the plain
Python value of a KvAction, KvResponse or KvError in PROTOCOL.md's
externally tagged shape, fields in the order PROTOCOL.md lists them;
``_pack`` turns a shape into msgpack's smallest encodings. They do not
validate db names (a test can send a request the kv process must reject),
but refuse an integer the wire cannot carry (``_uint_out``, ``_int64_out``
raise ValueError). ``codec.py`` and ``prefix.py`` build bodies from these.
"""

from __future__ import annotations

from typing import Final, assert_never

import msgpack

from ._shapes import _I64_MAX, _I64_MIN
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
from .ids import PackageId, ProcessId
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

_U64_MAX: Final = 2**64 - 1


def _pack(wire: object) -> bytes:
    packed: bytes = msgpack.packb(wire, use_bin_type=True)
    return packed


def _package_id_map(package_id: PackageId) -> dict[str, str]:
    return {
        "package_name": package_id.package_name,
        "publisher_node": package_id.publisher_node,
    }


def _uint_out(value: int) -> int:
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise ValueError(f"a uint on the wire is an int in 0..2**64-1, got {value!r}")
    return value


def _int64_out(value: int) -> int:
    if type(value) is not int or not _I64_MIN <= value <= _I64_MAX:
        raise ValueError(f"an int64 on the wire is an int in -2**63..2**63-1, got {value!r}")
    return value


def _optional_uint_out(value: int | None) -> int | None:
    return None if value is None else _uint_out(value)


def _process_id_map(process: ProcessId) -> dict[str, str]:
    return {
        "process_name": process.process_name,
        "package_name": process.package_name,
        "publisher_node": process.publisher_node,
    }


def _free_text(message: str) -> str:
    """An error message as valid UTF-8: lone surrogates (from an OS file name
    decoded with surrogateescape, say) are sent backslash-escaped rather than
    failing the whole response."""
    if message.isascii():
        return message
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _action_wire(action: KvAction) -> object:
    match action:
        case Open() | RemoveDb() | BeginTx() | Capabilities():
            return action.TAG
        case Set(key=key, tx_id=tx_id) | Delete(key=key, tx_id=tx_id):
            tx = None if tx_id is None else _uint_out(tx_id)
            return {action.TAG: {"key": key, "tx_id": tx}}
        case Get(key=key) | Exists(key=key):
            return {action.TAG: key}
        case Commit(tx_id=tx_id) | Rollback(tx_id=tx_id):
            return {action.TAG: {"tx_id": _uint_out(tx_id)}}
        case Scan():
            return {
                action.TAG: {
                    "prefix": action.prefix,
                    "start": action.start,
                    "end": action.end,
                    "reverse": bool(action.reverse),
                    "keys_only": bool(action.keys_only),
                    "limit": _optional_uint_out(action.limit),
                    "cursor": action.cursor,
                    "tx_id": _optional_uint_out(action.tx_id),
                }
            }
        case TxGet(key=key, tx_id=tx_id) | TxExists(key=key, tx_id=tx_id):
            return {action.TAG: {"key": key, "tx_id": _uint_out(tx_id)}}
        case GetMany(count=count) | SetMany(count=count) | DeleteMany(count=count):
            return {action.TAG: {"count": _uint_out(count)}}
        case TxGetMany(count=count, tx_id=tx_id):
            return {action.TAG: {"count": _uint_out(count), "tx_id": _uint_out(tx_id)}}
        case Increment(key=key, delta=delta):
            return {action.TAG: {"key": key, "delta": _int64_out(delta)}}
        case CompareAndSwap(key=key):
            return {action.TAG: {"key": key}}
        case DeleteRange(prefix=prefix, start=start, end=end):
            return {action.TAG: {"prefix": prefix, "start": start, "end": end}}
        case Revoke(process=process):
            return {action.TAG: {"process": _process_id_map(process)}}
        case WriteBatch(tx_id=tx_id, count=count):
            return {action.TAG: {"tx_id": _optional_uint_out(tx_id), "count": _uint_out(count)}}
        case CommitBatch(tx_id=tx_id, count=count):
            return {action.TAG: {"tx_id": _uint_out(tx_id), "count": _uint_out(count)}}
        case _:
            assert_never(action)


def _response_wire(response: KvResponse) -> object:
    match response:
        case OkResponse():
            return response.TAG
        case BeginTxResponse(tx_id=tx_id):
            return {response.TAG: {"tx_id": _uint_out(tx_id)}}
        case GetResponse(key=key):
            return {response.TAG: key}
        case ExistsResponse(exists=exists):
            return {response.TAG: bool(exists)}
        case ErrResponse(error=error):
            return {response.TAG: _error_wire(error)}
        case ScanResponse(count=count, cursor=cursor):
            return {response.TAG: {"count": _uint_out(count), "cursor": cursor}}
        case GetManyResponse(count=count) | DeleteRangeResponse(count=count):
            return {response.TAG: {"count": _uint_out(count)}}
        case IncrementResponse(value=value):
            return {response.TAG: _int64_out(value)}
        case CapabilitiesResponse(read=read, write=write):
            return {response.TAG: {"read": bool(read), "write": bool(write)}}
        case _:
            assert_never(response)


def _error_wire(error: KvError) -> object:
    match error:
        case (
            KeyNotFound()
            | NoWriteCap()
            | NoReadCap()
            | MismatchingPackageId()
            | AddCapFailed()
            | MalformedRequest()
            | RemoteNotAllowed()
            | NotAnInteger()
            | IntegerOverflow()
        ):
            return error.TAG
        case NoDb(package_id=package_id, db=db):
            return {error.TAG: [_package_id_map(package_id), db]}
        case NoTx(tx_id=tx_id) | TransactionConflict(tx_id=tx_id):
            return {error.TAG: _uint_out(tx_id)}
        case CasMismatch(present=present):
            return {error.TAG: {"present": bool(present)}}
        case BatchTooLarge(count=count, max=limit):
            return {error.TAG: {"count": _uint_out(count), "max": _uint_out(limit)}}
        case LevelDbError(message=message) | IoError(message=message):
            return {error.TAG: _free_text(message)}
        case (
            KeyTooLarge(size=size, max=limit)
            | ValueTooLarge(size=size, max=limit)
            | TransactionTooLarge(size=size, max=limit)
            | AnswerTooLarge(size=size, max=limit)
        ):
            return {error.TAG: {"size": _uint_out(size), "max": _uint_out(limit)}}
        case TooManyTransactions(max=limit):
            return {error.TAG: {"max": _uint_out(limit)}}
        case _:
            assert_never(error)
