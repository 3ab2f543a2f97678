"""The hot messages as byte templates: most traffic without the general codec.

Nearly every message is one of a few shapes: a Get, Exists, Set or Delete
outside a transaction, answered ``"Ok"``, ``{"Get": key}``, ``{"Exists": b}``
or ``KeyNotFound``. In canonical form each is a constant run of bytes and a
msgpack ``bin``, so it is written by concatenation and read by comparing
bytes, with no intermediate shape, no hook call and no schema walk: from a
sixth (writing a request) to half (reading an answer) of the general
codec's cost.

Every template and constant body here is derived at import from the
general encoder (``_schema.ENCODER``): a hot message is encoded with
``MARKER`` as its key, and the bytes around the marker's ``bin`` are the
template (``split_at_marker``). No byte of a message's shape is written
here; only msgpack's own ``bin`` headers are read and written directly.

Invariants (tests check each against the general codec):
1. What these functions write is byte for byte what ``codec.encode_*``
   writes for the same message (by construction, and checked).
2. A reader here either returns exactly what ``codec.decode_*`` returns for
   the same bytes, or None, and then the caller asks the general codec. So
   the strict rules of codec.py hold unchanged: any body these templates do
   not match, valid or not, goes the general way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ._schema import ENCODER
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
    "MARKER",
    "OK_BODY",
    "bin_header",
    "get_response_body",
    "is_get_response",
    "is_ok",
    "read_action",
    "read_response",
    "request_template",
    "split_at_marker",
]

_BIN8: Final = 0xC4
_BIN16: Final = 0xC5
_BIN32: Final = 0xC6


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


#: The key the templates are cut around: bytes that occur in no encoding
#: they are put in (``split_at_marker`` checks that they occur once).
MARKER: Final = b"\x00hot.py: the key goes here\xff"


def split_at_marker(body: bytes) -> tuple[bytes, bytes]:
    """The bytes of ``body`` before and after the ``bin`` of ``MARKER`` it holds once."""
    marked = bin_header(len(MARKER)) + MARKER
    before, found, after = body.partition(marked)
    if not found or marked in after:
        raise ValueError(f"the marker occurs {body.count(marked)} times in {body!r}")
    return before, after


# --- Requests: the action part of a body (prefix.py owns the part before it) ---

#: The hot actions (outside a transaction, as their default ``tx_id`` is) ->
#: their trusted constructor from a key (the classes' ``_parsed``).
_BUILD: Final[dict[type[KvAction], Callable[[bytes], KvAction]]] = {
    Get: Get._parsed,
    Exists: Exists._parsed,
    Set: Set._parsed,
    Delete: Delete._parsed,
}
#: The classes built without their __init__ (for the test that guards it).
BUILT_WITHOUT_INIT: Final = tuple(_BUILD)

#: Canonical bytes of each hot action around its key: (before the key's bin, after it).
_TEMPLATES: Final[dict[type[KvAction], tuple[bytes, bytes]]] = {
    kind: split_at_marker(ENCODER.action(build(MARKER))) for kind, build in _BUILD.items()
}


def request_template(kind: type[KvAction]) -> tuple[bytes, bytes]:
    """The bytes of a ``kind`` action before and after its key's ``bin``.

    ``kind`` is Get or Exists, or Set or Delete outside a transaction.
    """
    return _TEMPLATES[kind]


#: How many first bytes of a hot action tell them apart (checked below).
_TELL: Final = 5
#: The first ``_TELL`` bytes of each hot action -> its builder, its bytes
#: before the key and their length, and its bytes after the key.
_BY_PREFIX: Final = {
    head[:_TELL]: (_BUILD[kind], head, len(head), tail) for kind, (head, tail) in _TEMPLATES.items()
}
if len(_BY_PREFIX) != len(_TEMPLATES) or min(map(len, _BY_PREFIX)) < _TELL:
    raise AssertionError(f"the hot actions' first {_TELL} bytes do not tell them apart")


def read_action(body: bytes, at: int) -> KvAction | None:
    """The hot action that ``body[at:]`` encodes exactly, or None."""
    entry = _BY_PREFIX.get(body[at : at + _TELL])
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
OK_BODY: Final = ENCODER.response(OkResponse())


def is_ok(body: bytes) -> bool:
    """Whether ``body`` is the canonical ``"Ok"`` answer (a plain write's success)."""
    return body == OK_BODY


def _get_response_head() -> bytes:
    head, tail = split_at_marker(ENCODER.response(GetResponse._parsed(MARKER)))
    if tail:  # read_response relies on the key ending the body
        raise AssertionError(f"a GetResponse has bytes after its key: {tail!r}")
    return head


#: The bytes of ``{"Get": key}`` before the key's ``bin``.
GET_RESPONSE_HEAD: Final = _get_response_head()
_GET_HEAD_SIZE: Final = len(GET_RESPONSE_HEAD)

#: Bodies that are always the same, and their (immutable) responses.
CONSTANT_RESPONSES: Final[dict[bytes, KvResponse]] = {
    ENCODER.response(response): response
    for response in (
        OkResponse(),
        ExistsResponse(exists=True),
        ExistsResponse(exists=False),
        ErrResponse(error=KeyNotFound()),
        ErrResponse(error=NoReadCap()),
        ErrResponse(error=NoWriteCap()),
        ErrResponse(error=MalformedRequest()),
    )
}


def get_response_body(key: bytes) -> bytes:
    """The body of ``{"Get": key}``."""
    return b"".join((GET_RESPONSE_HEAD, bin_header(len(key)), key))


def is_get_response(body: bytes) -> bool:
    """Whether ``body`` is exactly ``{"Get": key}`` (what ``read_response`` would
    read as a GetResponse), without building it."""
    return body[:_GET_HEAD_SIZE] == GET_RESPONSE_HEAD and _bin_at(body, _GET_HEAD_SIZE)[1] == len(
        body
    )


def read_response(body: bytes) -> KvResponse | None:
    """The hot response that ``body`` encodes exactly, or None."""
    response = CONSTANT_RESPONSES.get(body)
    if response is not None:
        return response
    if body[:_GET_HEAD_SIZE] == GET_RESPONSE_HEAD:
        start, end = _bin_at(body, _GET_HEAD_SIZE)
        if end == len(body):
            return GetResponse._parsed(body[start:])
    return None
