"""The codec compiled from the schema: each class's ``WIRE`` -> its encoder and its parser.

``messages.py`` and ``errors.py`` declare each variant's wire shape once, as
the class's ``WIRE`` (the vocabulary is ``_wire.py``). At import, this module
builds from those declarations, for every class of the KvAction, KvResponse
and KvError unions (``typing.get_args``, so a class added to a union is
covered without another line here):

- an *encoder*: the object's plain wire value (PROTOCOL.md's externally
  tagged shape, fields in declared order), which ``Encoder`` packs. Encoders
  do not validate db names (a test can send a request the kv process must
  reject) but refuse an integer the wire cannot carry (``_uint_out``,
  ``_int64_out`` raise ValueError);
- a *parser*: the payload of a tagged variant (already unpacked) -> the
  attrs value, every field checked by ``_shapes.py``'s checkers (codec.py's
  Rule 2). ``_UNIT_*`` map a unit tag to its one value, ``_PAYLOAD_*`` a tag
  to its parser, and ``_tagged`` picks between them. Parsers raise
  DecodeError or let foreign errors escape: ``codec.py``'s boundary turns
  those into DecodeError (Rule 1).

Packing: an ``Encoder`` owns one msgpack ``Packer`` (``autoreset``: each
``pack`` returns its bytes and starts empty), about a fifth of ``packb``'s
cost, which builds a Packer per call. A Packer's buffer is its state, so an
``Encoder`` is meant for one thread at a time. The module's shared
``ENCODER`` (behind ``codec.encode_*`` and ``blobs``) relies on msgpack's C
``Packer.pack`` (``_packer.pyx``) being one call that, for the builtin
values these shapes hold (no ``default`` hook), runs no Python code and
does not release the GIL, and that newer msgpack marks a
``cython.critical_section`` for free-threaded builds: two threads cannot
interleave inside it, and a failed ``pack`` empties the buffer (a test
checks that). msgpack's pure-Python fallback gives no such guarantee.
kvruntime encodes on its event loop thread only: its worker threads
(opening a db, a range delete, opening the capability store) encode
nothing, so no Packer is shared across threads in practice.
"""

from __future__ import annotations

import operator
import typing
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Any, Final, TypeAlias, TypeVar, assert_never, cast

import msgpack

from ._shapes import (
    _I64_MAX,
    _I64_MIN,
    DecodeError,
    _bin,
    _bool,
    _byte_array,
    _db_name,
    _int64,
    _kind,
    _optional_bin,
    _optional_byte_array,
    _optional_uint,
    _optional_uint64,
    _package_id,
    _str,
    _struct,
    _tagged,
    _uint,
    _uint64,
)
from ._wire import UNIT, Array, Field, Newtype, Struct, Unit, declaration
from .ids import PackageId, ProcessId
from .messages import KvAction, KvError, KvResponse

T = TypeVar("T")
#: A field's value -> its wire value.
Out: TypeAlias = Callable[[Any], object]
#: A decoded wire value and where it sits -> the field's value, checked.
In: TypeAlias = Callable[[object, str], Any]

#: The variants of each union, in declaration order.
ACTIONS: Final[tuple[type[KvAction], ...]] = typing.get_args(KvAction)
RESPONSES: Final[tuple[type[KvResponse], ...]] = typing.get_args(KvResponse)
ERRORS: Final[tuple[type[KvError], ...]] = typing.get_args(KvError)

_U64_MAX: Final = 2**64 - 1


# --- Field encoders ----------------------------------------------------------------


def _uint_out(value: int) -> int:
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise ValueError(f"a uint on the wire is an int in 0..2**64-1, got {value!r}")
    return value


def _optional_uint_out(value: int | None) -> int | None:
    return None if value is None else _uint_out(value)


def _int64_out(value: int) -> int:
    if type(value) is not int or not _I64_MIN <= value <= _I64_MAX:
        raise ValueError(f"an int64 on the wire is an int in -2**63..2**63-1, got {value!r}")
    return value


def _package_id_map(package_id: PackageId) -> dict[str, str]:
    return {
        "package_name": package_id.package_name,
        "publisher_node": package_id.publisher_node,
    }


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


def _same(value: object) -> object:
    return value


def _field_out(field: Field) -> Out:
    match field:
        case Field.BIN | Field.OPTIONAL_BIN | Field.DB:
            return _same
        case Field.UINT:
            return _uint_out
        case Field.OPTIONAL_UINT:
            return _optional_uint_out
        case Field.INT64:
            return _int64_out
        case Field.BOOL:
            return bool
        case Field.TEXT:
            return _free_text
        case Field.PACKAGE_ID:
            return _package_id_map
        case Field.PROCESS_ID:
            return _process_id_map
        case Field.ERROR:
            return _error_wire
        case _:
            assert_never(field)


