"""Sans-IO codec: KvRequest / KvResponse <-> msgpack bytes, capability params <-> JSON.

Wire shapes are PROTOCOL.md's (serde's external tagging over msgpack with
``use_bin_type=True``). Invariants of this module:

Rule 1 - one boundary. Anything that goes wrong while decoding (msgpack's own
errors, IdError, a KeyError, TypeError, RecursionError...) leaves through
``_at_boundary`` as a DecodeError; no other exception that input can
provoke escapes a ``decode_*`` function. The kv process answers a
DecodeError with MalformedRequest.

Rule 2 - strict shape. Decoders check every position against the schema:
exact field sets (missing, extra and duplicated keys are errors; msgpack's
``object_pairs_hook`` lets us see duplicates), bin vs str, uint as a
non-bool int in 0..2**64-1, no ext types, no trailing bytes. Field order and
the width of msgpack encodings (map16 for a small map, uint64 for a small
number, str8 for a short string) are not part of the shape, so they are
accepted.

Rule 3 - bounded work. The size check runs before unpacking; a container
of more than 16 entries (the schema's widest, Scan, has 8) is refused by msgpack
from its header, before it is built; nesting deeper than msgpack's fixed
stack is its StackError. The schema nests containers at most four deep
(``{"Err": {"NoDb": [{PackageId}, db]}}``), so anything deeper fails the
shape check of Rule 2.

Encoders emit the canonical form (msgpack's smallest encodings, fields in
the order PROTOCOL.md lists them). They do not validate db names, so a test
can send a request the kv process must reject; they do refuse an integer
outside u64, which the wire cannot carry as a uint.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Final, Literal, TypeVar, assert_never

import msgpack

from .ids import IdError, PackageId, ProcessId, validate_db_name
from .messages import (
    AddCapFailed,
    BatchTooLarge,
    BeginTx,
    BeginTxResponse,
    Capabilities,
    CapabilitiesResponse,
    CasMismatch,
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
    IntegerOverflow,
    IoError,
    KeyNotFound,
    KeyTooLarge,
    KvAction,
    KvCapabilityParams,
    KvError,
    KvRequest,
    KvResponse,
    LevelDbError,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NotAnInteger,
    NoTx,
    NoWriteCap,
    OkResponse,
    Open,
    RemoteNotAllowed,
    RemoveDb,
    Revoke,
    Rollback,
    Scan,
    ScanResponse,
    Set,
    SetMany,
    TooManyTransactions,
    TransactionConflict,
    TransactionTooLarge,
    TxExists,
    TxGet,
    TxGetMany,
    ValueTooLarge,
    WriteBatch,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DecodeError",
    "decode_capability_params",
    "decode_request",
    "decode_response",
    "encode_capability_params",
    "encode_request",
    "encode_response",
]

#: Largest body ``decode_request``/``decode_response`` accept by default.
#: Values travel in the blob, never the body, and keys are at most 64 KiB.
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024

_U64_MAX: Final = 2**64 - 1
_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1
# The widest container in the schema (Scan's fields) has eight entries; msgpack refuses
# anything wider than this from its header, before building it.
_MAX_CONTAINER_LEN: Final = 16
_SHORT: Final = 40  # characters of a foreign value quoted in an error message

T = TypeVar("T")
In = TypeVar("In", bytes, str)
Out = TypeVar("Out")


class DecodeError(ValueError):
    """Bytes or text that are not a valid encoding of the expected message."""


# --- Encoding ----------------------------------------------------------------


def encode_request(request: KvRequest) -> bytes:
    """Encode ``request`` as a msgpack body in canonical form.

    Raise ValueError for a ``tx_id`` outside u64. The db name is not checked.
    """
    return _pack(
        {
            "package_id": _package_id_map(request.package_id),
            "db": request.db,
            "action": _action_wire(request.action),
        }
    )


def encode_response(response: KvResponse) -> bytes:
    """Encode ``response`` as a msgpack body in canonical form.

    Raise ValueError for a ``tx_id``, ``size`` or ``max`` outside u64.
    """
    return _pack(_response_wire(response))


def encode_capability_params(params: KvCapabilityParams) -> str:
    """The JSON text of a kv capability's params.

    ``{"kind": "read"|"write", "db_key": [{"package_name": .., "publisher_node": ..}, db]}``
    """
    return json.dumps(
        {"kind": params.kind, "db_key": [_package_id_map(params.package_id), params.db]}
    )


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
        ):
            return {error.TAG: {"size": _uint_out(size), "max": _uint_out(limit)}}
        case TooManyTransactions(max=limit):
            return {error.TAG: {"max": _uint_out(limit)}}
        case _:
            assert_never(error)


# --- The decoding boundary (Rule 1) ------------------------------------------

# Every exception a decoder can meet on hostile input. MemoryError and the
# like are not decoding failures and pass through.
_FOREIGN_ERRORS: Final = (
    ValueError,  # IdError, UnicodeDecodeError, msgpack's ExtraData/FormatError/StackError
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
    msgpack.UnpackException,
)


def decode_request(data: bytes, *, max_size: int = DEFAULT_MAX_BODY_BYTES) -> KvRequest:
    """Decode a request body; raise DecodeError for anything but a valid one."""
    return _at_boundary(_request_from_bytes, data, max_size)


def decode_response(data: bytes, *, max_size: int = DEFAULT_MAX_BODY_BYTES) -> KvResponse:
    """Decode a response body; raise DecodeError for anything but a valid one."""
    return _at_boundary(_response_from_bytes, data, max_size)


def decode_capability_params(text: str) -> KvCapabilityParams:
    """Parse a kv capability's JSON params; raise DecodeError if they are not valid.

    The PackageId may be the map ``{"package_name": .., "publisher_node": ..}``
    or the string ``"package_name:publisher_node"``; spelling (whitespace, key
    order, escapes) does not matter.
    """
    return _at_boundary(_capability_params_from_text, text, 0)


def _at_boundary(parse: Callable[[In, int], Out], data: In, limit: int) -> Out:
    """Run ``parse`` and turn whatever it raises into one DecodeError (Rule 1)."""
    try:
        return parse(data, limit)
    except DecodeError:
        raise
    except msgpack.ExtraData as exc:
        raise DecodeError("trailing bytes after the encoded value") from exc
    except msgpack.FormatError as exc:
        raise DecodeError("not msgpack: a reserved format byte (0xc1)") from exc
    except msgpack.StackError as exc:
        raise DecodeError("nesting too deep for the decoder's stack") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(f"a str is not valid UTF-8 ({exc.reason})") from exc
    except RecursionError as exc:
        raise DecodeError("nesting too deep") from exc
    except IdError as exc:
        raise DecodeError(str(exc)) from exc
    except _FOREIGN_ERRORS as exc:
        raise DecodeError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc


# --- msgpack bodies (Rules 2 and 3) -------------------------------------------


def _strict_map(pairs: list[tuple[object, object]]) -> dict[object, object]:
    """The ``object_pairs_hook`` of msgpack and json: a dict, unless a key repeats."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[object] = set()
        for key, _ in pairs:
            if key in seen:
                raise DecodeError(f"duplicate map key {_short(key)}")
            seen.add(key)
    return result


