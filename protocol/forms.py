"""The three forms a body travels in, and the answer in its request's form.

A sender of Hyperware's kv types (hyperware-ai/process_lib) writes its
requests with serde; kvruntime reads them in every form serde gives, all
derived from the classes' one ``WIRE`` declaration (``_schema.py`` compiles
it twice: byte fields as msgpack ``bin``, and as arrays of ints):

- ``Form.CANONICAL``: msgpack, byte fields ``bin`` (``codec.py``, the golden
  vectors' ``hex``; what kvruntime's own client sends);
- ``Form.ARRAY``: msgpack, byte fields arrays of ints 0..255 (rmp-serde on
  process_lib's ``Vec<u8>``);
- ``Form.JSON``: UTF-8 JSON of the same shapes, byte fields arrays of
  numbers 0..255 (``serde_json::to_vec``, what process_lib sends).

Invariants of this module (PROTOCOL.md, "Forms"):

Rule 1 - the first byte tells JSON from msgpack. A JSON body starts with
``{`` or ``"`` (serde_json writes no leading whitespace). Neither begins a
valid msgpack request or response: as msgpack, ``0x7b`` and ``0x22`` are the
positive fixints 123 and 34, a whole value that is an integer, while a body
is a map (a request) or a str or a map (a response). So no valid body is
read in two encodings.

Rule 2 - one form per msgpack body. It is CANONICAL if it decodes with
every byte field ``bin``, ARRAY if it decodes with every byte field an
array; a body mixing the two is malformed (its answer could not be in one
form). A body with no byte field (``Open``, ``BeginTx``, ``Commit``...) is
the same bytes in both: it is CANONICAL.

Rule 3 - as strict and as bounded as the canonical decoder. Everything
malformed is a DecodeError (the kv process answers MalformedRequest): a str
or a number outside 0..255, a float or a bool where a byte is due, a float
or an int past u64 where a uint is due, a duplicated key, extra or missing
fields, unknown tags, invalid UTF-8, NaN, trailing data. The size check runs
first; a JSON body's nesting is bounded (``_check_json_depth``) before
``json`` parses it, so no body reaches the recursion limit; msgpack's own
limits hold for both msgpack forms (maps of at most 16 entries; an array is
bounded by the body's size, as a key's bytes are an array of that length).

Rule 4 - the answer is in the request's form, and what the sender's types
read. A request in the ARRAY or JSON form whose action is one of
Hyperware's (``HYPERWARE_ACTIONS``) is answered with Hyperware's KvError
variants only: an error Hyperware's type lacks arrives as ``RocksDBError``
with a text (``hyperware_error``). Every other answer is kvruntime's own
value, in the request's form.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from typing import ClassVar, Final, TypeVar

import msgpack

from ._schema import (
    _ARRAY_ERROR_WIRE,
    _ARRAY_PAYLOAD_ACTIONS,
    _ARRAY_PAYLOAD_RESPONSES,
    _UNIT_ACTIONS,
    _UNIT_RESPONSES,
    _array_action_wire,
    _array_field_out,
    _array_response_wire,
    _encoder,
    _pack,
    _package_id_map,
)
from ._shapes import DecodeError, _db_name, _package_id, _strict_map, _struct, _tagged
from ._wire import Field, WireShape, newtype
from .codec import (
    _MAX_CONTAINER_LEN,
    _REQUEST_FIELDS,
    DEFAULT_MAX_BODY_BYTES,
    _at_boundary,
    _reject_constant,
    _reject_ext,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from .errors import (
    AddCapFailed,
    IoError,
    KeyNotFound,
    LevelDbError,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NoTx,
    NoWriteCap,
)
from .messages import (
    BeginTx,
    Commit,
    Delete,
    ErrResponse,
    Get,
    KvAction,
    KvError,
    KvRequest,
    KvResponse,
    Open,
    RemoveDb,
    Set,
)
from .variant import Variant, variant

__all__ = [
    "HYPERWARE_ACTIONS",
    "HYPERWARE_ERRORS",
    "Form",
    "RocksDbError",
    "answer_from_canonical",
    "decode_request_in",
    "decode_request_in_any_form",
    "decode_response_in",
    "decode_response_in_any_form",
    "encode_answer",
    "encode_request_in",
    "encode_response_in",
    "form_of",
    "hyperware_error",
    "is_err_answer",
]

T = TypeVar("T")


class Form(enum.Enum):
    """An encoding of a body (module docstring)."""

    CANONICAL = "canonical"  #: msgpack, byte fields ``bin``
    ARRAY = "array"  #: msgpack, byte fields arrays of ints
    JSON = "json"  #: JSON, byte fields arrays of numbers


#: The first bytes of a JSON body: an object or (a unit response) a string (Rule 1).
_JSON_FIRST: Final = frozenset(b'{"')


def form_of(body: bytes) -> Form:
    """The form ``body``'s answer takes when the body does not decode (Rule 1).

    JSON if it starts as JSON, else CANONICAL: the one answer to an
    undecodable body, ``{"Err": "MalformedRequest"}``, has no byte field, so
    it is the same bytes in both msgpack forms.
    """
    return Form.JSON if body[:1] and body[0] in _JSON_FIRST else Form.CANONICAL


# --- Hyperware's types (Rule 4) -------------------------------------------------------

#: The actions of Hyperware's KvAction (process_lib), which kvruntime shares.
HYPERWARE_ACTIONS: Final[frozenset[type[KvAction]]] = frozenset(
    (Open, RemoveDb, Set, Delete, Get, BeginTx, Commit)
)

#: The KvError variants Hyperware's KvError has with the same tag and shape.
HYPERWARE_ERRORS: Final[frozenset[type[KvError]]] = frozenset(
    (
        NoDb,
        KeyNotFound,
        NoTx,
        NoWriteCap,
        NoReadCap,
        MismatchingPackageId,
        AddCapFailed,
        MalformedRequest,
        IoError,
    )
)


@variant
class RocksDbError(Variant):
    """Hyperware's ``RocksDBError(String)``: how an error its type lacks reaches it.

    Not a KvError of kvruntime (it never answers it in the canonical form):
    only ``hyperware_error`` builds it, for the ARRAY and JSON answers to
    Hyperware's actions.
    """

    TAG: ClassVar[str] = "RocksDBError"
    WIRE: ClassVar[WireShape] = newtype(message=Field.TEXT)
    message: str


def hyperware_error(error: KvError) -> KvError | RocksDbError:
    """``error`` as Hyperware's KvError holds it (PROTOCOL.md, "Forms").

    Hyperware's own variants are unchanged; LevelDbError, the engine's error,
    is its RocksDBError with the same message; any other is RocksDBError with
    ``"<tag>: <display text>"``, so that neither its kind nor its numbers are lost.
    """
    if type(error) in HYPERWARE_ERRORS:
        return error
    if isinstance(error, LevelDbError):
        return RocksDbError(message=error.message)
    return RocksDbError(message=f"{error.TAG}: {error}")


_ROCKSDB_WIRE: Final = _encoder(RocksDbError, _array_field_out)


def _hyperware_response_wire(response: KvResponse) -> object:
    """``response``'s array-form wire value with its error as Hyperware's."""
    if isinstance(response, ErrResponse):
        error = hyperware_error(response.error)
        if isinstance(error, RocksDbError):
            return {ErrResponse.TAG: _ROCKSDB_WIRE(error)}
        return {ErrResponse.TAG: _ARRAY_ERROR_WIRE[type(error)](error)}
    return _array_response_wire(response)


# --- Encoding -------------------------------------------------------------------------


def _json_bytes(wire: object) -> bytes:
    # serde_json's compact form: no spaces, non-ASCII as UTF-8, only `"`, `\`
    # and control characters escaped (Python and serde_json both write \n,
    # \t, ... and \u00XX in lowercase hex for the other control characters).
    return json.dumps(wire, ensure_ascii=False, separators=(",", ":")).encode()


def _request_wire(request: KvRequest) -> dict[str, object]:
    return {
        "package_id": _package_id_map(request.package_id),
        "db": request.db,
        "action": _array_action_wire(request.action),
    }


def encode_request_in(request: KvRequest, form: Form) -> bytes:
    """``request`` encoded in ``form`` (CANONICAL is ``codec.encode_request``)."""
    match form:
        case Form.CANONICAL:
            return encode_request(request)
        case Form.ARRAY:
            return _pack(_request_wire(request))
        case Form.JSON:
            return _json_bytes(_request_wire(request))


def encode_response_in(response: KvResponse, form: Form) -> bytes:
    """``response`` encoded in ``form``, kvruntime's own value (no error mapped)."""
    match form:
        case Form.CANONICAL:
            return encode_response(response)
        case Form.ARRAY:
            return _pack(_array_response_wire(response))
        case Form.JSON:
            return _json_bytes(_array_response_wire(response))


