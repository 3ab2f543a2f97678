"""Signed envelopes: what one node sends another, and when a receiver believes it.

Pure: bytes in, values out, no I/O and no clock of its own (callers pass the
time), so every rule here is unit-tested without a network.

Wire form (msgpack): ``[VERSION, signed, signature]`` where ``signed`` is the
msgpack of ``[kind, from_node, to_node, seq, sent_ms, payload]`` and
``signature`` is the Ed25519 signature of ``signed`` by ``from_node``'s key.
Signed envelopes carry the handshake (``session``); every other frame is a
session frame, ``[VERSION, sid, body, tag]`` (``session.open_session_frame``).
``unpack_frame`` reads the outer array of either form.

Invariants:
1. ``open_envelope`` returns an ``Envelope`` only when the frame is at most
   ``MAX_FRAME`` bytes, of this ``VERSION``, addressed to the receiving node,
   from a node in ``peers``, and signed by that node's key; otherwise it
   raises ``BadEnvelope`` whose ``reason`` names the rule broken (a receiver
   counts it and drops the frame). Nothing unsigned is ever parsed into a
   message: the payload is decoded only after the signature verified.
2. Replays are refused (``ReplayGuard``): an envelope is accepted once, and
   only while ``sent_ms`` lies within ``WINDOW_MS`` of the receiver's clock.
   A sender's ``seq`` grows strictly (``Sequence``: at least the wall clock in
   nanoseconds, so a restarted node starts above every seq it used before);
   a receiver keeps, per peer, the highest seq seen and which of the
   ``SEQ_WINDOW`` below it were seen, so envelopes reordered a little are
   still taken and a copy never is.
3. The signature covers the receiving node: an envelope for one node cannot
   be replayed to another.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

import attrs
import msgpack
import nacl.exceptions
import nacl.signing

__all__ = [
    "MAX_FRAME",
    "SEQ_WINDOW",
    "VERSION",
    "WINDOW_MS",
    "BadEnvelope",
    "Envelope",
    "Kind",
    "ReplayGuard",
    "Sequence",
    "open_envelope",
    "open_signed",
    "seal",
    "unpack_frame",
]

#: The envelope format this runtime speaks.
VERSION: Final = 3
#: The largest frame a receiver reads (NATS's default max_payload).
MAX_FRAME: Final = 1024 * 1024
#: How far (ms) an envelope's send time may lie from the receiver's clock.
WINDOW_MS: Final = 60_000
#: How many seqs below the highest a receiver still accepts (once each).
SEQ_WINDOW: Final = 4096


class Kind(enum.IntEnum):
    """What an envelope carries."""

    REQUEST = 1
    RESPONSE = 2
    #: The request could not be delivered: payload ``[id, send error kind, detail]``.
    REFUSAL = 3
    PING = 4
    #: A handshake's opening, signed: payload ``[sid, ephemeral key]`` (``session``).
    HELLO = 5
    #: A handshake's answer, signed: payload ``[sid, your ephemeral key, mine]``.
    WELCOME = 6
    #: "I hold no session ``sid`` with you: handshake again", signed: payload ``[sid]``.
    REKEY = 7


_KINDS: Final = frozenset(int(kind) for kind in Kind)


class BadEnvelope(ValueError):
    """A frame from the network that is not believed; ``reason`` names the rule."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@attrs.frozen(kw_only=True)
class Envelope:
    """A verified envelope: ``from_node`` signed it for ``to_node``."""

    kind: Kind
    from_node: str
    to_node: str
    seq: int
    sent_ms: int
    #: The message, as msgpack-able plain values (decoded only after verification).
    payload: object


def seal(envelope: Envelope, key: nacl.signing.SigningKey) -> bytes:
    """The frame of ``envelope``, signed with ``key`` (``from_node``'s own key)."""
    signed = msgpack.packb(
        [
            int(envelope.kind),
            envelope.from_node,
            envelope.to_node,
            envelope.seq,
            envelope.sent_ms,
            envelope.payload,
        ],
        use_bin_type=True,
    )
    signature = key.sign(signed).signature
    frame: bytes = msgpack.packb([VERSION, signed, signature], use_bin_type=True)
    return frame