def _reject_ext(code: int, data: bytes) -> object:
    """msgpack's ext_hook: no ext type is part of the schema."""
    raise DecodeError(f"msgpack ext type {code} is not allowed")


def _unpack(data: bytes, max_size: int) -> object:
    if len(data) > max_size:
        raise DecodeError(f"body of {len(data)} bytes is over the limit of {max_size}")
    if not data:
        raise DecodeError("empty body")
    value: object = msgpack.unpackb(
        data,
        raw=False,
        use_list=False,
        strict_map_key=True,
        object_pairs_hook=_strict_map,
        ext_hook=_reject_ext,
        max_array_len=_MAX_CONTAINER_LEN,
        max_map_len=_MAX_CONTAINER_LEN,
    )
    return value


def _request_from_bytes(data: bytes, max_size: int) -> KvRequest:
    fields = _struct(_unpack(data, max_size), "KvRequest", _REQUEST_FIELDS)
    return KvRequest(
        package_id=_package_id(fields["package_id"]),
        db=_db_name(fields["db"]),
        action=_tagged(fields["action"], "KvAction", _UNIT_ACTIONS, _PAYLOAD_ACTIONS),
    )


def _response_from_bytes(data: bytes, max_size: int) -> KvResponse:
    return _tagged(_unpack(data, max_size), "KvResponse", _UNIT_RESPONSES, _PAYLOAD_RESPONSES)


# Shape checkers. Each takes a decoded value and where it sits (for the
# message), and returns it narrowed or raises DecodeError.


def _kind(value: object, *, sized: bool = False) -> str:
    """The msgpack/JSON family of a decoded value (with its length if ``sized``)."""
    if sized and isinstance(value, tuple | list | dict):
        return f"{_kind(value)} of {len(value)}"
    match value:
        case None:
            return "nil"
        case bool():
            return "bool"
        case int():
            return "int"
        case float():
            return "float"
        case str():
            return "str"
        case bytes():
            return "bin"
        case tuple() | list():
            return "array"
        case dict():
            return "map"
        case _:
            return "ext type"  # msgpack's Timestamp, the one ext it decodes itself