def encode_answer(response: KvResponse, form: Form, action: KvAction | None) -> bytes:
    """The body answering a request of ``action`` that came in ``form`` (Rule 4).

    ``action`` is None when the request did not decode. In the ARRAY and JSON
    forms the answer to one of Hyperware's actions holds Hyperware's errors
    only (``hyperware_error``); otherwise this is ``encode_response_in``.
    """
    if form is Form.CANONICAL or type(action) not in HYPERWARE_ACTIONS:
        return encode_response_in(response, form)
    wire = _hyperware_response_wire(response)
    return _pack(wire) if form is Form.ARRAY else _json_bytes(wire)


def answer_from_canonical(body: bytes, form: Form, action: KvAction | None) -> bytes:
    """An answer the kv process encoded canonically (``body``), re-encoded for ``form``.

    ``body`` itself for a CANONICAL request; else as ``encode_answer``. For
    the answers the kv process builds as bytes (``hot.OK_BODY``,
    ``hot.get_response_body``). Raises DecodeError if ``body`` is not a response.
    """
    if form is Form.CANONICAL:
        return body
    return encode_answer(decode_response(body), form, action)


# --- Decoding (Rules 1-3) ----------------------------------------------------------------


def decode_request_in_any_form(
    body: bytes, *, max_size: int = DEFAULT_MAX_BODY_BYTES
) -> tuple[KvRequest, Form]:
    """The request ``body`` encodes and the form it came in; DecodeError for anything else."""
    if form_of(body) is Form.JSON:
        return decode_request_in(body, Form.JSON, max_size=max_size), Form.JSON
    try:
        return decode_request(body, max_size=max_size), Form.CANONICAL
    except DecodeError as canonical:
        return _as_array_form(canonical, decode_request_in, body, max_size), Form.ARRAY


