"""Golden vectors: encoded bodies next to what they mean, for any implementation.

``golden_vectors.json`` (format in PROTOCOL.md, "Golden vectors") holds
canonical bodies, accepted non-canonical bodies, malformed bodies and
capability params. This module loads it and turns a *meaning* (the JSON
rendering of a value) into the attrs value. That direction deliberately
shares no code with the codec (``codec.py`` and its ``_shapes``, ``_schema``,
``_wire``), so the vectors check the codec rather than echo it. The other
direction, ``response_to_meaning`` (for tools that print responses), is
derived from the wire encoders, since a meaning is the wire shape with the
substitutions below.

A meaning mirrors the wire shape (external tagging, field names) with three
substitutions for readability: a PackageId is the text ``"name:publisher"``,
a ProcessId the text ``"process:name:publisher"``, and a byte string is
lowercase hex.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Final, Literal, TypeAlias, TypeVar, cast

import attrs

from ._wire import _response_wire
from .ids import PackageId, ProcessId
from .messages import (
    AddCapFailed,
    AnswerTooLarge,
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
    "GOLDEN_VECTORS_FILE",
    "BodyVector",
    "CapabilityVector",
    "GoldenFormatError",
    "GoldenVectors",
    "JsonValue",
    "MalformedBody",
    "MalformedCapability",
    "capability_params_from_meaning",
    "load_golden_vectors",
    "request_from_meaning",
    "response_from_meaning",
    "response_to_meaning",
    "value_from_meaning",
]

#: The resource name of the vector file inside this package.
GOLDEN_VECTORS_FILE: Final = "golden_vectors.json"

#: Any JSON value, as ``json.loads`` returns it.
JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"

BodyKind: TypeAlias = Literal["request", "response"]

T = TypeVar("T")


class GoldenFormatError(ValueError):
    """The vector file or a meaning does not follow the documented format."""


@attrs.frozen(kw_only=True)
class BodyVector:
    """A body (``data``) that decodes to the value ``meaning`` describes."""

    name: str
    kind: BodyKind
    meaning: JsonValue
    data: bytes
    #: For an ``Err`` response, the error's display text (``str()`` of the KvError).
    text: str | None = None


@attrs.frozen(kw_only=True)
class MalformedBody:
    """A body every decoder must reject, and why."""

    name: str
    kind: BodyKind
    data: bytes
    why: str


@attrs.frozen(kw_only=True)
class CapabilityVector:
    """Capability params JSON ``text`` meaning ``meaning``.

    When ``canonical``, an encoder's output parses to the same JSON value as ``text``.
    """

    name: str
    text: str
    meaning: JsonValue
    canonical: bool


@attrs.frozen(kw_only=True)
class MalformedCapability:
    """Capability params JSON every decoder must reject, and why."""

    name: str
    text: str
    why: str


@attrs.frozen(kw_only=True)
class GoldenVectors:
    """The whole vector file."""

    #: encode(meaning) == data and decode(data) == meaning
    canonical: tuple[BodyVector, ...]
    #: decode(data) == meaning only (a non-canonical but valid encoding)
    accepted: tuple[BodyVector, ...]
    malformed: tuple[MalformedBody, ...]
    capability_params: tuple[CapabilityVector, ...]
    malformed_capability_params: tuple[MalformedCapability, ...]


def load_golden_vectors() -> GoldenVectors:
    """Read and check ``golden_vectors.json`` from this package's resources."""
    package = __name__.rpartition(".")[0]
    text = resources.files(package).joinpath(GOLDEN_VECTORS_FILE).read_text(encoding="utf-8")
    document = _object(cast(JsonValue, json.loads(text)), "the file")
    if document.get("version") != 1:
        raise GoldenFormatError(f"unsupported version {document.get('version')!r}")
    return GoldenVectors(
        canonical=tuple(_body_vector(e) for e in _entries(document, "canonical")),
        accepted=tuple(_body_vector(e) for e in _entries(document, "accepted")),
        malformed=tuple(
            MalformedBody(
                name=_text(e, "name"),
                kind=_kind(e),
                data=_hex(e.get("hex"), "hex"),
                why=_text(e, "why"),
            )
            for e in _entries(document, "malformed")
        ),
        capability_params=tuple(
            CapabilityVector(
                name=_text(e, "name"),
                text=_text(e, "json"),
                meaning=e.get("meaning"),
                canonical=e.get("canonical") is True,
            )
            for e in _entries(document, "capability_params")
        ),
        malformed_capability_params=tuple(
            MalformedCapability(name=_text(e, "name"), text=_text(e, "json"), why=_text(e, "why"))
            for e in _entries(document, "malformed_capability_params")
        ),
    )


