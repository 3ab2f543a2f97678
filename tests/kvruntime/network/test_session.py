"""The session rules, pure: a signed handshake agrees keys, then a MAC authenticates each frame."""

from __future__ import annotations

import msgpack
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvruntime.kernel.envelope import (
    VERSION,
    BadEnvelope,
    Envelope,
    Kind,
    open_envelope,
    seal,
    unpack_frame,
)
from kvruntime.kernel.session import (
    Handshake,
    Session,
    accept_hello,
    finish_handshake,
    open_session_frame,
    seal_in_session,
    start_handshake,
)

ALICE = nacl.signing.SigningKey(b"a" * 32)
BOB = nacl.signing.SigningKey(b"b" * 32)
CAROL = nacl.signing.SigningKey(b"c" * 32)
NOW = 1_800_000_000_000


def signed(kind: Kind, sender: str, to: str, payload: object, seq: int = 1) -> Envelope:
    return Envelope(kind=kind, from_node=sender, to_node=to, seq=seq, sent_ms=NOW, payload=payload)


def handshake() -> tuple[Handshake, Session, Session]:
    """alice's handshake with bob carried out: (alice's handshake, her session, his)."""
    hello = start_handshake("alice.os", "bob.os")
    theirs, welcome = accept_hello(signed(Kind.HELLO, "alice.os", "bob.os", hello.hello))
    mine = finish_handshake(hello, signed(Kind.WELCOME, "bob.os", "alice.os", welcome))
    return hello, mine, theirs


def frame_of(
    session: Session,
    payload: object = b"hi",
    *,
    sender: str = "alice.os",
    to: str = "bob.os",
    seq: int = 2,
) -> bytes:
    return seal_in_session(signed(Kind.REQUEST, sender, to, payload, seq), session)


def opened(frame: bytes, session: Session, me: str = "bob.os") -> Envelope:
    return open_session_frame(unpack_frame(frame), me=me, sessions={session.sid: session})


def reason(frame: bytes, session: Session, me: str = "bob.os") -> str:
    with pytest.raises(BadEnvelope) as caught:
        opened(frame, session, me)
    return caught.value.reason


def test_both_sides_agree_one_key_per_direction() -> None:
    _, alices, bobs = handshake()
    assert (alices.sid, alices.peer, bobs.peer) == (bobs.sid, "bob.os", "alice.os")
    assert alices.send_key == bobs.receive_key
    assert alices.receive_key == bobs.send_key
    assert alices.send_key != alices.receive_key
    assert "key" not in repr(alices).replace("Session", "")  # keys never printed


payloads = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary() | st.text(),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


@given(payload=payloads, seq=st.integers(0, 2**63))
def test_a_session_frame_opens_to_itself(payload: object, seq: int) -> None:
    _, alices, bobs = handshake()
    sent = signed(Kind.RESPONSE, "alice.os", "bob.os", payload, seq)
    assert opened(seal_in_session(sent, alices), bobs) == sent


def test_any_change_to_a_frame_breaks_its_mac() -> None:
    _, alices, bobs = handshake()
    version, sid, body, tag = msgpack.unpackb(frame_of(alices))
    forged = body.replace(b"hi", b"ho")
    assert forged != body
    assert reason(msgpack.packb([version, sid, forged, tag]), bobs) == "bad mac"
    other_body = msgpack.unpackb(frame_of(alices, seq=3))[2]
    assert reason(msgpack.packb([version, sid, other_body, tag]), bobs) == "bad mac"


def test_a_frame_reflected_to_its_sender_is_not_taken() -> None:
    _, alices, _ = handshake()
    assert reason(frame_of(alices), alices, me="alice.os") == "bad mac"


def test_a_frame_of_a_session_not_held_asks_for_a_handshake() -> None:
    _, alices, _ = handshake()
    _, _, someone_elses = handshake()
    assert reason(frame_of(alices), someone_elses) == "unknown session"