def decode_response_in_any_form(
    body: bytes, *, max_size: int = DEFAULT_MAX_BODY_BYTES
) -> tuple[KvResponse, Form]:
    """The response ``body`` encodes and its form (kvruntime's values: a
    ``RocksDBError`` answer is not one); DecodeError for anything else."""
    if form_of(body) is Form.JSON:
        return decode_response_in(body, Form.JSON, max_size=max_size), Form.JSON
    try:
        return decode_response(body, max_size=max_size), Form.CANONICAL
    except DecodeError as canonical:
        return _as_array_form(canonical, decode_response_in, body, max_size), Form.ARRAY


def is_err_answer(body: bytes, *, max_size: int = DEFAULT_MAX_BODY_BYTES) -> bool:
    """Whether ``body`` is an ``{"Err": ...}`` answer in any form, Hyperware's
    ``RocksDBError`` included (which ``decode_response_in_any_form`` refuses)."""
    if len(body) > max_size:
        return False
    try:
        if form_of(body) is Form.JSON:
            value = _load_json(body, max_size)
        else:
            value = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except (DecodeError, ValueError, TypeError, msgpack.ExtraData, msgpack.StackError):
        return False
    return isinstance(value, dict) and list(value) == [ErrResponse.TAG]


def _as_array_form(
    canonical: DecodeError,
    decode: Callable[..., T],
    body: bytes,
    max_size: int,
) -> T:
    """``body`` read in the ARRAY form after the canonical reading failed (Rule 2)."""
    try:
        return decode(body, Form.ARRAY, max_size=max_size)
    except DecodeError as array:
        if str(array) == str(canonical):
            raise
        raise DecodeError(f"{canonical} (as byte arrays: {array})") from array