def value_from_meaning(kind: BodyKind, meaning: JsonValue) -> KvRequest | KvResponse:
    """The request or response (per ``kind``) that ``meaning`` describes."""
    return request_from_meaning(meaning) if kind == "request" else response_from_meaning(meaning)


def request_from_meaning(meaning: JsonValue) -> KvRequest:
    """``{"package_id": "name:publisher", "db": str, "action": <action>}`` as a KvRequest."""
    fields = _fields(meaning, "KvRequest", "package_id", "db", "action")
    return KvRequest(
        package_id=_package_id(fields["package_id"]),
        db=_str(fields["db"], "db"),
        action=_variant(fields["action"], "KvAction", _UNIT_ACTIONS, _PAYLOAD_ACTIONS),
    )


def response_from_meaning(meaning: JsonValue) -> KvResponse:
    """``"Ok"``, ``{"Get": hex}``, ``{"Err": <error>}``... as a KvResponse."""
    return _variant(meaning, "KvResponse", _UNIT_RESPONSES, _PAYLOAD_RESPONSES)


def response_to_meaning(response: KvResponse) -> JsonValue:
    """``response`` as a meaning: its wire shape, with bytes as hex and each
    PackageId as ``"name:publisher"`` (the inverse of ``response_from_meaning``)."""
    return _meaning_of(_response_wire(response))


def _meaning_of(wire: object) -> JsonValue:
    match wire:
        case bytes():
            return wire.hex()
        case dict() if wire.keys() == {"package_name", "publisher_node"}:
            return f"{wire['package_name']}:{wire['publisher_node']}"
        case dict():
            return {str(key): _meaning_of(value) for key, value in wire.items()}
        case list() | tuple():
            return [_meaning_of(value) for value in wire]
        case bool() | int() | float() | str() | None:
            return wire
        case _:
            raise TypeError(f"no meaning for {type(wire).__name__}")


def capability_params_from_meaning(meaning: JsonValue) -> KvCapabilityParams:
    """``{"kind": "read"|"write", "package_id": "name:publisher", "db": str}``."""
    fields = _fields(meaning, "capability params", "kind", "package_id", "db")
    kind = fields["kind"]
    if kind != "read" and kind != "write":
        raise GoldenFormatError(f"capability kind is read or write, got {kind!r}")
    return KvCapabilityParams(
        kind="read" if kind == "read" else "write",
        package_id=_package_id(fields["package_id"]),
        db=_str(fields["db"], "db"),
    )


# --- File structure -------------------------------------------------------------


def _object(value: JsonValue, what: str) -> dict[str, JsonValue]:
    if not isinstance(value, dict):
        raise GoldenFormatError(f"{what} is not a JSON object")
    return value


def _entries(document: dict[str, JsonValue], section: str) -> list[dict[str, JsonValue]]:
    entries = document.get(section)
    if not isinstance(entries, list):
        raise GoldenFormatError(f"section {section!r} is not a list")
    return [_object(entry, f"an entry of {section!r}") for entry in entries]


def _text(entry: dict[str, JsonValue], key: str) -> str:
    return _str(entry.get(key), key)


def _kind(entry: dict[str, JsonValue]) -> BodyKind:
    kind = entry.get("kind")
    if kind == "request":
        return "request"
    if kind == "response":
        return "response"
    raise GoldenFormatError(f"kind is request or response, got {kind!r}")