def _encoder(cls: type, field_out: Callable[[Field], Out] = _field_out) -> Out:
    """The wire value of a ``cls`` object, per ``cls.WIRE``, each field by ``field_out``."""
    tag, shape = declaration(cls)
    match shape:
        case Unit():
            return lambda _: tag
        case Newtype(name=name, field=field):
            get = operator.attrgetter(name)
            out = field_out(field)
            if out is _same:
                return lambda value: {tag: get(value)}
            return lambda value: {tag: out(get(value))}
        case Struct(fields=fields):
            parts = tuple((name, operator.attrgetter(name), field_out(f)) for name, f in fields)

            def struct_wire(value: object) -> object:
                wire = {}
                for name, get, out in parts:  # a loop: no comprehension frame
                    wire[name] = out(get(value))
                return {tag: wire}

            return struct_wire
        case Array(fields=fields):
            items = tuple((operator.attrgetter(name), field_out(f)) for name, f in fields)
            return lambda value: {tag: [out(get(value)) for get, out in items]}
        case _:
            assert_never(shape)


# --- Field parsers -------------------------------------------------------------------


def _process_id(value: object, what: str) -> ProcessId:
    fields = _struct(value, "ProcessId", _PROCESS_ID_FIELDS)
    return ProcessId(
        process_name=_str(fields["process_name"], "ProcessId.process_name"),
        package_name=_str(fields["package_name"], "ProcessId.package_name"),
        publisher_node=_str(fields["publisher_node"], "ProcessId.publisher_node"),
    )


_PROCESS_ID_FIELDS: Final = frozenset(("process_name", "package_name", "publisher_node"))


def _field_in(field: Field) -> In:
    match field:
        case Field.BIN:
            return _bin
        case Field.OPTIONAL_BIN:
            return _optional_bin
        case Field.UINT:
            return _uint
        case Field.OPTIONAL_UINT:
            return _optional_uint
        case Field.INT64:
            return _int64
        case Field.BOOL:
            return _bool
        case Field.TEXT:
            return _str
        case Field.DB:
            return _db_name
        case Field.PACKAGE_ID:
            return _package_id
        case Field.PROCESS_ID:
            return _process_id
        case Field.ERROR:
            return lambda value, what: _tagged(value, "KvError", _UNIT_ERRORS, _PAYLOAD_ERRORS)
        case _:
            assert_never(field)


def _parser(
    cls: type[T],
    field_in: Callable[[Field], In] = _field_in,
    sequences: tuple[type, ...] = (tuple,),
) -> Callable[[object], T]:
    """The ``cls`` value that a tagged payload holds, per ``cls.WIRE``: each field
    checked by ``field_in``, an array payload one of ``sequences``."""
    tag, shape = declaration(cls)
    match shape:
        case Unit():
            raise TypeError(f"{cls.__name__} is a unit: it has no payload to parse")
        case Newtype(name=name, field=field):
            check = field_in(field)
            return lambda payload: cls(**{name: check(payload, tag)})
        case Struct(fields=fields, check=rule):
            names = frozenset(name for name, _ in fields)
            checks = tuple((name, field_in(f), f"{tag}.{name}") for name, f in fields)

            def parse_struct(payload: object) -> T:
                wire = _struct(payload, tag, names)
                values: dict[str, object] = {}
                for name, check, what in checks:  # a loop: no comprehension frame
                    values[name] = check(wire[name], what)
                if rule is not None and (problem := rule(values)) is not None:
                    raise DecodeError(f"{tag}: {problem}")
                return cls(**values)

            return parse_struct
        case Array(fields=fields):
            size = len(fields)
            items = tuple((name, field_in(f), f"{tag}.{name}") for name, f in fields)

            def parse_array(payload: object) -> T:
                if type(payload) not in sequences or len(seq := cast(Sized, payload)) != size:
                    raise DecodeError(
                        f"{tag}: expected an array of {size}, got {_kind(payload, sized=True)}"
                    )
                values: dict[str, object] = {}
                for (name, check, what), value in zip(
                    items, cast(Iterable[object], seq), strict=True
                ):
                    values[name] = check(value, what)
                return cls(**values)

            return parse_array
        case _:
            assert_never(shape)


# --- The tables ------------------------------------------------------------------------


def _units(classes: tuple[type[T], ...]) -> Mapping[str, T]:
    """The tag of each unit variant -> its one value."""
    return {tag: cls() for cls in classes for tag, shape in [declaration(cls)] if shape == UNIT}


def _payloads(
    classes: tuple[type[T], ...],
    field_in: Callable[[Field], In] = _field_in,
    sequences: tuple[type, ...] = (tuple,),
) -> Mapping[str, Callable[[object], T]]:
    """The tag of each variant with a payload -> its parser (fields by ``field_in``)."""
    return {
        declaration(cls)[0]: _parser(cls, field_in, sequences)
        for cls in classes
        if declaration(cls)[1] != UNIT
    }


def _action_wire(action: KvAction) -> object:
    """``action``'s wire value (TypeError for an object that is not a KvAction)."""
    return _ACTION_WIRE[type(action)](action)


def _response_wire(response: KvResponse) -> object:
    """``response``'s wire value."""
    return _RESPONSE_WIRE[type(response)](response)


