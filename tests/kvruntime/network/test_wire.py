"""The payloads between nodes, pure: a request, a response, a refusal, and what is malformed."""

from __future__ import annotations

import pytest

from kvruntime.kernel.envelope import BadEnvelope, Envelope, Kind
from kvruntime.kernel.errors import SendError, SendErrorKind
from kvruntime.kernel.message import Capability, Request, Response
from kvruntime.kernel.wire import (
    MAX_CAPABILITIES,
    MAX_EXPECTS,
    answer_of,
    refusal_payload,
    request_of,
    request_payload,
    response_payload,
)
from protocol.ids import Address

ALICE = Address.parse("alice.os@client:app:dev.os")
BOB = Address.parse("bob.os@echo:app:dev.os")
CAPS = (
    Capability(issuer=Address.parse("alice.os@diary:app:dev.os"), params='"messaging"'),
    Capability(issuer=Address.parse("bob.os@kv:distro:sys"), params='{"kind": "read"}'),
)


def envelope(kind: Kind, payload: object, *, sender: str = "alice.os") -> Envelope:
    to = "bob.os" if sender == "alice.os" else "alice.os"
    return Envelope(kind=kind, from_node=sender, to_node=to, seq=1, sent_ms=0, payload=payload)


def request(expects: float | None = 5.0, caps: tuple[Capability, ...] = ()) -> Request:
    return Request(
        id=7, source=ALICE, target=BOB, body=b"hi", blob=b"b", metadata="m",
        capabilities=caps, expects_response=expects,
    )  # fmt: skip


@pytest.mark.parametrize("expects", [None, 0.5, 5.0])
def test_a_request_crosses_to_itself(expects: float | None) -> None:
    sent = request(expects)
    got = request_of(envelope(Kind.REQUEST, request_payload(sent)))
    assert (got.id, got.source, got.target, got.body, got.blob, got.metadata) == (
        7, ALICE, BOB, b"hi", b"b", "m",
    )  # fmt: skip
    assert got.expects_response == expects
    assert got.capabilities == ()


def test_attached_capabilities_cross_with_a_request_and_a_response() -> None:
    got = request_of(envelope(Kind.REQUEST, request_payload(request(caps=CAPS))))
    assert got.capabilities == CAPS
    answer = Response(id=7, source=BOB, target=ALICE, body=b"ho", capabilities=CAPS[:1])
    back = answer_of(envelope(Kind.RESPONSE, response_payload(answer), sender="bob.os"), request())
    assert isinstance(back, Response)
    assert back.capabilities == CAPS[:1]


def _with_caps(caps: object) -> list[object]:
    return [7, "client:app:dev.os", "echo:app:dev.os", b"hi", None, None, None, caps]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [7, "client:app:dev.os", "echo:app:dev.os", b"hi", None, None, None],  # seven fields
        ["7", "client:app:dev.os", "echo:app:dev.os", b"hi", None, None, None, []],
        [7, "client:app:dev.os", "echo:app:dev.os", "hi", None, None, None, []],
        [7, "client:app:dev.os", "echo:app:dev.os", b"hi", None, None, MAX_EXPECTS + 1, []],
        [7, "client:app:dev.os", "echo:app:dev.os", b"hi", None, None, 0, []],
        [7, "not a process id", "echo:app:dev.os", b"hi", None, None, None, []],
        _with_caps(None),
        _with_caps([["alice.os@diary:app:dev.os"]]),
        _with_caps([["not an address", '"messaging"']]),
        _with_caps([["alice.os@diary:app:dev.os", "not json"]]),
        _with_caps([["alice.os@diary:app:dev.os", "[" * 100_000 + "]" * 100_000]]),
        _with_caps([["alice.os@diary:app:dev.os", b'"messaging"']]),
        _with_caps([["alice.os@diary:app:dev.os", '"messaging"']] * (MAX_CAPABILITIES + 1)),
    ],
)
def test_a_malformed_request_is_refused_by_name(payload: object) -> None:
    with pytest.raises(BadEnvelope) as caught:
        request_of(envelope(Kind.REQUEST, payload))
    assert caught.value.reason == "malformed"


def test_a_response_and_a_refusal_answer_their_request() -> None:
    sent = request()
    answer = Response(id=7, source=BOB, target=ALICE, body=b"ho", blob=None, metadata=None)
    got = answer_of(envelope(Kind.RESPONSE, response_payload(answer), sender="bob.os"), sent)
    assert isinstance(got, Response)
    assert (got.id, got.source, got.target, got.body) == (7, BOB, ALICE, b"ho")
    error = SendError(SendErrorKind.BUSY, "full")
    refused = answer_of(envelope(Kind.REFUSAL, refusal_payload(7, error), sender="bob.os"), sent)
    assert isinstance(refused, SendError)
    assert (refused.kind, refused.detail) == (SendErrorKind.BUSY, "full")


def test_an_answer_to_another_request_or_of_another_kind_is_refused() -> None:
    sent = request()
    with pytest.raises(BadEnvelope, match="malformed"):
        answer_of(envelope(Kind.RESPONSE, [8, b"ho", None, None, []], sender="bob.os"), sent)
    with pytest.raises(BadEnvelope, match="malformed"):
        answer_of(envelope(Kind.RESPONSE, [7, b"ho", None, None], sender="bob.os"), sent)
    with pytest.raises(BadEnvelope, match="malformed"):
        answer_of(envelope(Kind.RESPONSE, [7, b"ho", None, None, [[1, 2]]], sender="bob.os"), sent)
    with pytest.raises(BadEnvelope, match="malformed"):
        answer_of(envelope(Kind.REFUSAL, [8, "busy", "x"], sender="bob.os"), sent)
    with pytest.raises(BadEnvelope, match="unexpected kind"):
        answer_of(envelope(Kind.REQUEST, [7, b"ho", None, None, []], sender="bob.os"), sent)
    unknown = answer_of(envelope(Kind.REFUSAL, [7, "no such kind", "x"], sender="bob.os"), sent)
    assert isinstance(unknown, SendError)
    assert unknown.kind is SendErrorKind.OFFLINE