def _short(value: object) -> str:
    """A bounded quotation of a foreign str or bytes, else just its kind."""
    text = repr(value) if isinstance(value, str | bytes) else _kind(value)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def _struct(value: object, what: str, names: frozenset[str]) -> dict[object, object]:
    """A map whose keys are exactly ``names`` (any order)."""
    if type(value) is not dict:
        raise DecodeError(f"{what}: expected a map, got {_kind(value)}")
    if value.keys() != names:
        problems = []
        if missing := sorted(names - value.keys()):
            problems.append(f"missing field {', '.join(missing)}")
        if extra := [_short(key) for key in value if key not in names]:
            problems.append(f"unexpected field {', '.join(extra)}")
        raise DecodeError(f"{what}: {'; '.join(problems)}")
    return value


def _bin(value: object, what: str) -> bytes:
    if type(value) is not bytes:
        raise DecodeError(f"{what}: expected bin, got {_kind(value)}")
    return value


def _str(value: object, what: str) -> str:
    if type(value) is not str:
        raise DecodeError(f"{what}: expected str, got {_kind(value)}")
    return value


def _bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise DecodeError(f"{what}: expected bool, got {_kind(value)}")
    return value


def _uint(value: object, what: str) -> int:
    # ``type(...) is int`` keeps bool out; msgpack cannot carry more than u64.
    if type(value) is not int:
        raise DecodeError(f"{what}: expected uint, got {_kind(value)}")
    if value < 0:
        raise DecodeError(f"{what}: expected uint, got negative int")
    return value


def _optional_uint(value: object, what: str) -> int | None:
    return None if value is None else _uint(value, what)


def _int64(value: object, what: str) -> int:
    if type(value) is not int:
        raise DecodeError(f"{what}: expected int, got {_kind(value)}")
    if not _I64_MIN <= value <= _I64_MAX:
        raise DecodeError(f"{what}: expected an int64, got an int outside -2**63..2**63-1")
    return value


def _optional_bin(value: object, what: str) -> bytes | None:
    return None if value is None else _bin(value, what)


@functools.lru_cache(maxsize=1024)
def _cached_package_id(package_name: str, publisher_node: str) -> PackageId:
    return PackageId(package_name=package_name, publisher_node=publisher_node)


_PACKAGE_ID_FIELDS: Final = frozenset(("package_name", "publisher_node"))


def _package_id(value: object) -> PackageId:
    fields = _struct(value, "PackageId", _PACKAGE_ID_FIELDS)
    return _cached_package_id(
        _str(fields["package_name"], "PackageId.package_name"),
        _str(fields["publisher_node"], "PackageId.publisher_node"),
    )


_cached_db_name: Final = functools.lru_cache(maxsize=1024)(validate_db_name)


def _db_name(value: object) -> str:
    return _cached_db_name(_str(value, "db"))


def _tagged(
    value: object,
    what: str,
    units: Mapping[str, T],
    payloads: Mapping[str, Callable[[object], T]],
) -> T:
    """An externally tagged variant: a str for a unit, a one-entry map otherwise."""
    if type(value) is str:
        unit = units.get(value)
        if unit is not None:
            return unit
        if value in payloads:
            raise DecodeError(f"{what} {value} needs a payload")
        raise DecodeError(f"unknown {what} tag {_short(value)}")
    if type(value) is dict:
        if len(value) != 1:
            raise DecodeError(f"{what}: a tagged map has one entry, got {len(value)}")
        ((tag, payload),) = value.items()
        parse = payloads.get(tag)
        if parse is not None:
            return parse(payload)
        if tag in units:
            raise DecodeError(f"{what} {tag} takes no payload")
        raise DecodeError(f"unknown {what} tag {_short(tag)}")
    raise DecodeError(f"{what}: expected a str or a one-entry map, got {_kind(value)}")


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
    cls: type[KeyTooLarge] | type[ValueTooLarge] | type[TransactionTooLarge],
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


# --- Capability params (JSON) -------------------------------------------------------

_CAPABILITY_FIELDS: Final = frozenset(("kind", "db_key"))


def _reject_constant(name: str) -> object:
    raise DecodeError(f"{name} is not valid JSON here")


def _capability_params_from_text(text: str, _: int) -> KvCapabilityParams:
    if type(text) is not str:
        raise DecodeError(f"capability params are JSON text, got {type(text).__name__}")
    value: object = json.loads(text, object_pairs_hook=_strict_map, parse_constant=_reject_constant)
    fields = _struct(value, "capability params", _CAPABILITY_FIELDS)
    db_key = fields["db_key"]
    if type(db_key) is not list or len(db_key) != 2:
        raise DecodeError(f"db_key: expected an array of 2, got {_kind(db_key, sized=True)}")
    package_id = db_key[0]
    return KvCapabilityParams(
        kind=_capability_kind(fields["kind"]),
        package_id=PackageId.parse(package_id)
        if type(package_id) is str
        else _package_id(package_id),
        db=_db_name(db_key[1]),
    )


def _capability_kind(kind: object) -> Literal["read", "write"]:
    if kind == "read":
        return "read"
    if kind == "write":
        return "write"
    raise DecodeError(f"capability kind is 'read' or 'write', got {_short(kind)}")