def decode_request_in(
    body: bytes, form: Form, *, max_size: int = DEFAULT_MAX_BODY_BYTES
) -> KvRequest:
    """The request ``body`` encodes in ``form``; DecodeError for anything else."""
    if form is Form.CANONICAL:
        return decode_request(body, max_size=max_size)
    return _at_boundary(_REQUEST_READERS[form], body, max_size)


def decode_response_in(
    body: bytes, form: Form, *, max_size: int = DEFAULT_MAX_BODY_BYTES
) -> KvResponse:
    """The response ``body`` encodes in ``form``; DecodeError for anything else."""
    if form is Form.CANONICAL:
        return decode_response(body, max_size=max_size)
    return _at_boundary(_RESPONSE_READERS[form], body, max_size)


def _check_size(body: bytes, max_size: int) -> None:
    if type(body) is not bytes:
        raise DecodeError(f"a body is bytes, got {type(body).__name__}")
    if len(body) > max_size:
        raise DecodeError(f"body of {len(body)} bytes is over the limit of {max_size}")
    if not body:
        raise DecodeError("empty body")


def _unpack_array_form(body: bytes, max_size: int) -> object:
    _check_size(body, max_size)
    value: object = msgpack.unpackb(
        body,
        raw=False,
        use_list=False,
        strict_map_key=True,
        object_pairs_hook=_strict_map,
        ext_hook=_reject_ext,
        max_array_len=len(body),  # a key's bytes; each takes at least one byte of the body
        max_map_len=_MAX_CONTAINER_LEN,
    )
    return value


#: How deep the schema nests its containers (``{"Err": {"NoDb": [{PackageId}, db]}}``,
#: ``{"action": {"Scan": {"prefix": [bytes]}}}``): a deeper JSON body is refused unparsed.
_MAX_JSON_DEPTH: Final = 4
#: A JSON string (escapes included), whose brackets are text, not structure.
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Every byte but the four brackets.
_NOT_BRACKETS: Final = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _check_json_depth(body: bytes) -> None:
    """Refuse a body nested deeper than the schema before ``json`` recurses into it.

    With the strings and everything but brackets removed, each pass removes
    every innermost ``[]`` and ``{}`` pair, so a body at most ``_MAX_JSON_DEPTH``
    deep is empty after that many passes; what is left is too deep (or not
    balanced, which is not JSON either). Linear work in C, for any body.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(_MAX_JSON_DEPTH):
        if not brackets:
            return
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    if brackets:
        raise DecodeError(
            f"JSON nested deeper than the schema's {_MAX_JSON_DEPTH} levels, or unbalanced"
        )


def _load_json(body: bytes, max_size: int) -> object:
    _check_size(body, max_size)
    if body[0] not in _JSON_FIRST:
        raise DecodeError("a JSON body starts with '{' or '\"'")
    text = body.decode("utf-8")  # not json's own guess: UTF-8 only, as serde_json reads
    _check_json_depth(body)
    value: object = json.loads(text, object_pairs_hook=_strict_map, parse_constant=_reject_constant)
    return value


def _request_reader(load: Callable[[bytes, int], object]) -> Callable[[bytes, int], KvRequest]:
    def read(body: bytes, max_size: int) -> KvRequest:
        fields = _struct(load(body, max_size), "KvRequest", _REQUEST_FIELDS)
        return KvRequest(
            package_id=_package_id(fields["package_id"]),
            db=_db_name(fields["db"]),
            action=_tagged(fields["action"], "KvAction", _UNIT_ACTIONS, _ARRAY_PAYLOAD_ACTIONS),
        )

    return read


def _response_reader(load: Callable[[bytes, int], object]) -> Callable[[bytes, int], KvResponse]:
    def read(body: bytes, max_size: int) -> KvResponse:
        value = load(body, max_size)
        return _tagged(value, "KvResponse", _UNIT_RESPONSES, _ARRAY_PAYLOAD_RESPONSES)

    return read


_REQUEST_READERS: Final = {
    Form.ARRAY: _request_reader(_unpack_array_form),
    Form.JSON: _request_reader(_load_json),
}
_RESPONSE_READERS: Final = {
    Form.ARRAY: _response_reader(_unpack_array_form),
    Form.JSON: _response_reader(_load_json),
}