def unpack_frame(frame: bytes) -> list[object]:
    """The outer array of a frame of either form, of this VERSION; else BadEnvelope."""
    if len(frame) > MAX_FRAME:
        raise BadEnvelope("oversized", f"{len(frame)} bytes")
    try:
        outer = msgpack.unpackb(frame, raw=False, max_bin_len=MAX_FRAME)
    except Exception as exc:  # msgpack raises a zoo of types on garbage
        raise BadEnvelope("garbage", type(exc).__name__) from None
    if not (isinstance(outer, list) and len(outer) in (3, 4)):
        raise BadEnvelope("garbage", "not a [version, ...] array of 3 or 4")
    if outer[0] != VERSION:
        raise BadEnvelope("version", repr(outer[0])[:40])
    return outer


def open_envelope(
    frame: bytes, *, me: str, peers: Mapping[str, nacl.signing.VerifyKey]
) -> Envelope:
    """The signed envelope in ``frame`` if it is to be believed (invariant 1); else BadEnvelope.

    Replays are the ``ReplayGuard``'s to refuse, after this.
    """
    outer = unpack_frame(frame)
    if len(outer) != 3:
        raise BadEnvelope("garbage", "not a [version, signed, signature] array")
    return open_signed(outer, me=me, peers=peers)


def open_signed(
    outer: list[object], *, me: str, peers: Mapping[str, nacl.signing.VerifyKey]
) -> Envelope:
    """``open_envelope`` of an outer array ``unpack_frame`` gave."""
    _, signed, signature = outer
    if not (isinstance(signed, bytes) and isinstance(signature, bytes)):
        raise BadEnvelope("garbage", "signed part or signature is not bytes")
    # Read who signed it and for whom without trusting the rest yet.
    try:
        fields = msgpack.unpackb(signed, raw=False)
    except Exception as exc:
        raise BadEnvelope("garbage", type(exc).__name__) from None
    if not (isinstance(fields, list) and len(fields) == 6):
        raise BadEnvelope("garbage", "signed part is not a 6-array")
    kind, from_node, to_node, seq, sent_ms, payload = fields
    if not isinstance(from_node, str) or from_node not in peers:
        raise BadEnvelope("unknown peer", repr(from_node)[:80])
    try:
        peers[from_node].verify(signed, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        raise BadEnvelope("bad signature", f"claims {from_node}") from None
    if to_node != me:
        raise BadEnvelope("wrong node", f"for {to_node!r}"[:80])
    if not (type(seq) is int and type(sent_ms) is int and type(kind) is int and kind in _KINDS):
        raise BadEnvelope("garbage", "bad kind, seq or time")
    return Envelope(
        kind=Kind(kind), from_node=from_node, to_node=me, seq=seq, sent_ms=sent_ms, payload=payload
    )


@attrs.define(eq=False)
class Sequence:
    """A sender's seqs: strictly growing, and never below the wall clock in ns."""

    _last: int = 0

    def next(self, now_ns: int) -> int:
        """The next seq, given the wall clock in nanoseconds."""
        self._last = max(self._last + 1, now_ns)
        return self._last


@attrs.define(eq=False)
class ReplayGuard:
    """Accepts each (peer, seq) once, and only fresh ones (invariant 2)."""

    #: peer -> (highest seq seen, bitmap of the SEQ_WINDOW seqs below it: bit i is highest-1-i).
    _seen: dict[str, tuple[int, int]] = attrs.Factory(dict)

    def check(self, envelope: Envelope, now_ms: int) -> None:
        """Record ``envelope`` as seen, or raise BadEnvelope if it is stale or a replay."""
        if abs(now_ms - envelope.sent_ms) > WINDOW_MS:
            raise BadEnvelope("stale", f"sent {now_ms - envelope.sent_ms} ms ago")
        seq, peer = envelope.seq, envelope.from_node
        highest, below = self._seen.get(peer, (None, 0))
        if highest is None:
            self._seen[peer] = (seq, 0)
            return
        if seq > highest:
            shift = seq - highest
            below = ((below << shift) | (1 << (shift - 1))) if shift <= SEQ_WINDOW else 0
            self._seen[peer] = (seq, below & ((1 << SEQ_WINDOW) - 1))
            return
        if seq == highest:
            raise BadEnvelope("replay", f"seq {seq} from {peer} seen")
        gap = highest - seq - 1
        if gap >= SEQ_WINDOW:
            raise BadEnvelope("replay", f"seq {seq} from {peer} is below the window")
        if below >> gap & 1:
            raise BadEnvelope("replay", f"seq {seq} from {peer} seen")
        self._seen[peer] = (highest, below | (1 << gap))
