"""The envelope rules, pure: who is believed, what is refused, and why."""

from __future__ import annotations

import msgpack
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvruntime.kernel.envelope import (
    MAX_FRAME,
    SEQ_WINDOW,
    VERSION,
    WINDOW_MS,
    BadEnvelope,
    Envelope,
    Kind,
    ReplayGuard,
    Sequence,
    open_envelope,
    seal,
)

ALICE = nacl.signing.SigningKey(b"a" * 32)
BOB = nacl.signing.SigningKey(b"b" * 32)
MALLORY = nacl.signing.SigningKey(b"m" * 32)
#: What bob knows: alice's public key, and his own.
BOBS_PEERS = {"alice.os": ALICE.verify_key, "bob.os": BOB.verify_key}
NOW = 1_800_000_000_000


def envelope(
    seq: int = 1,
    *,
    sent_ms: int = NOW,
    to: str = "bob.os",
    sender: str = "alice.os",
    payload: object = None,
) -> Envelope:
    return Envelope(
        kind=Kind.REQUEST,
        from_node=sender,
        to_node=to,
        seq=seq,
        sent_ms=sent_ms,
        payload=[7, "echo:app:dev.os", b"hi"] if payload is None else payload,
    )


def reason(frame: bytes, *, me: str = "bob.os") -> str:
    with pytest.raises(BadEnvelope) as caught:
        open_envelope(frame, me=me, peers=BOBS_PEERS)
    return caught.value.reason


payloads = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary() | st.text(),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


@given(payload=payloads, seq=st.integers(0, 2**63), kind=st.sampled_from(Kind))
def test_a_sealed_envelope_opens_to_itself(payload: object, seq: int, kind: Kind) -> None:
    sent = Envelope(
        kind=kind, from_node="alice.os", to_node="bob.os", seq=seq, sent_ms=NOW, payload=payload
    )
    assert open_envelope(seal(sent, ALICE), me="bob.os", peers=BOBS_PEERS) == sent


def test_a_node_claiming_another_name_with_its_own_key_is_not_believed() -> None:
    assert reason(seal(envelope(), MALLORY)) == "bad signature"


def test_a_node_not_among_the_peers_is_not_believed() -> None:
    assert reason(seal(envelope(sender="carol.os"), MALLORY)) == "unknown peer"


def test_an_envelope_for_another_node_is_not_taken() -> None:
    frame = seal(envelope(to="carol.os"), ALICE)
    assert reason(frame) == "wrong node"


def test_any_change_to_the_signed_bytes_breaks_the_signature() -> None:
    frame = seal(envelope(), ALICE)
    version, signed, signature = msgpack.unpackb(frame)
    forged = signed.replace(b"hi", b"ho")
    assert forged != signed
    assert reason(msgpack.packb([version, forged, signature])) == "bad signature"
    # A signature moved onto another envelope of the same sender is no signature.
    other = msgpack.unpackb(seal(envelope(seq=2), ALICE))[1]
    assert reason(msgpack.packb([version, other, signature])) == "bad signature"


def test_garbage_wrong_versions_and_oversized_frames_are_refused_by_name() -> None:
    frame = seal(envelope(), ALICE)
    _, signed, signature = msgpack.unpackb(frame)
    assert reason(b"\xc1\xc1") == "garbage"
    assert reason(b"") == "garbage"
    assert reason(msgpack.packb({"a": 1})) == "garbage"
    assert reason(msgpack.packb([VERSION, "text", signature])) == "garbage"
    assert reason(msgpack.packb([VERSION + 1, signed, signature])) == "version"
    assert reason(b"\x00" * (MAX_FRAME + 1)) == "oversized"
    unsigned = msgpack.packb([1, "alice.os", "bob.os"])
    assert reason(msgpack.packb([VERSION, unsigned, signature])) == "garbage"


@pytest.mark.parametrize(("kind", "seq"), [(99, 1), ([1], 1), (True, 1), (1, "1"), (1, 1.5)])
def test_a_signed_envelope_with_a_bad_kind_or_seq_is_refused(kind: object, seq: object) -> None:
    signed = msgpack.packb([kind, "alice.os", "bob.os", seq, NOW, None])
    frame = msgpack.packb([VERSION, signed, ALICE.sign(signed).signature])
    assert reason(frame) == "garbage"


def guard_reason(guard: ReplayGuard, sent: Envelope, now_ms: int = NOW) -> str:
    with pytest.raises(BadEnvelope) as caught:
        guard.check(sent, now_ms)
    return caught.value.reason


def test_each_envelope_is_taken_once() -> None:
    guard = ReplayGuard()
    guard.check(envelope(10), NOW)
    assert guard_reason(guard, envelope(10)) == "replay"
    guard.check(envelope(12), NOW)
    guard.check(envelope(11), NOW)  # a little reordered: still taken, once
    assert guard_reason(guard, envelope(11)) == "replay"
    assert guard_reason(guard, envelope(12)) == "replay"
    assert guard_reason(guard, envelope(10)) == "replay"


def test_seqs_far_below_the_highest_are_refused() -> None:
    guard = ReplayGuard()
    guard.check(envelope(1), NOW)
    guard.check(envelope(1 + SEQ_WINDOW + 5), NOW)
    assert guard_reason(guard, envelope(1)) == "replay"
    assert guard_reason(guard, envelope(3)) == "replay"  # never seen, but below the window
    guard.check(envelope(1 + SEQ_WINDOW + 4), NOW)


def test_envelopes_outside_the_time_window_are_refused() -> None:
    guard = ReplayGuard()
    assert guard_reason(guard, envelope(1, sent_ms=NOW - WINDOW_MS - 1)) == "stale"
    assert guard_reason(guard, envelope(2, sent_ms=NOW + WINDOW_MS + 1)) == "stale"
    guard.check(envelope(3, sent_ms=NOW - WINDOW_MS), NOW)


def test_peers_have_separate_windows() -> None:
    guard = ReplayGuard()
    guard.check(envelope(5), NOW)
    guard.check(envelope(5, sender="carol.os"), NOW)
    assert guard_reason(guard, envelope(5, sender="carol.os")) == "replay"


@given(st.lists(st.integers(0, 3 * SEQ_WINDOW), max_size=60))
def test_the_guard_accepts_a_seq_at_most_once(seqs: list[int]) -> None:
    guard, taken = ReplayGuard(), []
    for seq in seqs:
        try:
            guard.check(envelope(seq), NOW)
        except BadEnvelope:
            continue
        taken.append(seq)
    assert len(taken) == len(set(taken))
    assert not seqs or max(seqs) in taken


def test_a_senders_seqs_grow_strictly_and_follow_the_clock() -> None:
    seq = Sequence()
    assert [seq.next(100), seq.next(100), seq.next(50)] == [100, 101, 102]
    assert seq.next(10**18) == 10**18  # a restart starts at its clock, above the old seqs
