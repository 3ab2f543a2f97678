"""The hot-message templates agree with the general codec, byte for byte and verdict for verdict.

``hot.py`` and ``RequestDecoder`` are a second way to read and write the
commonest messages, so every test here compares them with ``codec.py``:
the bodies written must be identical, and on any input, valid or hostile,
the fast reader must give the general decoder's answer (or defer to it).
"""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol import _schema, codec, prefix
from protocol.codec import DecodeError, decode_request, decode_response, encode_response
from protocol.hot import (
    CONSTANT_RESPONSES,
    bin_header,
    is_get_response,
    is_ok,
    read_response,
)
from protocol.ids import PackageId
from protocol.messages import (
    Delete,
    ErrResponse,
    Exists,
    ExistsResponse,
    Get,
    GetResponse,
    KeyNotFound,
    KvAction,
    KvRequest,
    KvResponse,
    MalformedRequest,
    NoReadCap,
    NoTx,
    NoWriteCap,
    OkResponse,
    ScanResponse,
    Set,
)
from protocol.prefix import DbRequestEncoder, RequestDecoder

from .test_codec import actions, db_names, package_ids, requests, responses

PACKAGE = PackageId(package_name="chat", publisher_node="alice.os")
#: Key sizes on each side of msgpack's bin8 / bin16 / bin32 boundaries.
EDGE_SIZES = [0, 1, 255, 256, 65535, 65536]
keys = st.binary(max_size=300) | st.sampled_from(EDGE_SIZES).map(lambda n: b"k" * n)
hot_actions: st.SearchStrategy[KvAction] = st.one_of(
    st.builds(Get, key=keys),
    st.builds(Exists, key=keys),
    st.builds(Set, key=keys, tx_id=st.none()),
    st.builds(Delete, key=keys, tx_id=st.none()),
)


def _outcome(decode: Callable[[bytes], object], body: bytes) -> object:
    """What ``decode`` makes of ``body``: its value, or the fact that it refused it."""
    try:
        return decode(body)
    except DecodeError:
        return DecodeError


def _general_response(body: bytes) -> KvResponse:
    """decode_response without the templates: the strict schema walk alone."""
    return codec._at_boundary(codec._response_from_bytes, body, codec.DEFAULT_MAX_BODY_BYTES)


def _hot_body(encoder: DbRequestEncoder, action: KvAction) -> bytes:
    method = {Get: encoder.get, Exists: encoder.exists, Set: encoder.set, Delete: encoder.delete}
    return method[type(action)](action.key)  # type: ignore[union-attr]


# --- Writing ---------------------------------------------------------------------


@given(package_ids, db_names, hot_actions)
def test_hot_encoders_write_encode_requests_bytes(
    package_id: PackageId, db: str, action: KvAction
) -> None:
    request = KvRequest(package_id=package_id, db=db, action=action)
    assert _hot_body(DbRequestEncoder(package_id, db), action) == codec.encode_request(request)


@pytest.mark.parametrize("size", [*EDGE_SIZES, 2**16 + 5])
def test_bin_header_is_msgpacks(size: int) -> None:
    packed: bytes = msgpack.packb(b"x" * size, use_bin_type=True)
    assert bin_header(size) + b"x" * size == packed


@given(responses)
def test_encode_response_writes_the_general_encoders_bytes(response: KvResponse) -> None:
    assert encode_response(response) == msgpack.packb(
        _schema._response_wire(response), use_bin_type=True
    )


def test_constant_bodies_are_their_responses_encodings() -> None:
    for body, response in CONSTANT_RESPONSES.items():
        assert encode_response(response) == body
        assert _general_response(body) == response


# --- Reading responses --------------------------------------------------------------


def _is_hot(response: KvResponse) -> bool:
    """Whether ``response`` is one the templates read: stated here from PROTOCOL.md's
    shapes, not from hot.py's tables (so a reader that skips one is caught)."""
    match response:
        case OkResponse() | ExistsResponse() | GetResponse():
            return True
        case ErrResponse(error=error):
            return isinstance(error, KeyNotFound | NoReadCap | NoWriteCap | MalformedRequest)
        case _:
            return False


HOT_RESPONSES = [
    OkResponse(),
    ExistsResponse(exists=True),
    ExistsResponse(exists=False),
    GetResponse(key=b""),
    GetResponse(key=b"k" * 300),
    ErrResponse(error=KeyNotFound()),
    ErrResponse(error=NoReadCap()),
    ErrResponse(error=NoWriteCap()),
    ErrResponse(error=MalformedRequest()),
]


@given(responses)
@example(ErrResponse(error=NoTx(tx_id=1)))  # an Err, not a hot one
@example(ScanResponse(count=0, cursor=None))
def test_read_response_reads_exactly_the_hot_responses(response: KvResponse) -> None:
    body = encode_response(response)
    assert decode_response(body) == response
    assert read_response(body) == (response if _is_hot(response) else None)


@pytest.mark.parametrize("response", HOT_RESPONSES, ids=repr)
def test_read_response_reads_every_hot_response(response: KvResponse) -> None:
    assert _is_hot(response)
    assert read_response(encode_response(response)) == response


