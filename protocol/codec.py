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

This module holds the public functions, the boundary and the msgpack/JSON
settings; the parts live beside it: each message class's ``WIRE`` (in the
vocabulary of ``_wire.py``) declares its shape once; ``_schema.py`` compiles
those into the encoders, the per-variant parsers and the tag tables;
``_shapes.py`` holds DecodeError and the shape checkers; ``hot.py`` the byte
templates of the few hot messages (derived from the encoders at import),
which the public functions try first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final, Literal, TypeVar

import msgpack

from ._schema import (
    _PAYLOAD_ACTIONS,
    _PAYLOAD_RESPONSES,
    _UNIT_ACTIONS,
    _UNIT_RESPONSES,
    _action_wire,
    _pack,
    _package_id_map,
    _response_wire,
)
from ._shapes import (
    DecodeError,
    _db_name,
    _kind,
    _package_id,
    _short,
    _strict_map,
    _struct,
    _tagged,
)
from .hot import OK_BODY, get_response_body, read_response
from .ids import IdError, PackageId
from .messages import (
    GetResponse,
    KvAction,
    KvCapabilityParams,
    KvRequest,
    KvResponse,
    OkResponse,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DecodeError",
    "decode_action",
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

# The widest container in the schema (Scan's fields) has eight entries; msgpack refuses
# anything wider than this from its header, before building it.
_MAX_CONTAINER_LEN: Final = 16

#: A KvRequest is the map of these three fields (PROTOCOL.md, "KvRequest"), in this order.
_REQUEST_FIELDS: Final = frozenset(("package_id", "db", "action"))

In = TypeVar("In", bytes, str)
Out = TypeVar("Out")


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
    # The two hot answers by exact type (a cheaper test than isinstance); any other,
    # a subclass included, the general way.
    if type(response) is OkResponse:
        return OK_BODY
    if type(response) is GetResponse and type(response.key) is bytes:
        return get_response_body(response.key)
    return _pack(_response_wire(response))


def encode_capability_params(params: KvCapabilityParams) -> str:
    """The JSON text of a kv capability's params.

    ``{"kind": "read"|"write", "db_key": [{"package_name": .., "publisher_node": ..}, db]}``
    """
    return json.dumps(
        {"kind": params.kind, "db_key": [_package_id_map(params.package_id), params.db]}
    )


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


def decode_action(data: bytes, *, max_size: int = DEFAULT_MAX_BODY_BYTES) -> KvAction:
    """Decode a KvAction alone (a request's ``action`` value, as ``prefix.RequestDecoder``
    meets it after a head it knows); raise DecodeError for anything but a valid one."""
    return _at_boundary(_action_from_bytes, data, max_size)


def decode_response(data: bytes, *, max_size: int = DEFAULT_MAX_BODY_BYTES) -> KvResponse:
    """Decode a response body; raise DecodeError for anything but a valid one."""
    if type(data) is bytes and len(data) <= max_size:
        response = read_response(data)
        if response is not None:
            return response
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


def _action_from_bytes(data: bytes, max_size: int) -> KvAction:
    return _tagged(_unpack(data, max_size), "KvAction", _UNIT_ACTIONS, _PAYLOAD_ACTIONS)


def _response_from_bytes(data: bytes, max_size: int) -> KvResponse:
    return _tagged(_unpack(data, max_size), "KvResponse", _UNIT_RESPONSES, _PAYLOAD_RESPONSES)


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
