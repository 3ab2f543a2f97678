"""Golden vectors: encoded bodies next to what they mean, for any implementation.

``golden_vectors.json`` (format in PROTOCOL.md, "Golden vectors") holds
canonical bodies (each also in the ARRAY and JSON forms, PROTOCOL.md's
"Forms"), accepted non-canonical bodies, malformed bodies (msgpack and
JSON), the answers Hyperware's types read, and capability params. This
module loads it and turns a *meaning* (the JSON rendering of a value) into
the attrs value. That direction shares with
the codec only the classes' declared shapes (their ``WIRE``, which a
meaning mirrors): its checks of each value are its own, and the bodies in
the file are independent bytes, so the vectors check the codec (and the
declarations) rather than echo them. The other direction,
``response_to_meaning`` (for tools that print responses), is derived from
the wire encoders, since a meaning is the wire shape with the substitutions
below.

A meaning mirrors the wire shape (external tagging, field names) with three
substitutions for readability: a PackageId is the text ``"name:publisher"``,
a ProcessId the text ``"process:name:publisher"``, and a byte string is
lowercase hex.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Final, Literal, TypeAlias, TypeVar, assert_never, cast

import attrs

from ._schema import _response_wire
from ._wire import UNIT, Array, Field, Newtype, Struct, Unit, declaration
from .ids import PackageId, ProcessId
from .messages import (
    KvAction,
    KvCapabilityParams,
    KvError,
    KvRequest,
    KvResponse,
)

__all__ = [
    "GOLDEN_VECTORS_FILE",
    "BodyVector",
    "CapabilityVector",
    "GoldenFormatError",
    "GoldenVectors",
    "HyperwareAnswer",
    "JsonValue",
    "MalformedBody",
    "MalformedCapability",
    "MalformedJson",
    "capability_params_from_meaning",
    "error_from_meaning",
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
    #: The same value in the JSON form (canonical vectors): serde_json's bytes, as text.
    json: str | None = None
    #: The same value in the ARRAY form (canonical vectors): msgpack, byte fields as arrays.
    array: bytes | None = None


@attrs.frozen(kw_only=True)
class MalformedBody:
    """A body every decoder must reject, and why."""

    name: str
    kind: BodyKind
    data: bytes
    why: str


@attrs.frozen(kw_only=True)
class MalformedJson:
    """A JSON body every decoder must reject, and why."""

    name: str
    kind: BodyKind
    text: str
    why: str


@attrs.frozen(kw_only=True)
class HyperwareAnswer:
    """The answer to one of Hyperware's actions failing with ``error``, in the
    JSON (``json``) and ARRAY (``array``) forms: what Hyperware's KvError reads."""

    name: str
    #: The KvError's meaning (kvruntime's value, before the mapping).
    error: JsonValue
    json: str
    array: bytes
    #: Whether Hyperware's type lacks the error, so that it arrives as another.
    mapped: bool


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
    malformed_json: tuple[MalformedJson, ...]
    hyperware_answers: tuple[HyperwareAnswer, ...]
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
        malformed_json=tuple(
            MalformedJson(
                name=_text(e, "name"), kind=_kind(e), text=_text(e, "json"), why=_text(e, "why")
            )
            for e in _entries(document, "malformed_json")
        ),
        hyperware_answers=tuple(
            HyperwareAnswer(
                name=_text(e, "name"),
                error=e.get("error"),
                json=_text(e, "json"),
                array=_hex(e.get("array_hex"), "array_hex"),
                mapped=_bool(e.get("mapped"), "mapped"),
            )
            for e in _entries(document, "hyperware_answers")
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


def error_from_meaning(meaning: JsonValue) -> KvError:
    """``"KeyNotFound"``, ``{"NoTx": 7}``... as a KvError."""
    return _variant(meaning, "KvError", _UNIT_ERRORS, _PAYLOAD_ERRORS)


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
        json=None if entry.get("json") is None else _text(entry, "json"),
        array=None if entry.get("array_hex") is None else _hex(entry["array_hex"], "array_hex"),
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


# The readers of each variant's meaning, built from the classes' ``WIRE`` (the
# shape a meaning mirrors); the checks of each field's value are this module's own.


def _meaning_field(field: Field) -> Callable[[JsonValue, str], object]:
    match field:
        case Field.BIN:
            return _hex
        case Field.OPTIONAL_BIN:
            return _optional_hex
        case Field.UINT:
            return _uint
        case Field.OPTIONAL_UINT:
            return _optional_uint
        case Field.INT64:
            return _int64
        case Field.BOOL:
            return _bool
        case Field.TEXT | Field.DB:
            return _str
        case Field.PACKAGE_ID:
            return lambda value, what: _package_id(value)
        case Field.PROCESS_ID:
            return lambda value, what: ProcessId.parse(_str(value, what))
        case Field.ERROR:
            return lambda value, what: _variant(value, "KvError", _UNIT_ERRORS, _PAYLOAD_ERRORS)
        case _:
            assert_never(field)


def _reader(cls: type[T]) -> Callable[[JsonValue], T]:
    """The ``cls`` value that the payload of its meaning describes, per ``cls.WIRE``."""
    tag, shape = declaration(cls)
    match shape:
        case Unit():
            raise TypeError(f"{cls.__name__} is a unit: its meaning has no payload")
        case Newtype(name=name, field=field):
            read = _meaning_field(field)
            return lambda value: cls(**{name: read(value, tag)})
        case Struct(fields=fields):
            names = [name for name, _ in fields]
            reads = [(name, _meaning_field(f)) for name, f in fields]

            def read_struct(value: JsonValue) -> T:
                given = _fields(value, tag, *names)
                return cls(**{name: read(given[name], name) for name, read in reads})

            return read_struct
        case Array(fields=fields):
            items = [(name, _meaning_field(f)) for name, f in fields]

            def read_array(value: JsonValue) -> T:
                if not isinstance(value, list) or len(value) != len(items):
                    raise GoldenFormatError(
                        f"{tag} is [{', '.join(n for n, _ in items)}], got {value!r}"
                    )
                return cls(
                    **{name: read(v, name) for (name, read), v in zip(items, value, strict=True)}
                )

            return read_array
        case _:
            assert_never(shape)


def _units(classes: tuple[type[T], ...]) -> Mapping[str, T]:
    return {tag: cls() for cls in classes for tag, shape in [declaration(cls)] if shape == UNIT}


def _payloads(classes: tuple[type[T], ...]) -> Mapping[str, Callable[[JsonValue], T]]:
    return {declaration(cls)[0]: _reader(cls) for cls in classes if declaration(cls)[1] != UNIT}


_ACTIONS: Final[tuple[type[KvAction], ...]] = typing.get_args(KvAction)
_RESPONSES: Final[tuple[type[KvResponse], ...]] = typing.get_args(KvResponse)
_ERRORS: Final[tuple[type[KvError], ...]] = typing.get_args(KvError)
_UNIT_ACTIONS: Final = _units(_ACTIONS)
_PAYLOAD_ACTIONS: Final = _payloads(_ACTIONS)
_UNIT_RESPONSES: Final = _units(_RESPONSES)
_PAYLOAD_RESPONSES: Final = _payloads(_RESPONSES)
_UNIT_ERRORS: Final = _units(_ERRORS)
_PAYLOAD_ERRORS: Final = _payloads(_ERRORS)