@pytest.mark.parametrize(
    "body",
    [
        b"\x81\xa3Get\xc4\x03abcd",  # a byte after the key
        b"\x81\xa3Get\xc4\x05abc",  # the key runs past the end
        b"\x81\xa3Get\xc4",  # no length
        b"\x81\xa3Get\xa3abc",  # a str where bin is due
        b"\xa2Ok\x00",  # trailing bytes after a constant
        b"\x82\xa3Get\xc4\x01a\xa3Get\xc4\x01a",  # a duplicated tag
    ],
    ids=["trailing", "short", "no-length", "str-key", "ok-trailing", "two-entries"],
)
def test_near_misses_are_refused_as_the_general_decoder_refuses_them(body: bytes) -> None:
    assert read_response(body) is None
    with pytest.raises(DecodeError):
        decode_response(body)


def test_is_ok_knows_the_ok_body_and_nothing_else() -> None:
    assert is_ok(encode_response(OkResponse()))
    for other in (
        ErrResponse(error=NoTx(tx_id=1)),
        ExistsResponse(exists=True),
        GetResponse(key=b"Ok"),
    ):
        assert not is_ok(encode_response(other))


def test_a_wide_bin_header_reads_as_the_same_key() -> None:
    body = b"\x81\xa3Get\xc5\x00\x03abc"  # bin16 for a 3-byte key: valid, not canonical
    assert read_response(body) == GetResponse(key=b"abc") == _general_response(body)


@given(responses, st.data())
def test_mutated_response_bodies_get_the_general_verdict(
    response: KvResponse, data: st.DataObject
) -> None:
    body = bytearray(encode_response(response))
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    for mutant in (bytes(body), bytes(body[:cut])):
        assert _outcome(decode_response, mutant) == _outcome(_general_response, mutant)
        assert is_get_response(mutant) == isinstance(read_response(mutant), GetResponse)
        # A fast path: True only for a body the general decoder reads as "Ok".
        assert not is_ok(mutant) or _general_response(mutant) == OkResponse()


# --- Reading requests ------------------------------------------------------------------


def _learned(*bodies: bytes) -> RequestDecoder:
    decoder = RequestDecoder()
    for body in bodies:
        decoder.decode(body)
    return decoder


@given(requests)
def test_request_decoder_reads_what_decode_request_reads(request: KvRequest) -> None:
    body = codec.encode_request(request)
    decoder = RequestDecoder()
    assert decoder.decode(body) == request  # the general way, learning the head
    assert decoder.decode(body) == request  # from the learned head, if hot


@given(package_ids, db_names, hot_actions, hot_actions)
def test_a_learned_head_reads_later_bodies_without_the_general_decoder(
    package_id: PackageId, db: str, first: KvAction, second: KvAction
) -> None:
    encoder = DbRequestEncoder(package_id, db)
    decoder = _learned(_hot_body(encoder, first))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefix, "decode_request", _refuse)
        request = decoder.decode(_hot_body(encoder, second))
    assert request == KvRequest(package_id=package_id, db=db, action=second)


def _refuse(body: bytes, *, max_size: int) -> KvRequest:
    raise AssertionError("the general decoder was called")


def test_a_db_named_like_the_action_key_still_reads_fast() -> None:
    encoder = DbRequestEncoder(PACKAGE, "action")  # its name's bytes are the "action" key's
    decoder = _learned(encoder.get(b"a"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefix, "decode_request", _refuse)
        request = decoder.decode(encoder.set(b"b"))
    assert request == KvRequest(package_id=PACKAGE, db="action", action=Set(key=b"b", tx_id=None))


@given(hot_actions | actions, st.data())
def test_mutated_request_bodies_get_the_general_verdict(
    action: KvAction, data: st.DataObject
) -> None:
    # After a known head: hot actions from their templates, the others alone.
    encoder = DbRequestEncoder(PACKAGE, "messages")
    decoder = _learned(encoder.get(b"learn"))
    body = bytearray(encoder.encode(action))
    expected = KvRequest(package_id=PACKAGE, db="messages", action=action)
    assert decoder.decode(bytes(body)) == expected
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    extra = data.draw(st.binary(max_size=3))
    for mutant in (bytes(body), bytes(body[:cut]), bytes(body) + extra):
        assert _outcome(decoder.decode, mutant) == _outcome(decode_request, mutant)


def test_request_decoder_keeps_the_size_limit() -> None:
    encoder = DbRequestEncoder(PACKAGE, "messages")
    decoder = RequestDecoder(max_size=200)
    decoder.decode(encoder.get(b"a"))
    with pytest.raises(DecodeError, match="over the limit"):
        decoder.decode(encoder.get(b"k" * 300))


def test_request_decoder_remembers_a_bounded_number_of_heads() -> None:
    decoder = RequestDecoder(max_heads=3)
    for i in range(10):
        encoder = DbRequestEncoder(PACKAGE, f"db{i}")
        body = encoder.get(b"a")
        assert decoder.decode(body).db == f"db{i}"
        assert len(decoder._heads) <= 3


def test_non_canonical_heads_read_the_general_way() -> None:
    # The same request with its package map's fields swapped: valid, not canonical.
    body = msgpack.packb(
        {
            "package_id": {"publisher_node": "alice.os", "package_name": "chat"},
            "db": "messages",
            "action": {"Get": b"k"},
        },
        use_bin_type=True,
    )
    decoder = RequestDecoder()
    expected = KvRequest(package_id=PACKAGE, db="messages", action=Get(key=b"k"))
    assert decoder.decode(body) == expected
    assert decoder.decode(body) == expected
    assert not decoder._heads


def test_exists_and_ok_constants() -> None:
    assert decode_response(b"\xa2Ok") is CONSTANT_RESPONSES[b"\xa2Ok"]
    assert decode_response(b"\x81\xa6Exists\xc3") == ExistsResponse(exists=True)
    assert encode_response(OkResponse()) == b"\xa2Ok"