def _error_wire(error: KvError) -> object:
    """``error``'s wire value."""
    return _ERROR_WIRE[type(error)](error)


class _Encoders(dict[type, Out]):
    """Each variant of ``union`` -> its encoder; TypeError for any other type."""

    def __init__(
        self,
        union: str,
        classes: tuple[type, ...],
        field_out: Callable[[Field], Out] = _field_out,
    ) -> None:
        super().__init__((cls, _encoder(cls, field_out)) for cls in classes)
        self.union = union

    def __missing__(self, cls: type) -> Out:
        raise TypeError(f"{cls.__name__} is not a {self.union} variant")


_ACTION_WIRE: Final = _Encoders("KvAction", ACTIONS)
_RESPONSE_WIRE: Final = _Encoders("KvResponse", RESPONSES)
_ERROR_WIRE: Final = _Encoders("KvError", ERRORS)

_UNIT_ACTIONS: Final = _units(ACTIONS)
_PAYLOAD_ACTIONS: Final = _payloads(ACTIONS)
_UNIT_RESPONSES: Final = _units(RESPONSES)
_PAYLOAD_RESPONSES: Final = _payloads(RESPONSES)
_UNIT_ERRORS: Final = _units(ERRORS)
_PAYLOAD_ERRORS: Final = _payloads(ERRORS)


# --- The byte-array forms (ARRAY and JSON, ``forms.py``) ---------------------------------
#
# The same declarations compiled a second time, with one difference: a byte
# field (``Field.BIN``, ``Field.OPTIONAL_BIN``) is an array of ints 0..255,
# as serde writes a plain ``Vec<u8>`` (rmp-serde: a msgpack array; serde_json:
# a JSON array). A uint is also bounded above (JSON can write past u64). Every
# other position is the canonical one. Array payloads are checked as tuples
# (msgpack, ``use_list=False``) or lists (JSON).


def _optional_list(value: bytes | None) -> list[int] | None:
    return None if value is None else list(value)


def _array_field_out(field: Field) -> Out:
    match field:
        case Field.BIN:
            return list
        case Field.OPTIONAL_BIN:
            return _optional_list
        case Field.ERROR:
            return _array_error_wire
        case _:
            return _field_out(field)


def _array_field_in(field: Field) -> In:
    match field:
        case Field.BIN:
            return _byte_array
        case Field.OPTIONAL_BIN:
            return _optional_byte_array
        case Field.UINT:
            return _uint64
        case Field.OPTIONAL_UINT:
            return _optional_uint64
        case Field.ERROR:
            return lambda value, what: _tagged(
                value, "KvError", _UNIT_ERRORS, _ARRAY_PAYLOAD_ERRORS
            )
        case _:
            return _field_in(field)


def _array_action_wire(action: KvAction) -> object:
    """``action``'s wire value with byte fields as arrays of ints."""
    return _ARRAY_ACTION_WIRE[type(action)](action)


def _array_response_wire(response: KvResponse) -> object:
    """``response``'s wire value with byte fields as arrays of ints."""
    return _ARRAY_RESPONSE_WIRE[type(response)](response)


def _array_error_wire(error: KvError) -> object:
    """``error``'s wire value with byte fields as arrays of ints."""
    return _ARRAY_ERROR_WIRE[type(error)](error)


_SEQUENCES: Final = (tuple, list)
_ARRAY_ACTION_WIRE: Final = _Encoders("KvAction", ACTIONS, _array_field_out)
_ARRAY_RESPONSE_WIRE: Final = _Encoders("KvResponse", RESPONSES, _array_field_out)
_ARRAY_ERROR_WIRE: Final = _Encoders("KvError", ERRORS, _array_field_out)
_ARRAY_PAYLOAD_ACTIONS: Final = _payloads(ACTIONS, _array_field_in, _SEQUENCES)
_ARRAY_PAYLOAD_RESPONSES: Final = _payloads(RESPONSES, _array_field_in, _SEQUENCES)
_ARRAY_PAYLOAD_ERRORS: Final = _payloads(ERRORS, _array_field_in, _SEQUENCES)


# --- Packing --------------------------------------------------------------------------------


class Encoder:
    """Packs wire values into msgpack's canonical (smallest) form with one reused Packer.

    For one thread at a time (see the module's header).
    """

    __slots__ = ("pack",)

    def __init__(self) -> None:
        #: A wire value -> its bytes.
        self.pack: Callable[[object], bytes] = msgpack.Packer(use_bin_type=True).pack

    def action(self, action: KvAction) -> bytes:
        """The body of ``action`` alone (a request's ``action`` value)."""
        return self.pack(_ACTION_WIRE[type(action)](action))

    def response(self, response: KvResponse) -> bytes:
        """The body of ``response``."""
        return self.pack(_RESPONSE_WIRE[type(response)](response))


#: The encoder behind the module-level functions (``codec.encode_*``, ``hot.py``'s derivations).
ENCODER: Final = Encoder()
_pack: Final = ENCODER.pack