def _body_vector(entry: dict[str, JsonValue]) -> BodyVector:
    return BodyVector(
        name=_text(entry, "name"),
        kind=_kind(entry),
        meaning=entry.get("meaning"),
        data=_hex(entry.get("hex"), "hex"),
        text=None if entry.get("text") is None else _text(entry, "text"),
    )


# --- Meanings ------------------------------------------------------------------------


def _str(value: JsonValue, what: str) -> str:
    if not isinstance(value, str):
        raise GoldenFormatError(f"{what}: expected a string, got {value!r}")
    return value


def _hex(value: JsonValue, what: str) -> bytes:
    try:
        return bytes.fromhex(_str(value, what))
    except ValueError as exc:
        raise GoldenFormatError(f"{what}: not hex: {value!r}") from exc


def _uint(value: JsonValue, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise GoldenFormatError(f"{what}: expected a u64 integer, got {value!r}")
    return value


def _int64(value: JsonValue, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
        raise GoldenFormatError(f"{what}: expected an int64, got {value!r}")
    return value


def _bool(value: JsonValue, what: str) -> bool:
    if not isinstance(value, bool):
        raise GoldenFormatError(f"{what}: expected true or false, got {value!r}")
    return value


def _optional_hex(value: JsonValue, what: str) -> bytes | None:
    return None if value is None else _hex(value, what)


def _optional_uint(value: JsonValue, what: str) -> int | None:
    return None if value is None else _uint(value, what)


def _package_id(value: JsonValue) -> PackageId:
    return PackageId.parse(_str(value, "package_id"))


def _fields(value: JsonValue, what: str, *names: str) -> dict[str, JsonValue]:
    fields = _object(value, what)
    if set(fields) != set(names):
        raise GoldenFormatError(f"{what}: fields are {sorted(names)}, got {sorted(fields)}")
    return fields


def _variant(
    value: JsonValue,
    what: str,
    units: Mapping[str, T],
    payloads: Mapping[str, Callable[[JsonValue], T]],
) -> T:
    if isinstance(value, str) and value in units:
        return units[value]
    if isinstance(value, dict) and len(value) == 1:
        ((tag, payload),) = value.items()
        if tag in payloads:
            return payloads[tag](payload)
    raise GoldenFormatError(f"not a {what}: {value!r}")


def _key_tx(value: JsonValue, what: str) -> tuple[bytes, int | None]:
    fields = _fields(value, what, "key", "tx_id")
    tx_id = fields["tx_id"]
    return _hex(fields["key"], "key"), None if tx_id is None else _uint(tx_id, "tx_id")


def _set(value: JsonValue) -> KvAction:
    key, tx_id = _key_tx(value, "Set")
    return Set(key=key, tx_id=tx_id)


def _delete(value: JsonValue) -> KvAction:
    key, tx_id = _key_tx(value, "Delete")
    return Delete(key=key, tx_id=tx_id)


def _tx_id(value: JsonValue, what: str) -> int:
    return _uint(_fields(value, what, "tx_id")["tx_id"], "tx_id")


def _scan(value: JsonValue) -> KvAction:
    names = ("prefix", "start", "end", "reverse", "keys_only", "limit", "cursor", "tx_id")
    f = _fields(value, "Scan", *names)
    return Scan(
        prefix=_optional_hex(f["prefix"], "prefix"),
        start=_optional_hex(f["start"], "start"),
        end=_optional_hex(f["end"], "end"),
        reverse=_bool(f["reverse"], "reverse"),
        keys_only=_bool(f["keys_only"], "keys_only"),
        limit=_optional_uint(f["limit"], "limit"),
        cursor=_optional_hex(f["cursor"], "cursor"),
        tx_id=_optional_uint(f["tx_id"], "tx_id"),
    )


def _delete_range(value: JsonValue) -> KvAction:
    f = _fields(value, "DeleteRange", "prefix", "start", "end")
    return DeleteRange(
        prefix=_optional_hex(f["prefix"], "prefix"),
        start=_optional_hex(f["start"], "start"),
        end=_optional_hex(f["end"], "end"),
    )


def _key_in_tx(value: JsonValue, what: str) -> tuple[bytes, int]:
    f = _fields(value, what, "key", "tx_id")
    return _hex(f["key"], "key"), _uint(f["tx_id"], "tx_id")


def _tx_get(value: JsonValue) -> KvAction:
    key, tx_id = _key_in_tx(value, "TxGet")
    return TxGet(key=key, tx_id=tx_id)


def _tx_exists(value: JsonValue) -> KvAction:
    key, tx_id = _key_in_tx(value, "TxExists")
    return TxExists(key=key, tx_id=tx_id)


def _count(value: JsonValue, what: str) -> int:
    return _uint(_fields(value, what, "count")["count"], "count")


def _tx_get_many(value: JsonValue) -> KvAction:
    f = _fields(value, "TxGetMany", "count", "tx_id")
    return TxGetMany(count=_uint(f["count"], "count"), tx_id=_uint(f["tx_id"], "tx_id"))


def _increment(value: JsonValue) -> KvAction:
    f = _fields(value, "Increment", "key", "delta")
    return Increment(key=_hex(f["key"], "key"), delta=_int64(f["delta"], "delta"))


def _revoke(value: JsonValue) -> KvAction:
    process = _fields(value, "Revoke", "process")["process"]
    return Revoke(process=ProcessId.parse(_str(process, "process")))


def _write_batch(value: JsonValue) -> KvAction:
    f = _fields(value, "WriteBatch", "tx_id", "count")
    return WriteBatch(tx_id=_optional_uint(f["tx_id"], "tx_id"), count=_uint(f["count"], "count"))


def _commit_batch(value: JsonValue) -> KvAction:
    f = _fields(value, "CommitBatch", "tx_id", "count")
    return CommitBatch(tx_id=_uint(f["tx_id"], "tx_id"), count=_uint(f["count"], "count"))


_UNIT_ACTIONS: Final[Mapping[str, KvAction]] = {
    "Open": Open(),
    "RemoveDb": RemoveDb(),
    "BeginTx": BeginTx(),
    "Capabilities": Capabilities(),
}
_PAYLOAD_ACTIONS: Final[Mapping[str, Callable[[JsonValue], KvAction]]] = {
    "Set": _set,
    "Delete": _delete,
    "Get": lambda v: Get(key=_hex(v, "Get")),
    "Exists": lambda v: Exists(key=_hex(v, "Exists")),
    "Commit": lambda v: Commit(tx_id=_tx_id(v, "Commit")),
    "Scan": _scan,
    "TxGet": _tx_get,
    "TxExists": _tx_exists,
    "GetMany": lambda v: GetMany(count=_count(v, "GetMany")),
    "TxGetMany": _tx_get_many,
    "SetMany": lambda v: SetMany(count=_count(v, "SetMany")),
    "DeleteMany": lambda v: DeleteMany(count=_count(v, "DeleteMany")),
    "Increment": _increment,
    "CompareAndSwap": lambda v: CompareAndSwap(
        key=_hex(_fields(v, "CompareAndSwap", "key")["key"], "key")
    ),
    "Rollback": lambda v: Rollback(tx_id=_tx_id(v, "Rollback")),
    "DeleteRange": _delete_range,
    "Revoke": _revoke,
    "WriteBatch": _write_batch,
    "CommitBatch": _commit_batch,
}


def _no_db(value: JsonValue) -> KvError:
    if not isinstance(value, list) or len(value) != 2:
        raise GoldenFormatError(f"NoDb is [package_id, db], got {value!r}")
    return NoDb(package_id=_package_id(value[0]), db=_str(value[1], "db"))


def _sizes(value: JsonValue, what: str) -> tuple[int, int]:
    fields = _fields(value, what, "size", "max")
    return _uint(fields["size"], "size"), _uint(fields["max"], "max")


def _key_too_large(value: JsonValue) -> KvError:
    size, limit = _sizes(value, "KeyTooLarge")
    return KeyTooLarge(size=size, max=limit)


def _value_too_large(value: JsonValue) -> KvError:
    size, limit = _sizes(value, "ValueTooLarge")
    return ValueTooLarge(size=size, max=limit)


def _transaction_too_large(value: JsonValue) -> KvError:
    size, limit = _sizes(value, "TransactionTooLarge")
    return TransactionTooLarge(size=size, max=limit)


def _batch_too_large(value: JsonValue) -> KvError:
    f = _fields(value, "BatchTooLarge", "count", "max")
    return BatchTooLarge(count=_uint(f["count"], "count"), max=_uint(f["max"], "max"))


def _answer_too_large(value: JsonValue) -> KvError:
    size, limit = _sizes(value, "AnswerTooLarge")
    return AnswerTooLarge(size=size, max=limit)


_UNIT_ERRORS: Final[Mapping[str, KvError]] = {
    "KeyNotFound": KeyNotFound(),
    "NoWriteCap": NoWriteCap(),
    "NoReadCap": NoReadCap(),
    "MismatchingPackageId": MismatchingPackageId(),
    "AddCapFailed": AddCapFailed(),
    "MalformedRequest": MalformedRequest(),
    "RemoteNotAllowed": RemoteNotAllowed(),
    "NotAnInteger": NotAnInteger(),
    "IntegerOverflow": IntegerOverflow(),
}
_PAYLOAD_ERRORS: Final[Mapping[str, Callable[[JsonValue], KvError]]] = {
    "NoDb": _no_db,
    "NoTx": lambda v: NoTx(tx_id=_uint(v, "NoTx")),
    "LevelDbError": lambda v: LevelDbError(message=_str(v, "LevelDbError")),
    "IOError": lambda v: IoError(message=_str(v, "IOError")),
    "KeyTooLarge": _key_too_large,
    "ValueTooLarge": _value_too_large,
    "TransactionTooLarge": _transaction_too_large,
    "TooManyTransactions": lambda v: TooManyTransactions(
        max=_uint(_fields(v, "TooManyTransactions", "max")["max"], "max")
    ),
    "CasMismatch": lambda v: CasMismatch(
        present=_bool(_fields(v, "CasMismatch", "present")["present"], "present")
    ),
    "TransactionConflict": lambda v: TransactionConflict(tx_id=_uint(v, "TransactionConflict")),
    "BatchTooLarge": _batch_too_large,
    "AnswerTooLarge": _answer_too_large,
}


def _exists(value: JsonValue) -> KvResponse:
    if not isinstance(value, bool):
        raise GoldenFormatError(f"Exists: expected true or false, got {value!r}")
    return ExistsResponse(exists=value)


def _scan_response(value: JsonValue) -> KvResponse:
    f = _fields(value, "Scan", "count", "cursor")
    return ScanResponse(
        count=_uint(f["count"], "count"), cursor=_optional_hex(f["cursor"], "cursor")
    )


def _capabilities_response(value: JsonValue) -> KvResponse:
    f = _fields(value, "Capabilities", "read", "write")
    return CapabilitiesResponse(read=_bool(f["read"], "read"), write=_bool(f["write"], "write"))


_UNIT_RESPONSES: Final[Mapping[str, KvResponse]] = {"Ok": OkResponse()}
_PAYLOAD_RESPONSES: Final[Mapping[str, Callable[[JsonValue], KvResponse]]] = {
    "BeginTx": lambda v: BeginTxResponse(tx_id=_tx_id(v, "BeginTx")),
    "Get": lambda v: GetResponse(key=_hex(v, "Get")),
    "Exists": _exists,
    "Err": lambda v: ErrResponse(error=_variant(v, "KvError", _UNIT_ERRORS, _PAYLOAD_ERRORS)),
    "Scan": _scan_response,
    "GetMany": lambda v: GetManyResponse(count=_count(v, "GetMany")),
    "DeleteRange": lambda v: DeleteRangeResponse(count=_count(v, "DeleteRange")),
    "Increment": lambda v: IncrementResponse(value=_int64(v, "Increment")),
    "Capabilities": _capabilities_response,
}