def test_a_session_speaks_only_for_its_peer_and_to_its_receiver() -> None:
    _, alices, bobs = handshake()
    assert reason(frame_of(alices, sender="carol.os"), bobs) == "wrong node"
    assert reason(frame_of(alices, to="carol.os"), bobs) == "wrong node"


def test_handshake_kinds_never_travel_in_a_session() -> None:
    _, alices, bobs = handshake()
    frame = seal_in_session(signed(Kind.HELLO, "alice.os", "bob.os", None), alices)
    assert reason(frame, bobs) == "garbage"


def test_a_welcome_to_another_hello_makes_no_session() -> None:
    old_hello = start_handshake("alice.os", "bob.os")
    _, old_welcome = accept_hello(signed(Kind.HELLO, "alice.os", "bob.os", old_hello.hello))
    new_hello = start_handshake("alice.os", "bob.os")
    with pytest.raises(BadEnvelope, match="another HELLO"):  # an old WELCOME replayed
        finish_handshake(new_hello, signed(Kind.WELCOME, "bob.os", "alice.os", old_welcome))


def test_a_welcome_from_another_node_makes_no_session() -> None:
    hello = start_handshake("alice.os", "bob.os")
    _, welcome = accept_hello(signed(Kind.HELLO, "alice.os", "bob.os", hello.hello))
    with pytest.raises(BadEnvelope, match="bad handshake"):
        finish_handshake(hello, signed(Kind.WELCOME, "carol.os", "alice.os", welcome))
    # And a WELCOME claiming bob but signed with carol's key is not believed at all.
    forged = seal(signed(Kind.WELCOME, "bob.os", "alice.os", welcome), CAROL)
    with pytest.raises(BadEnvelope) as caught:
        open_envelope(forged, me="alice.os", peers={"bob.os": BOB.verify_key})
    assert caught.value.reason == "bad signature"


def test_a_hello_signed_with_another_nodes_key_is_not_believed() -> None:
    hello = start_handshake("alice.os", "bob.os")
    forged = seal(signed(Kind.HELLO, "alice.os", "bob.os", hello.hello), CAROL)
    peers = {"alice.os": ALICE.verify_key, "carol.os": CAROL.verify_key}
    with pytest.raises(BadEnvelope) as caught:
        open_envelope(forged, me="bob.os", peers=peers)
    assert caught.value.reason == "bad signature"


def test_a_replayed_hello_gives_its_replayer_no_session_key() -> None:
    hello, alices, _ = handshake()
    # bob restarted, forgot the session, and takes the same HELLO again (replayed).
    replayed, _ = accept_hello(signed(Kind.HELLO, "alice.os", "bob.os", hello.hello))
    assert replayed.sid == alices.sid
    assert replayed.receive_key != alices.send_key  # fresh ephemeral key on bob's side
    assert reason(frame_of(alices), replayed) == "bad mac"


@pytest.mark.parametrize(
    "payload",
    [None, [b"s" * 16], [b"short", b"k" * 32], [b"s" * 16, b"k" * 31], [b"s" * 16, "k" * 32]],
)
def test_a_malformed_hello_makes_no_session(payload: object) -> None:
    with pytest.raises(BadEnvelope, match="bad handshake"):
        accept_hello(signed(Kind.HELLO, "alice.os", "bob.os", payload))


def test_a_low_order_key_makes_no_session() -> None:
    with pytest.raises(BadEnvelope, match="no shared key"):
        accept_hello(signed(Kind.HELLO, "alice.os", "bob.os", [b"s" * 16, bytes(32)]))


def test_frames_of_both_forms_are_read_by_their_outer_array() -> None:
    _, alices, _ = handshake()
    assert len(unpack_frame(frame_of(alices))) == 4
    assert len(unpack_frame(seal(signed(Kind.HELLO, "alice.os", "bob.os", None), ALICE))) == 3
    with pytest.raises(BadEnvelope, match="version"):
        unpack_frame(msgpack.packb([VERSION + 1, b"", b"", b""]))
    with pytest.raises(BadEnvelope, match="garbage"):
        unpack_frame(msgpack.packb([VERSION, b"", b"", b"", b""]))
