"""Sessions between two nodes: one signed handshake, then a keyed MAC per frame.

Signing every frame (Ed25519: ~22 µs to seal, ~60 µs to open) is most of a
remote request's cost, so two nodes sign only a handshake, and authenticate
every later frame with a session key it agreed (BLAKE2b keyed MAC, ~1 µs).
Pure: bytes in, values out, no I/O and no clock (callers pass the time);
the only side effect is drawing fresh randomness for ephemeral keys.

The handshake (initiator I, responder R; both signed envelopes, ``envelope.seal``):
- ``Kind.HELLO`` I -> R, payload ``[sid, I's ephemeral X25519 public key]``,
  ``sid`` 16 fresh random bytes naming the session.
- ``Kind.WELCOME`` R -> I, payload ``[sid, I's ephemeral key, R's ephemeral key]``.
- Both derive ``BLAKE2b-512(X25519(ephemerals), person="kvr-session-2",
  data = sid | I's key | R's key | I's name | 0 | R's name)``: the first half
  keys frames I -> R, the second R -> I.

Session frames (msgpack): ``[VERSION, sid, body, tag]``, ``body`` the msgpack
of ``[kind, from_node, to_node, seq, sent_ms, payload]`` as in a signed
envelope, ``tag`` the 32-byte keyed BLAKE2b of ``body`` under the sending
direction's key.

Invariants:
1. A session exists only after a verified handshake: R makes one only from a
   HELLO signed by the peer's node key (and fresh: the ``ReplayGuard``); I
   only from a WELCOME signed by the peer that echoes I's own ephemeral key
   and sid, so an old WELCOME, or one from anyone else, makes nothing.
   Ephemeral private keys never leave the process and are new per handshake:
   a replayed HELLO (say to a restarted R) gives whoever replays it no key,
   and frames I sends under its real session fail R's MAC check.
2. ``open_session_frame`` returns an ``Envelope`` only when the frame (read
   by ``envelope.unpack_frame``: at most ``MAX_FRAME`` bytes, of this
   ``VERSION``) names a session the receiver holds, its tag verifies under
   that session's receiving key, and its body says it is from that
   session's peer to the receiver; otherwise
   ``BadEnvelope`` (reason ``unknown session`` when the sid is not held, so a
   receiver can ask the sender to handshake again). Nothing is decoded
   before the tag verified. Replays are the ``ReplayGuard``'s to refuse, as
   for signed envelopes (seqs and times are shared by both forms).
3. Each direction has its own key: a frame cannot be reflected back to its sender.

A session lasts as long as both nodes keep it: a node that restarts forgets
its sessions, and its peers open new ones when it says so (``Kind.REKEY``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any, Final

import attrs
import msgpack
import nacl.bindings
import nacl.exceptions
import nacl.public

from .envelope import VERSION, BadEnvelope, Envelope, Kind

__all__ = [
    "SID_BYTES",
    "Handshake",
    "Session",
    "accept_hello",
    "finish_handshake",
    "open_session_frame",
    "seal_fields",
    "seal_in_session",
    "start_handshake",
]

#: Bytes of a session id.
SID_BYTES: Final = 16
_KEY_BYTES: Final = 32
_TAG_BYTES: Final = 32
_PERSON: Final = b"kvr-session-2"
#: What may travel in a session (the handshake's own kinds are signed).
SESSION_KINDS: Final = frozenset({Kind.REQUEST, Kind.RESPONSE, Kind.REFUSAL, Kind.PING})
_SESSION_KIND_VALUES: Final = frozenset(int(kind) for kind in SESSION_KINDS)


@attrs.frozen(kw_only=True, repr=False)
class Session:
    """Agreed keys between this node and ``peer`` (``initiator``: this node said HELLO)."""

    sid: bytes
    peer: str
    initiator: bool
    send_key: bytes
    receive_key: bytes
    #: BLAKE2b keyed with each key, copied per frame (keying costs a block).
    _send_mac: Any = attrs.field(init=False, eq=False, hash=False)
    _receive_mac: Any = attrs.field(init=False, eq=False, hash=False)

    @_send_mac.default
    def _keyed_send(self) -> Any:
        return hashlib.blake2b(key=self.send_key, digest_size=_TAG_BYTES)

    @_receive_mac.default
    def _keyed_receive(self) -> Any:
        return hashlib.blake2b(key=self.receive_key, digest_size=_TAG_BYTES)

    def __repr__(self) -> str:  # never print keys
        return f"Session(sid={self.sid.hex()}, peer={self.peer!r}, initiator={self.initiator})"


@attrs.frozen(kw_only=True, repr=False)
class Handshake:
    """An initiator's HELLO awaiting its WELCOME."""

    sid: bytes
    me: str
    peer: str
    private: nacl.public.PrivateKey

    @property
    def hello(self) -> list[bytes]:
        """The HELLO payload."""
        return [self.sid, bytes(self.private.public_key)]

    def __repr__(self) -> str:
        return f"Handshake(sid={self.sid.hex()}, peer={self.peer!r})"


def start_handshake(me: str, peer: str) -> Handshake:
    """A fresh handshake from ``me`` to ``peer``: send ``hello`` in a signed ``Kind.HELLO``."""
    return Handshake(
        sid=os.urandom(SID_BYTES), me=me, peer=peer, private=nacl.public.PrivateKey.generate()
    )


