"""The hot messages as byte templates: most traffic without the general codec.

Nearly every message is one of a few shapes: a Get, Exists, Set or Delete
outside a transaction, answered ``"Ok"``, ``{"Get": key}``, ``{"Exists": b}``
or ``KeyNotFound``. In canonical form each is a constant run of bytes and a
msgpack ``bin``, so it is written by concatenation and read by comparing
bytes, with no intermediate shape, no hook call and no schema walk: from a
sixth (writing a request) to half (reading an answer) of the general
codec's cost.

Invariants (tests check each against the general codec):
1. What these functions write is byte for byte what ``codec.encode_*``
   writes for the same message.
2. A reader here either returns exactly what ``codec.decode_*`` returns for
   the same bytes, or None, and then the caller asks the general codec. So
   the strict rules of codec.py hold unchanged: any body these templates do
   not match, valid or not, goes the general way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from .errors import KeyNotFound, MalformedRequest, NoReadCap, NoWriteCap
from .messages import (
    Delete,
    ErrResponse,
    Exists,
    ExistsResponse,
    Get,
    GetResponse,
    KvAction,
    KvResponse,
    OkResponse,
    Set,
)

__all__ = [
    "BUILT_WITHOUT_INIT",
    "CONSTANT_RESPONSES",
    "GET_RESPONSE_HEAD",
    "OK_BODY",
    "bin_header",
    "get_response_body",
    "is_get_response",
    "read_action",
    "read_response",
    "request_template",
]

A = TypeVar("A", Get, Exists, Set, Delete)

_BIN8: Final = 0xC4
_BIN16: Final = 0xC5
_BIN32: Final = 0xC6
_NIL: Final = b"\xc0"


#: The bin8 headers, made once: most keys are shorter than 256 bytes.
_BIN8_HEADERS: Final = tuple(bytes((_BIN8, size)) for size in range(0x100))


def bin_header(size: int) -> bytes:
    """The header of a msgpack ``bin`` of ``size`` bytes, in its smallest form."""
    if size < 0x100:
        return _BIN8_HEADERS[size]
    if size < 0x10000:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


def _bin_at(data: bytes, at: int) -> tuple[int, int]:
    """(start, end) of the ``bin`` whose header is at ``at``; (0, -1) if there is none.

    Any width is read (a bin16 for a short key is valid msgpack), as the
    general decoder reads it.
    """
    size = len(data)
    if at >= size:
        return 0, -1
    marker = data[at]
    if marker == _BIN8:
        start = at + 2
        end = start + data[at + 1] if start <= size else -1
    elif marker == _BIN16:
        start = at + 3
        end = start + int.from_bytes(data[at + 1 : start], "big") if start <= size else -1
    elif marker == _BIN32:
        start = at + 5
        end = start + int.from_bytes(data[at + 1 : start], "big") if start <= size else -1
    else:
        return 0, -1
    return start, end


# --- Requests: the action part of a body (prefix.py owns the part before it) ---

#: Canonical bytes of each hot action around its key: (before the key's bin, after it).
_TEMPLATES: Final[dict[type[KvAction], tuple[bytes, bytes]]] = {
    Get: (b"\x81\xa3Get", b""),
    Exists: (b"\x81\xa6Exists", b""),
    Set: (b"\x81\xa3Set\x82\xa3key", b"\xa5tx_id" + _NIL),
    Delete: (b"\x81\xa6Delete\x82\xa3key", b"\xa5tx_id" + _NIL),
}


def request_template(kind: type[KvAction]) -> tuple[bytes, bytes]:
    """The bytes of a ``kind`` action before and after its key's ``bin``.

    ``kind`` is Get or Exists, or Set or Delete outside a transaction.
    """
    return _TEMPLATES[kind]


def _builder(kind: type[A], **fixed: None) -> Callable[[bytes], A]:
    """``kind(key=key, **fixed)``, built by filling its slots.

    Frozen attrs classes set each field through object.__setattr__ in
    __init__ (~0.55 us for a Get, ~0.75 us for a Set); this sets the slots
    directly (~0.2 us). The four hot classes have no validator, converter or
    post-init (a test checks), so the object is exactly what __init__ builds.
    """
    set_key = kind.__dict__["key"].__set__
    others = tuple((kind.__dict__[name].__set__, value) for name, value in fixed.items())

    def build(key: bytes) -> A:
        action: A = object.__new__(kind)
        set_key(action, key)
        for set_field, value in others:
            set_field(action, value)
        return action

    return build


#: The hot action of each kind with the given key (outside a transaction).
_BUILD: Final[dict[type[KvAction], Callable[[bytes], KvAction]]] = {
    Get: _builder(Get),
    Exists: _builder(Exists),
    Set: _builder(Set, tx_id=None),
    Delete: _builder(Delete, tx_id=None),
}
#: The classes ``_BUILD`` fills without their __init__ (for the test that guards it).
BUILT_WITHOUT_INIT: Final = tuple(_BUILD)


#: The first five bytes of each hot action (enough to tell them apart) -> its
#: builder, its bytes before the key and their length, and its bytes after the key.
_BY_PREFIX: Final = {
    head[:5]: (_BUILD[kind], head, len(head), tail) for kind, (head, tail) in _TEMPLATES.items()
}


def read_action(body: bytes, at: int) -> KvAction | None:
    """The hot action that ``body[at:]`` encodes exactly, or None."""
    entry = _BY_PREFIX.get(body[at : at + 5])
    if entry is None:
        return None
    build, head, head_size, tail = entry
    if not body.startswith(head, at):
        return None
    start, end = _bin_at(body, at + head_size)
    if end < 0 or end + len(tail) != len(body) or not body.endswith(tail):
        return None
    return build(body[start:end])


# --- Responses ------------------------------------------------------------------

#: ``"Ok"``.
OK_BODY: Final = b"\xa2Ok"
#: The bytes of ``{"Get": key}`` before the key's ``bin``.
GET_RESPONSE_HEAD: Final = b"\x81\xa3Get"
_ERR: Final = b"\x81\xa3Err"

#: Bodies that are always the same, and their (immutable) responses.
CONSTANT_RESPONSES: Final[dict[bytes, KvResponse]] = {
    OK_BODY: OkResponse(),
    b"\x81\xa6Exists\xc3": ExistsResponse(exists=True),
    b"\x81\xa6Exists\xc2": ExistsResponse(exists=False),
    _ERR + b"\xabKeyNotFound": ErrResponse(error=KeyNotFound()),
    _ERR + b"\xa9NoReadCap": ErrResponse(error=NoReadCap()),
    _ERR + b"\xaaNoWriteCap": ErrResponse(error=NoWriteCap()),
    _ERR + b"\xb0MalformedRequest": ErrResponse(error=MalformedRequest()),
}


def get_response_body(key: bytes) -> bytes:
    """The body of ``{"Get": key}``."""
    return b"".join((GET_RESPONSE_HEAD, bin_header(len(key)), key))


def is_get_response(body: bytes) -> bool:
    """Whether ``body`` is exactly ``{"Get": key}`` (what ``read_response`` would
    read as a GetResponse), without building it."""
    return body[:5] == GET_RESPONSE_HEAD and _bin_at(body, 5)[1] == len(body)


def read_response(body: bytes) -> KvResponse | None:
    """The hot response that ``body`` encodes exactly, or None."""
    response = CONSTANT_RESPONSES.get(body)
    if response is not None:
        return response
    if body[:5] == GET_RESPONSE_HEAD:
        start, end = _bin_at(body, 5)
        if end == len(body):
            return GetResponse(key=body[start:])
    return None
