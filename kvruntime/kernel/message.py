"""What travels on the bus: requests, responses and the capabilities they carry.

These are in-process values, never encoded: ``body`` and ``blob`` are the
bytes of the application protocol (for kv:distro:sys, ``protocol.codec``).
On the bus they are exact ``bytes``, never a subclass: ``exact_bytes`` makes
them so where a message enters (``ProcessContext`` and the network seam), so
what a receiver measures with ``len`` is what it stores.

``Request`` and ``Response`` are slotted ``attrs.define`` classes rather than
frozen ones (STYLE rule 1), because they are built on every message: a frozen
attrs instance of this size costs ~13.7k instructions to build, a slotted
mutable one ~7.2k (callgrind), and a round trip builds two. Nothing is lost
by it: the bus builds each message for one send, checks it before delivery,
and hands the receiver the only reference; treat them as values. For the
same reason their fields may be passed by position (the runtime's own hot
paths do: 0.26 µs against 0.71 µs by keyword, for eight fields); code
elsewhere should name them.
"""

from __future__ import annotations

import json
from typing import TypeAlias

import attrs

from protocol.ids import Address

__all__ = [
    "BytesLike",
    "Capability",
    "Message",
    "Request",
    "Response",
    "canonical_json",
    "exact_bytes",
]

#: What a sender may pass as a body or blob; the bus carries it as exact ``bytes``.
BytesLike: TypeAlias = bytes | bytearray | memoryview


def exact_bytes(value: object, what: str) -> bytes:
    """``value`` as exact ``bytes``: bytes-like values are copied once, anything else refused.

    A ``bytes`` or ``bytearray`` subclass is copied from its real contents,
    so an overridden ``__len__``, ``__bytes__`` or ``__getitem__`` cannot
    lie about them. Raises TypeError naming ``what`` for anything else.
    """
    if type(value) is bytes:
        return value
    if isinstance(value, bytes):
        return bytes.__getitem__(value, slice(None))  # a real copy, of the real length
    if isinstance(value, bytearray):
        return bytes(bytearray.copy(value))
    if isinstance(value, memoryview):
        return value.tobytes()
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def canonical_json(text: str) -> str:
    """The canonical spelling of a JSON text, so equal values compare equal.

    Raises ValueError when ``text`` is not JSON.
    """
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@attrs.frozen(kw_only=True)
class Capability:
    """A right issued by ``issuer``; ``params`` is a JSON text saying what it grants.

    Two capabilities are equal when their issuers are equal and their params
    parse to the same JSON value, whatever the spelling.
    """

    issuer: Address
    params: str = attrs.field(converter=canonical_json)
    #: A string naming this capability exactly: issuer and canonical params.
    #: Computed once, since it is the lookup key of every capability check.
    key: str = attrs.field(init=False, eq=False, repr=False)

    @key.default
    def _key(self) -> str:
        return f"{self.issuer}\x00{self.params}"


@attrs.define(eq=True)
class Request:
    """A request from ``source`` to ``target``.

    ``expects_response`` is the time in seconds the sender waits for an
    answer, or None for a request that gets no answer.
    """

    id: int
    source: Address
    target: Address
    body: bytes
    blob: bytes | None = None
    metadata: str | None = None
    capabilities: tuple[Capability, ...] = ()
    expects_response: float | None = None
    #: The bus's ``Slot`` of the process this request was delivered to, until that
    #: process answers it: set by the bus, checked (by identity) and cleared by
    #: ``ProcessContext.respond``, so a hand-built or already answered request
    #: cannot be answered. Typed ``object`` so that messages need not know the bus.
    _answerer: object | None = attrs.field(default=None, init=False, eq=False, repr=False)


@attrs.define(eq=True)
class Response:
    """The answer to the request with the same ``id``."""

    id: int
    source: Address
    target: Address
    body: bytes
    blob: bytes | None = None
    metadata: str | None = None
    capabilities: tuple[Capability, ...] = ()


Message: TypeAlias = Request | Response