def _keys(
    private: nacl.public.PrivateKey,
    theirs: bytes,
    sid: bytes,
    initiator: tuple[str, bytes],
    responder: tuple[str, bytes],
) -> tuple[bytes, bytes]:
    """(initiator -> responder key, responder -> initiator key)."""
    try:
        shared = nacl.bindings.crypto_scalarmult(bytes(private), theirs)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise BadEnvelope("bad handshake", f"no shared key: {exc}") from None
    data = b"".join(
        [sid, initiator[1], responder[1], initiator[0].encode(), b"\0", responder[0].encode()]
    )
    both = hashlib.blake2b(data, key=shared, person=_PERSON, digest_size=2 * _KEY_BYTES).digest()
    return both[:_KEY_BYTES], both[_KEY_BYTES:]


def _public(value: object, what: str) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise BadEnvelope("bad handshake", f"{what} is not a 32-byte key")
    return value


def _sid(value: object) -> bytes:
    if type(value) is not bytes or len(value) != SID_BYTES:
        raise BadEnvelope("bad handshake", "sid is not 16 bytes")
    return value


def accept_hello(hello: Envelope) -> tuple[Session, list[bytes]]:
    """The responder's side: the session a verified HELLO asks for, and the WELCOME payload."""
    if hello.kind is not Kind.HELLO:
        raise BadEnvelope("bad handshake", f"{hello.kind.name} is not a HELLO")
    payload = hello.payload
    if not (isinstance(payload, list) and len(payload) == 2):
        raise BadEnvelope("bad handshake", "a HELLO is [sid, key]")
    sid, theirs = _sid(payload[0]), _public(payload[1], "the initiator's key")
    private = nacl.public.PrivateKey.generate()
    mine = bytes(private.public_key)
    to_me, from_me = _keys(private, theirs, sid, (hello.from_node, theirs), (hello.to_node, mine))
    session = Session(
        sid=sid, peer=hello.from_node, initiator=False, send_key=from_me, receive_key=to_me
    )
    return session, [sid, theirs, mine]


def finish_handshake(handshake: Handshake, welcome: Envelope) -> Session:
    """The initiator's side: the session a verified WELCOME to ``handshake`` agrees."""
    if welcome.kind is not Kind.WELCOME or welcome.from_node != handshake.peer:
        raise BadEnvelope("bad handshake", f"{welcome.kind.name} from {welcome.from_node!r}")
    payload = welcome.payload
    if not (isinstance(payload, list) and len(payload) == 3):
        raise BadEnvelope("bad handshake", "a WELCOME is [sid, your key, my key]")
    sid, echoed = payload[0], payload[1]
    mine = bytes(handshake.private.public_key)
    if sid != handshake.sid or echoed != mine:
        raise BadEnvelope("bad handshake", "a WELCOME to another HELLO")
    theirs = _public(payload[2], "the responder's key")
    from_me, to_me = _keys(
        handshake.private, theirs, handshake.sid, (handshake.me, mine), (handshake.peer, theirs)
    )
    return Session(
        sid=handshake.sid, peer=handshake.peer, initiator=True, send_key=from_me, receive_key=to_me
    )


def _tag(keyed: Any, body: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(body)
    tag: bytes = mac.digest()
    return tag


_pack = msgpack.Packer(use_bin_type=True).pack


def seal_in_session(envelope: Envelope, session: Session) -> bytes:
    """The frame of ``envelope`` (from this node to ``session.peer``) under ``session``."""
    return seal_fields(
        session,
        envelope.kind,
        envelope.from_node,
        envelope.to_node,
        envelope.seq,
        envelope.sent_ms,
        envelope.payload,
    )


def seal_fields(
    session: Session,
    kind: Kind,
    from_node: str,
    to_node: str,
    seq: int,
    sent_ms: int,
    payload: object,
) -> bytes:
    """``seal_in_session`` of the envelope of these fields, without making it (the hot path)."""
    body = _pack([int(kind), from_node, to_node, seq, sent_ms, payload])
    frame: bytes = _pack([VERSION, session.sid, body, _tag(session._send_mac, body)])
    return frame


def open_session_frame(outer: list[object], *, me: str, sessions: dict[bytes, Session]) -> Envelope:
    """The envelope of an unpacked session frame ``[VERSION, sid, body, tag]`` (invariant 2).

    ``outer`` is the frame's outer array as ``envelope.unpack_frame`` gave it.
    """
    _, sid, body, tag = outer
    if not (type(sid) is bytes and type(body) is bytes and type(tag) is bytes):
        raise BadEnvelope("garbage", "sid, body or tag is not bytes")
    session = sessions.get(sid)
    if session is None:
        raise BadEnvelope("unknown session", sid.hex()[:32])
    if not hmac.compare_digest(_tag(session._receive_mac, body), tag):
        raise BadEnvelope("bad mac", f"session with {session.peer}")
    try:
        fields = msgpack.unpackb(body, raw=False)
    except Exception as exc:  # authentic but not msgpack: the peer is broken
        raise BadEnvelope("garbage", type(exc).__name__) from None
    if not (isinstance(fields, list) and len(fields) == 6):
        raise BadEnvelope("garbage", "body is not a 6-array")
    kind, from_node, to_node, seq, sent_ms, payload = fields
    if from_node != session.peer:
        raise BadEnvelope("wrong node", f"from {from_node!r} in a session with {session.peer}"[:80])
    if to_node != me:
        raise BadEnvelope("wrong node", f"for {to_node!r}"[:80])
    if not (
        type(seq) is int
        and type(sent_ms) is int
        and type(kind) is int
        and kind in _SESSION_KIND_VALUES
    ):
        raise BadEnvelope("garbage", "bad kind, seq or time")
    return Envelope(
        kind=Kind(kind),
        from_node=session.peer,
        to_node=me,
        seq=seq,
        sent_ms=sent_ms,
        payload=payload,
    )
