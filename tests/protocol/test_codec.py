"""The msgpack and JSON codec: round trips, strictness, and never a foreign exception."""

from __future__ import annotations

import contextlib
import json
import struct
import typing
from collections.abc import Callable

import attrs
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import (
    DEFAULT_MAX_BODY_BYTES,
    DecodeError,
    decode_capability_params,
    decode_request,
    decode_response,
    encode_capability_params,
    encode_request,
    encode_response,
)
from protocol.ids import IdError, PackageId, ProcessId, validate_db_name
from protocol.messages import (
    AddCapFailed,
    AnswerTooLarge,
    BatchTooLarge,
    BeginTx,
    BeginTxResponse,
    Capabilities,
    CapabilitiesResponse,
    CasMismatch,
    Commit,
    CommitBatch,
    CompareAndSwap,
    Delete,
    DeleteMany,
    DeleteRange,
    DeleteRangeResponse,
    ErrResponse,
    Exists,
    ExistsResponse,
    Expire,
    Get,
    GetMany,
    GetManyResponse,
    GetResponse,
    Increment,
    IncrementResponse,
    IntegerOverflow,
    IoError,
    KeyNotFound,
    KeyReserved,
    KeyTooLarge,
    KvAction,
    KvCapabilityParams,
    KvError,
    KvRequest,
    KvResponse,
    LevelDbError,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NotAnInteger,
    NoTx,
    NoWatch,
    NoWriteCap,
    OkResponse,
    Open,
    Persist,
    RemoteNotAllowed,
    RemoveDb,
    Revoke,
    Rollback,
    Scan,
    ScanResponse,
    Set,
    SetExpiring,
    SetMany,
    SetManyExpiring,
    SetTtlPolicy,
    TooManyTransactions,
    TooManyWatches,
    TransactionConflict,
    TransactionTooLarge,
    Ttl,
    TtlDisabled,
    TtlResponse,
    TtlTooLarge,
    TxExists,
    TxGet,
    TxGetMany,
    Unwatch,
    ValueTooLarge,
    Watch,
    WatchChangesResponse,
    WatchCompacted,
    WatchEnded,
    WatchNext,
    WatchResponse,
    WriteBatch,
)
from protocol.variant import Variant

# --- Strategies ----------------------------------------------------------------

U64_MAX = 2**64 - 1


def _is_db_name(name: str) -> bool:
    try:
        validate_db_name(name)
    except IdError:
        return False
    return True


# The strings of [a-z0-9-]+ and [a-z0-9.-]+ (st.text draws them several times
# faster than st.from_regex of those patterns: the suite draws ~50k).
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
names = st.text(NAME_CHARS, min_size=1)
nodes = st.text(NAME_CHARS + ".", min_size=1).filter(lambda n: n not in (".", ".."))
package_ids = st.builds(PackageId, package_name=names, publisher_node=nodes)
db_names = st.text(min_size=1, max_size=64).filter(_is_db_name)
keys = st.binary(max_size=300)
u64 = st.integers(min_value=0, max_value=U64_MAX)
# Edges of every msgpack uint width, so each encoding is exercised.
u64_edges = st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, U64_MAX]) | u64
optional_tx = st.none() | u64_edges
optional_keys = st.none() | keys
i64 = st.sampled_from([-(2**63), -1, 0, 1, 2**63 - 1]) | st.integers(-(2**63), 2**63 - 1)
process_ids = st.builds(ProcessId, process_name=names, package_name=names, publisher_node=nodes)
ranges = st.one_of(
    st.builds(lambda p: {"prefix": p, "start": None, "end": None}, keys),
    st.builds(lambda a, b: {"prefix": None, "start": a, "end": b}, optional_keys, optional_keys),
)

ACTIONS: dict[type, st.SearchStrategy[KvAction]] = {
    Open: st.just(Open()),
    RemoveDb: st.just(RemoveDb()),
    BeginTx: st.just(BeginTx()),
    Set: st.builds(Set, key=keys, tx_id=optional_tx),
    Delete: st.builds(Delete, key=keys, tx_id=optional_tx),
    Get: st.builds(Get, key=keys),
    Exists: st.builds(Exists, key=keys),
    Commit: st.builds(Commit, tx_id=u64_edges),
    Scan: st.builds(
        lambda r, **kw: Scan(**r, **kw),
        ranges,
        reverse=st.booleans(),
        keys_only=st.booleans(),
        limit=optional_tx,
        cursor=optional_keys,
        tx_id=optional_tx,
    ),
    TxGet: st.builds(TxGet, key=keys, tx_id=u64_edges),
    TxExists: st.builds(TxExists, key=keys, tx_id=u64_edges),
    GetMany: st.builds(GetMany, count=u64_edges),
    TxGetMany: st.builds(TxGetMany, count=u64_edges, tx_id=u64_edges),
    SetMany: st.builds(SetMany, count=u64_edges),
    DeleteMany: st.builds(DeleteMany, count=u64_edges),
    Increment: st.builds(Increment, key=keys, delta=i64),
    CompareAndSwap: st.builds(CompareAndSwap, key=keys),
    Rollback: st.builds(Rollback, tx_id=u64_edges),
    DeleteRange: st.builds(lambda r: DeleteRange(**r), ranges),
    Revoke: st.builds(Revoke, process=process_ids),
    Capabilities: st.just(Capabilities()),
    WriteBatch: st.builds(WriteBatch, tx_id=optional_tx, count=u64_edges),
    SetExpiring: st.builds(SetExpiring, key=keys, tx_id=optional_tx, ttl_ms=u64_edges),
    SetManyExpiring: st.builds(SetManyExpiring, count=u64_edges, ttl_ms=u64_edges),
    Expire: st.builds(Expire, key=keys, ttl_ms=u64_edges),
    Persist: st.builds(Persist, key=keys),
    Ttl: st.builds(Ttl, key=keys),
    SetTtlPolicy: st.builds(SetTtlPolicy, enabled=st.booleans(), max_ttl_ms=optional_tx),
    CommitBatch: st.builds(CommitBatch, tx_id=u64_edges, count=u64_edges),
    # change feeds (issue 14)
    Watch: st.builds(
        lambda r, since, snapshot: Watch(**r, since=since, snapshot=snapshot),
        ranges,
        optional_tx,
        st.booleans(),
    ),
    WatchNext: st.builds(WatchNext, watch_id=u64_edges, after=u64_edges),
    Unwatch: st.builds(Unwatch, watch_id=u64_edges),
}
ERRORS: dict[type, st.SearchStrategy[KvError]] = {
    NoDb: st.builds(NoDb, package_id=package_ids, db=db_names),
    KeyNotFound: st.just(KeyNotFound()),
    NoTx: st.builds(NoTx, tx_id=u64_edges),
    NoWriteCap: st.just(NoWriteCap()),
    NoReadCap: st.just(NoReadCap()),
    MismatchingPackageId: st.just(MismatchingPackageId()),
    AddCapFailed: st.just(AddCapFailed()),
    MalformedRequest: st.just(MalformedRequest()),
    LevelDbError: st.builds(LevelDbError, message=st.text()),
    IoError: st.builds(IoError, message=st.text()),
    KeyTooLarge: st.builds(KeyTooLarge, size=u64_edges, max=u64_edges),
    ValueTooLarge: st.builds(ValueTooLarge, size=u64_edges, max=u64_edges),
    TooManyTransactions: st.builds(TooManyTransactions, max=u64_edges),
    RemoteNotAllowed: st.just(RemoteNotAllowed()),
    TransactionTooLarge: st.builds(TransactionTooLarge, size=u64_edges, max=u64_edges),
    CasMismatch: st.builds(CasMismatch, present=st.booleans()),
    TransactionConflict: st.builds(TransactionConflict, tx_id=u64_edges),
    NotAnInteger: st.just(NotAnInteger()),
    IntegerOverflow: st.just(IntegerOverflow()),
    BatchTooLarge: st.builds(BatchTooLarge, count=u64_edges, max=u64_edges),
    AnswerTooLarge: st.builds(AnswerTooLarge, size=u64_edges, max=u64_edges),
    KeyReserved: st.just(KeyReserved()),
    TtlDisabled: st.just(TtlDisabled()),
    TtlTooLarge: st.builds(TtlTooLarge, ttl_ms=u64_edges, max_ms=u64_edges),
    # change feeds (issue 14)
    WatchCompacted: st.builds(WatchCompacted, oldest=u64_edges, last=u64_edges),
    WatchEnded: st.builds(WatchEnded, reason=st.text()),
    TooManyWatches: st.builds(TooManyWatches, max=u64_edges),
    NoWatch: st.builds(NoWatch, watch_id=u64_edges),
}
errors: st.SearchStrategy[KvError] = st.one_of(*ERRORS.values())
RESPONSES: dict[type, st.SearchStrategy[KvResponse]] = {
    OkResponse: st.just(OkResponse()),
    BeginTxResponse: st.builds(BeginTxResponse, tx_id=u64_edges),
    GetResponse: st.builds(GetResponse, key=keys),
    ExistsResponse: st.builds(ExistsResponse, exists=st.booleans()),
    ErrResponse: st.builds(ErrResponse, error=errors),
    ScanResponse: st.builds(ScanResponse, count=u64_edges, cursor=optional_keys),
    GetManyResponse: st.builds(GetManyResponse, count=u64_edges),
    IncrementResponse: st.builds(IncrementResponse, value=i64),
    DeleteRangeResponse: st.builds(DeleteRangeResponse, count=u64_edges),
    CapabilitiesResponse: st.builds(CapabilitiesResponse, read=st.booleans(), write=st.booleans()),
    TtlResponse: st.builds(TtlResponse, ttl_ms=optional_tx),
    # change feeds (issue 14)
    WatchResponse: st.builds(
        WatchResponse, watch_id=u64_edges, position=u64_edges, count=u64_edges
    ),
    WatchChangesResponse: st.builds(WatchChangesResponse, count=u64_edges, last=u64_edges),
}
actions: st.SearchStrategy[KvAction] = st.one_of(*ACTIONS.values())
requests = st.builds(KvRequest, package_id=package_ids, db=db_names, action=actions)
responses: st.SearchStrategy[KvResponse] = st.one_of(*RESPONSES.values())
capability_params = st.builds(
    KvCapabilityParams,
    kind=st.sampled_from(["read", "write"]),
    package_id=package_ids,
    db=db_names,
)

PACKAGE = PackageId(package_name="chat", publisher_node="alice.os")
PACKAGE_MAP = {"package_name": "chat", "publisher_node": "alice.os"}


def pack(value: object) -> bytes:
    """Encode any msgpack value the way a foreign sender might."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def body(action: object, *, package_id: object = None, db: object = "messages") -> bytes:
    """A request body with ``action``, tweaked in one place."""
    return pack(
        {
            "package_id": PACKAGE_MAP if package_id is None else package_id,
            "db": db,
            "action": action,
        }
    )


def pairs(*entries: tuple[bytes, bytes]) -> bytes:
    """A msgpack map built from already-encoded keys and values (duplicates allowed)."""
    assert len(entries) < 16
    return bytes([0x80 | len(entries)]) + b"".join(k + v for k, v in entries)


def raw_body(
    *, package_id: bytes | None = None, db: bytes | None = None, action: bytes | None = None
) -> bytes:
    """A request body from already-encoded parts, for bytes ``pack`` would not write."""
    return pairs(
        (pack("package_id"), pack(PACKAGE_MAP) if package_id is None else package_id),
        (pack("db"), pack("messages") if db is None else db),
        (pack("action"), pack("Open") if action is None else action),
    )


def case_id(value: object) -> str | None:
    """Name parametrised cases by their expected message, not by their bytes."""
    if isinstance(value, bytes | bytearray):
        return "body"
    if callable(value):
        return getattr(value, "__name__", None)
    return None


# --- Every variant is covered ------------------------------------------------------


def test_strategies_cover_every_variant() -> None:
    assert set(ACTIONS) == set(typing.get_args(KvAction))
    assert set(ERRORS) == set(typing.get_args(KvError))
    assert set(RESPONSES) == set(typing.get_args(KvResponse))


# --- Round trips ------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(ACTIONS), ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_request_round_trip_per_action(variant: type, data: st.DataObject) -> None:
    request = KvRequest(
        package_id=data.draw(package_ids),
        db=data.draw(db_names),
        action=data.draw(ACTIONS[variant]),
    )
    assert decode_request(encode_request(request)) == request


@pytest.mark.parametrize("variant", list(RESPONSES), ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_response_round_trip_per_variant(variant: type, data: st.DataObject) -> None:
    response = data.draw(RESPONSES[variant])
    assert decode_response(encode_response(response)) == response


@pytest.mark.parametrize("variant", list(ERRORS), ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_error_round_trip_per_variant(variant: type, data: st.DataObject) -> None:
    response = ErrResponse(error=data.draw(ERRORS[variant]))
    assert decode_response(encode_response(response)) == response


@given(requests)
def test_request_round_trip(request: KvRequest) -> None:
    assert decode_request(encode_request(request)) == request


@given(responses)
def test_response_round_trip(response: KvResponse) -> None:
    assert decode_response(encode_response(response)) == response


@given(capability_params)
def test_capability_params_round_trip(params: KvCapabilityParams) -> None:
    assert decode_capability_params(encode_capability_params(params)) == params


def test_decoded_keys_are_bytes() -> None:
    request = decode_request(
        encode_request(KvRequest(package_id=PACKAGE, db="d", action=Get(key=b"k")))
    )
    assert isinstance(request.action, Get)
    assert type(request.action.key) is bytes


# --- Canonical encoding ------------------------------------------------------------


def test_encoding_is_msgpack_of_the_serde_shape() -> None:
    request = KvRequest(package_id=PACKAGE, db="messages", action=Set(key=b"alice", tx_id=None))
    assert msgpack.unpackb(encode_request(request)) == {
        "package_id": PACKAGE_MAP,
        "db": "messages",
        "action": {"Set": {"key": b"alice", "tx_id": None}},
    }
    assert encode_request(request) == body({"Set": {"key": b"alice", "tx_id": None}})


def test_encoding_keeps_field_order() -> None:
    wire = msgpack.unpackb(encode_request(KvRequest(package_id=PACKAGE, db="d", action=Open())))
    assert list(wire) == ["package_id", "db", "action"]
    assert list(wire["package_id"]) == ["package_name", "publisher_node"]
    error = ErrResponse(error=KeyTooLarge(size=2, max=1))
    assert list(msgpack.unpackb(encode_response(error))["Err"]["KeyTooLarge"]) == ["size", "max"]


@pytest.mark.parametrize(
    ("response", "wire"),
    [
        (OkResponse(), "Ok"),
        (BeginTxResponse(tx_id=5), {"BeginTx": {"tx_id": 5}}),
        (GetResponse(key=b"k"), {"Get": b"k"}),
        (ExistsResponse(exists=True), {"Exists": True}),
        (ErrResponse(error=KeyNotFound()), {"Err": "KeyNotFound"}),
        (
            ErrResponse(error=NoDb(package_id=PACKAGE, db="d")),
            {"Err": {"NoDb": [PACKAGE_MAP, "d"]}},
        ),
        (ErrResponse(error=NoTx(tx_id=3)), {"Err": {"NoTx": 3}}),
        (ErrResponse(error=IoError(message="x")), {"Err": {"IOError": "x"}}),
        (
            ErrResponse(error=TooManyTransactions(max=4)),
            {"Err": {"TooManyTransactions": {"max": 4}}},
        ),
    ],
)
def test_response_wire_shapes(response: KvResponse, wire: object) -> None:
    assert encode_response(response) == pack(wire)


@pytest.mark.parametrize("tx_id", [-1, U64_MAX + 1])
def test_encode_refuses_ints_outside_u64(tx_id: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.2\*\*64-1"):
        encode_request(KvRequest(package_id=PACKAGE, db="d", action=Commit(tx_id=tx_id)))
    with pytest.raises(ValueError, match=r"0\.\.2\*\*64-1"):
        encode_response(ErrResponse(error=NoTx(tx_id=tx_id)))


def test_encode_refuses_a_bool_tx_id() -> None:
    with pytest.raises(ValueError, match="uint"):
        encode_response(BeginTxResponse(tx_id=True))


def test_lone_surrogates_in_error_messages_are_escaped() -> None:
    """An OSError about a non-UTF-8 file name must still produce a response."""
    data = encode_response(ErrResponse(error=IoError(message="open caf\udce9: denied")))
    assert decode_response(data) == ErrResponse(error=IoError(message="open caf\\udce9: denied"))
    data = encode_response(ErrResponse(error=LevelDbError(message="é\ud800")))
    assert decode_response(data) == ErrResponse(error=LevelDbError(message="é\\ud800"))


def test_encode_does_not_validate_db_names() -> None:
    """So that a test can send a name the kv process must answer with MalformedRequest."""
    data = encode_request(KvRequest(package_id=PACKAGE, db="../etc", action=Open()))
    with pytest.raises(DecodeError, match="one path component"):
        decode_request(data)


# --- Strict decoding: one test per malformed class -------------------------------------


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (body("Frobnicate"), "unknown KvAction tag 'Frobnicate'"),
        (body({"Frobnicate": b"k"}), "unknown KvAction tag 'Frobnicate'"),
        (body({b"Get": b"k"}), r"unknown KvAction tag b'Get'"),
        (body("open"), "unknown KvAction tag 'open'"),
        (body("Get"), "Get needs a payload"),
        (body({"Open": None}), "Open takes no payload"),
        (body({"Get": b"a", "Exists": b"b"}), "one entry, got 2"),
        (body({}), "one entry, got 0"),
        (body(7), "expected a str or a one-entry map, got int"),
    ],
    ids=case_id,
)
def test_rejects_bad_action_tags(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_request(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (pack("ok"), "unknown KvResponse tag 'ok'"),
        (pack({"Err": "Nope"}), "unknown KvError tag 'Nope'"),
        (pack({"Err": {"KeyNotFound": None}}), "KeyNotFound takes no payload"),
        (pack({"Err": "NoTx"}), "NoTx needs a payload"),
        (pack({"Ok": None}), "Ok takes no payload"),
        (pack(None), "expected a str or a one-entry map, got nil"),
    ],
    ids=case_id,
)
def test_rejects_bad_response_tags(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_response(data)


@pytest.mark.parametrize(
    ("decode", "data", "match"),
    [
        (
            decode_request,
            pack({"package_id": PACKAGE_MAP, "db": "d", "action": "Open", "x": 1}),
            "unexpected field 'x'",
        ),
        (
            decode_request,
            pack({"package_id": PACKAGE_MAP, "action": "Open"}),
            "KvRequest: missing field db",
        ),
        (
            decode_request,
            pack({"package_id": PACKAGE_MAP, b"db": "d", "action": "Open"}),
            "missing field db; unexpected field b'db'",
        ),
        (
            decode_request,
            body({"Set": {"key": b"k", "tx_id": None, "ttl": 1}}),
            "Set: unexpected field 'ttl'",
        ),
        (decode_request, body({"Delete": {"key": b"k"}}), "Delete: missing field tx_id"),
        (decode_request, body({"Commit": {}}), "Commit: missing field tx_id"),
        (
            decode_request,
            body("Open", package_id={"package_name": "chat"}),
            "PackageId: missing field publisher_node",
        ),
        (
            decode_request,
            body("Open", package_id={**PACKAGE_MAP, "x": "y"}),
            "PackageId: unexpected field 'x'",
        ),
        (
            decode_response,
            pack({"Err": {"KeyTooLarge": {"size": 1}}}),
            "KeyTooLarge: missing field max",
        ),
        (
            decode_response,
            pack({"Err": {"TooManyTransactions": {"max": 1, "size": 2}}}),
            "unexpected field 'size'",
        ),
        (decode_response, pack({"BeginTx": {"tx_id": 1, "x": 2}}), "BeginTx: unexpected field 'x'"),
    ],
    ids=case_id,
)
def test_rejects_extra_and_missing_fields(
    decode: Callable[[bytes], object], data: bytes, match: str
) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(data)


def test_set_requires_the_tx_id_key() -> None:
    """serde would fill an absent Option with None; we require the key (PROTOCOL.md)."""
    with pytest.raises(DecodeError, match="Set: missing field tx_id"):
        decode_request(body({"Set": {"key": b"k"}}))
    assert decode_request(body({"Set": {"key": b"k", "tx_id": None}})).action == Set(key=b"k")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            pairs(
                (pack("package_id"), pack(PACKAGE_MAP)),
                (pack("db"), pack("a")),
                (pack("db"), pack("b")),
                (pack("action"), pack("Open")),
            ),
            "duplicate map key 'db'",
        ),
        (
            pairs(
                (pack("package_id"), pack(PACKAGE_MAP)),
                (pack("db"), pack("a")),
                (pack("action"), pack("Open")),
                (pack("action"), pack("Open")),
            ),
            "duplicate map key 'action'",
        ),
        (
            raw_body(
                package_id=pairs(
                    (pack("package_name"), pack("chat")),
                    (pack("package_name"), pack("chat")),
                    (pack("publisher_node"), pack("alice.os")),
                )
            ),
            "duplicate map key 'package_name'",
        ),
        (
            raw_body(
                action=pairs(
                    (
                        pack("Set"),
                        pairs(
                            (pack("key"), pack(b"k")),
                            (pack("tx_id"), pack(None)),
                            (pack("tx_id"), pack(1)),
                        ),
                    )
                )
            ),
            "duplicate map key 'tx_id'",
        ),
    ],
    ids=case_id,
)
def test_rejects_duplicate_keys(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_request(data)


def test_rejects_duplicate_keys_in_responses() -> None:
    data = pairs((pack("Err"), pack("KeyNotFound")), (pack("Err"), pack("KeyNotFound")))
    with pytest.raises(DecodeError, match="duplicate map key 'Err'"):
        decode_response(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (body({"Get": "alice"}), "Get: expected bin, got str"),
        (body({"Set": {"key": "alice", "tx_id": None}}), "Set.key: expected bin, got str"),
        (body("Open", db=b"messages"), "db: expected str, got bin"),
        (
            body("Open", package_id={**PACKAGE_MAP, "package_name": b"chat"}),
            "package_name: expected str",
        ),
        (body("Open", package_id="chat:alice.os"), "PackageId: expected a map, got str"),
        (body({"Commit": {"tx_id": True}}), "Commit.tx_id: expected uint, got bool"),
        (body({"Commit": {"tx_id": False}}), "Commit.tx_id: expected uint, got bool"),
        (body({"Commit": {"tx_id": -1}}), "Commit.tx_id: expected uint, got negative int"),
        (body({"Commit": {"tx_id": -(2**63)}}), "Commit.tx_id: expected uint, got negative int"),
        (body({"Commit": {"tx_id": 1.0}}), "Commit.tx_id: expected uint, got float"),
        (body({"Commit": {"tx_id": "1"}}), "Commit.tx_id: expected uint, got str"),
        (body({"Commit": {"tx_id": None}}), "Commit.tx_id: expected uint, got nil"),
        (body({"Set": {"key": b"k", "tx_id": -3}}), "Set.tx_id: expected uint, got negative int"),
        (body({"Delete": {"key": b"k", "tx_id": 0.5}}), "Delete.tx_id: expected uint, got float"),
        (body({"Set": [b"k", None]}), "Set: expected a map, got array"),
        (pack([PACKAGE_MAP, "messages", "Open"]), "KvRequest: expected a map, got array"),
    ],
    ids=case_id,
)
def test_rejects_wrong_types_in_requests(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_request(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (pack({"Get": "k"}), "Get: expected bin, got str"),
        (pack({"Exists": 1}), "Exists: expected bool, got int"),
        (pack({"Exists": None}), "Exists: expected bool, got nil"),
        (pack({"BeginTx": {"tx_id": True}}), "BeginTx.tx_id: expected uint, got bool"),
        (pack({"Err": {"NoTx": -1}}), "NoTx: expected uint, got negative int"),
        (pack({"Err": {"NoTx": 2.0}}), "NoTx: expected uint, got float"),
        (pack({"Err": {"LevelDbError": b"x"}}), "LevelDbError: expected str, got bin"),
        (pack({"Err": {"IOError": 5}}), "IOError: expected str, got int"),
        (
            pack({"Err": {"ValueTooLarge": {"size": -1, "max": 1}}}),
            "ValueTooLarge.size: expected uint",
        ),
        (
            pack({"Err": {"NoDb": {"package_id": PACKAGE_MAP, "db": "d"}}}),
            "NoDb: expected an array of 2, got map of 2",
        ),
        (
            pack({"Err": {"NoDb": [PACKAGE_MAP, "d", "x"]}}),
            "NoDb: expected an array of 2, got array of 3",
        ),
        (pack({"Err": {"NoDb": [PACKAGE_MAP, b"d"]}}), "db: expected str, got bin"),
    ],
    ids=case_id,
)
def test_rejects_wrong_types_in_responses(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_response(data)


@pytest.mark.parametrize(
    ("ext", "match"),
    [
        (b"\xd4\x01\x00", "ext type 1 is not allowed"),  # fixext1
        (b"\xc7\x14\x2a" + b"x" * 20, "ext type 42 is not allowed"),  # ext8
        (b"\xd4\xfe\x00", "ext type -2 is not allowed"),  # reserved range
        (b"\xc7\x03\xff\x00\x00\x00", "invalid timestamp"),  # ext -1 of a bad length
    ],
)
def test_rejects_ext_types(ext: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_request(raw_body(action=pairs((pack("Get"), ext))))
    with pytest.raises(DecodeError, match=match):
        decode_response(ext)


def test_rejects_a_timestamp() -> None:
    """msgpack decodes ext -1 (timestamp) itself, without the ext hook; still rejected."""
    timestamp = pack(msgpack.Timestamp(seconds=1))
    with pytest.raises(DecodeError, match="Get: expected bin, got ext type"):
        decode_request(raw_body(action=pairs((pack("Get"), timestamp))))


@pytest.mark.parametrize("extra", [b"\xc0", b"\x00", b"\x83", b"\x00" * 100])
def test_rejects_trailing_bytes(extra: bytes) -> None:
    with pytest.raises(DecodeError, match="trailing bytes"):
        decode_request(body("Open") + extra)
    with pytest.raises(DecodeError, match="trailing bytes"):
        decode_response(pack("Ok") + extra)


@pytest.mark.parametrize("cut", [1, 2, 10, 30])
def test_rejects_truncated_input(cut: int) -> None:
    with pytest.raises(DecodeError, match="incomplete input"):
        decode_request(body({"Get": b"alice"})[:-cut])


def test_rejects_empty_input() -> None:
    with pytest.raises(DecodeError, match="empty body"):
        decode_request(b"")
    with pytest.raises(DecodeError, match="empty body"):
        decode_response(b"")


def test_rejects_nesting_deeper_than_the_msgpack_stack() -> None:
    with pytest.raises(DecodeError, match="nesting too deep"):
        decode_request(b"\x91" * 5000 + b"\xc0")
    with pytest.raises(DecodeError, match="nesting too deep"):
        decode_response(b"\x81\xa3Err" * 3000 + b"\xc0")


def test_rejects_nesting_deeper_than_the_schema() -> None:
    nested = b"\x91" * 50 + b"\xc0"
    with pytest.raises(DecodeError, match="db: expected str, got array"):
        decode_request(raw_body(db=nested))
    deep_error = pack({"Err": {"NoDb": [[[[PACKAGE_MAP]]], "d"]}})
    with pytest.raises(DecodeError, match="PackageId: expected a map, got array"):
        decode_response(deep_error)


def test_rejects_containers_wider_than_the_schema_from_their_header() -> None:
    # A map32 header claiming 2**32-1 entries: refused before anything is built.
    with pytest.raises(DecodeError, match="max_map_len"):
        decode_request(b"\xdf\xff\xff\xff\xff")
    with pytest.raises(DecodeError, match="max_array_len"):
        decode_request(b"\xdd\x00\x01\x00\x00" + b"\xc0" * 65536)


def test_rejects_oversized_input_before_unpacking() -> None:
    # 0xc1 is never valid msgpack: the size message proves no byte was parsed.
    with pytest.raises(DecodeError, match="over the limit of 1048576"):
        decode_request(b"\xc1" * (DEFAULT_MAX_BODY_BYTES + 1))
    with pytest.raises(DecodeError, match="over the limit of 10"):
        decode_response(b"\xc1" * 11, max_size=10)


def test_max_size_is_inclusive() -> None:
    data = body({"Get": b"k" * 100})
    assert decode_request(data, max_size=len(data)).action == Get(key=b"k" * 100)
    with pytest.raises(DecodeError, match="over the limit"):
        decode_request(data, max_size=len(data) - 1)


def test_default_limit_carries_the_largest_key() -> None:
    request = KvRequest(
        package_id=PACKAGE, db="d" * 255, action=Set(key=b"k" * 65536, tx_id=U64_MAX)
    )
    assert decode_request(encode_request(request)) == request


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            body("Open", package_id={**PACKAGE_MAP, "package_name": "Chat"}),
            "package_name must match",
        ),
        (body("Open", package_id={**PACKAGE_MAP, "package_name": ""}), "package_name must match"),
        (body("Open", package_id={**PACKAGE_MAP, "publisher_node": ".."}), "not be '.' or '..'"),
        (
            body("Open", package_id={**PACKAGE_MAP, "publisher_node": "a:b"}),
            "publisher_node must match",
        ),
        (body("Open", db=""), "1 to 255 bytes"),
        (body("Open", db="."), "one path component"),
        (body("Open", db=".."), "one path component"),
        (body("Open", db="a/b"), "one path component"),
        (body("Open", db="a\\b"), "one path component"),
        (body("Open", db="a\x00b"), "one path component"),
        (body("Open", db="d" * 256), "1 to 255 bytes of UTF-8, got 256"),
        (body("Open", db="é" * 128), "1 to 255 bytes of UTF-8, got 256"),
    ],
    ids=case_id,
)
def test_rejects_invalid_ids_and_db_names(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match) as caught:
        decode_request(data)
    assert isinstance(caught.value.__cause__, IdError)


def test_rejects_invalid_names_in_no_db() -> None:
    with pytest.raises(DecodeError, match="one path component"):
        decode_response(pack({"Err": {"NoDb": [PACKAGE_MAP, "a/b"]}}))


@pytest.mark.parametrize(
    "raw_str",
    [
        b"\xa2\xc3\x28",  # invalid continuation
        b"\xa3\xed\xa0\x80",  # UTF-8 of a lone surrogate
        b"\xa1\xff",
    ],
)
def test_rejects_invalid_utf8(raw_str: bytes) -> None:
    data = raw_body(db=raw_str)
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        decode_request(data)


def test_rejects_non_str_map_keys() -> None:
    data = b"\x84\x01\x02" + body("Open")[1:]
    with pytest.raises(DecodeError, match="map key"):
        decode_request(data)


def test_foreign_errors_are_chained() -> None:
    with pytest.raises(DecodeError, match="reserved format byte") as caught:
        decode_request(b"\xc1")
    assert isinstance(caught.value.__cause__, msgpack.FormatError)


# --- Accepting any valid encoding -------------------------------------------------


def _wide_uint(value: int) -> bytes:
    return b"\xcf" + struct.pack(">Q", value)


def test_accepts_wide_encodings() -> None:
    wide = (
        b"\xdf\x00\x00\x00\x03"  # map32
        + b"\xda\x00\x0apackage_id"  # str16
        + b"\xde\x00\x02"  # map16
        + pack("package_name")
        + b"\xd9\x04chat"  # str8
        + pack("publisher_node")
        + pack("alice.os")
        + pack("db")
        + b"\xdb\x00\x00\x00\x08messages"  # str32
        + pack("action")
        + pairs(
            (
                pack("Set"),
                pairs((pack("tx_id"), _wide_uint(1)), (pack("key"), b"\xc6\x00\x00\x00\x01k")),
            )
        )
    )
    assert decode_request(wide) == KvRequest(
        package_id=PACKAGE, db="messages", action=Set(key=b"k", tx_id=1)
    )


@given(st.integers(min_value=0, max_value=127))
def test_accepts_small_numbers_in_every_width(value: int) -> None:
    for encoded in (
        bytes([value]),
        b"\xcc" + struct.pack(">B", value),
        b"\xcd" + struct.pack(">H", value),
        b"\xce" + struct.pack(">I", value),
        _wide_uint(value),
        b"\xd0" + struct.pack(">b", value),  # signed widths carrying a non-negative number
        b"\xd3" + struct.pack(">q", value),
    ):
        data = pairs((pack("BeginTx"), pairs((pack("tx_id"), encoded))))
        assert decode_response(data) == BeginTxResponse(tx_id=value)


def test_accepts_array16_for_no_db() -> None:
    data = pairs(
        (pack("Err"), pairs((pack("NoDb"), b"\xdc\x00\x02" + pack(PACKAGE_MAP) + pack("d"))))
    )
    assert decode_response(data) == ErrResponse(error=NoDb(package_id=PACKAGE, db="d"))


# --- Fuzz: decode or DecodeError, nothing else ---------------------------------------


def _decodes_or_raises_decode_error(data: bytes) -> None:
    for decode in (decode_request, decode_response):
        with contextlib.suppress(DecodeError):
            decode(data)


@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    _decodes_or_raises_decode_error(data)


@given(st.one_of(requests.map(encode_request), responses.map(encode_response)), st.data())
def test_mutated_bodies_decode_or_raise_decode_error(data: bytes, draw: st.DataObject) -> None:
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        position = draw.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(mutated)))
    _decodes_or_raises_decode_error(bytes(mutated[:cut]))
    _decodes_or_raises_decode_error(bytes(mutated))


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=U64_MAX)
    | st.floats()
    | st.sampled_from(
        ["Open", "Get", "Set", "Ok", "Err", "NoDb", "tx_id", "key", "db", "package_id"]
    )
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["package_id", "package_name", "publisher_node", "db", "action", "key", "tx_id"]
            )
            | st.text(max_size=4),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(msgpack_values)
def test_random_msgpack_values_decode_or_raise_decode_error(value: object) -> None:
    _decodes_or_raises_decode_error(pack(value))


@given(st.text(max_size=200))
def test_random_text_is_parsed_or_raises_decode_error(text: str) -> None:
    with contextlib.suppress(DecodeError):
        decode_capability_params(text)


# --- Capability params -----------------------------------------------------------------


def test_capability_params_canonical_text() -> None:
    params = KvCapabilityParams(kind="write", package_id=PACKAGE, db="messages")
    assert encode_capability_params(params) == (
        '{"kind": "write", "db_key": '
        '[{"package_name": "chat", "publisher_node": "alice.os"}, "messages"]}'
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"kind": "read", "db_key": ["chat:alice.os", "messages"]}',
        '{"db_key":[{"publisher_node":"alice.os","package_name":"chat"},"messages"],"kind":"read"}',
        ' {\n "kind" : "read" ,\n "db_key" : [ "chat:alice.os" , "messag\\u0065s" ] }\n',
    ],
)
def test_capability_params_compare_by_parsed_value(text: str) -> None:
    assert decode_capability_params(text) == KvCapabilityParams(
        kind="read", package_id=PACKAGE, db="messages"
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"kind": "admin", "db_key": ["chat:alice.os", "d"]}', "'read' or 'write', got 'admin'"),
        ('{"kind": "READ", "db_key": ["chat:alice.os", "d"]}', "'read' or 'write'"),
        ('{"kind": null, "db_key": ["chat:alice.os", "d"]}', "'read' or 'write', got nil"),
        ('{"db_key": ["chat:alice.os", "d"]}', "missing field kind"),
        ('{"kind": "read", "db_key": ["chat:alice.os", "d"], "x": 1}', "unexpected field 'x'"),
        (
            '{"kind": "read", "kind": "read", "db_key": ["chat:alice.os", "d"]}',
            "duplicate map key 'kind'",
        ),
        (
            '{"kind": "read", "db_key": ["chat:alice.os"]}',
            "db_key: expected an array of 2, got array of 1",
        ),
        ('{"kind": "read", "db_key": {"a": 1, "b": 2}}', "got map of 2"),
        ('{"kind": "read", "db_key": ["Chat:alice.os", "d"]}', "package_name must match"),
        ('{"kind": "read", "db_key": ["chat", "d"]}', "package_name:publisher_node"),
        (
            '{"kind": "read", "db_key": [{"package_name": "chat"}, "d"]}',
            "missing field publisher_node",
        ),
        ('{"kind": "read", "db_key": [7, "d"]}', "PackageId: expected a map, got int"),
        ('{"kind": "read", "db_key": ["chat:alice.os", ".."]}', "one path component"),
        ('{"kind": "read", "db_key": ["chat:alice.os", 5]}', "db: expected str, got int"),
        ('["read"]', "capability params: expected a map, got array"),
        ("kind=read", "JSONDecodeError"),
        ('{"kind": NaN, "db_key": ["chat:alice.os", "d"]}', "NaN is not valid JSON"),
        ('{"kind": "read", "db_key": ["chat:alice.os", "d"]} x', "JSONDecodeError: Extra data"),
        ("[" * 100_000 + "]" * 100_000, "nesting too deep"),
    ],
)
def test_capability_params_reject(text: str, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_capability_params(text)


def test_capability_params_reject_non_text() -> None:
    with pytest.raises(DecodeError, match="JSON text, got bytes"):
        decode_capability_params(b'{"kind": "read"}')  # type: ignore[arg-type]


def test_capability_params_escape_non_ascii() -> None:
    params = KvCapabilityParams(kind="read", package_id=PACKAGE, db="café")
    text = encode_capability_params(params)
    assert text.isascii()
    assert json.loads(text)["db_key"][1] == "café"


# --- Variants beyond the core set ------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "wire"),
    [
        (
            Scan(prefix=b"u:", limit=10),
            {
                "Scan": {
                    "prefix": b"u:",
                    "start": None,
                    "end": None,
                    "reverse": False,
                    "keys_only": False,
                    "limit": 10,
                    "cursor": None,
                    "tx_id": None,
                }
            },
        ),
        (TxGet(key=b"k", tx_id=7), {"TxGet": {"key": b"k", "tx_id": 7}}),
        (TxGetMany(count=2, tx_id=7), {"TxGetMany": {"count": 2, "tx_id": 7}}),
        (SetMany(count=3), {"SetMany": {"count": 3}}),
        (Increment(key=b"c", delta=-2), {"Increment": {"key": b"c", "delta": -2}}),
        (CompareAndSwap(key=b"k"), {"CompareAndSwap": {"key": b"k"}}),
        (Rollback(tx_id=1), {"Rollback": {"tx_id": 1}}),
        (
            DeleteRange(start=b"a", end=b"b"),
            {"DeleteRange": {"prefix": None, "start": b"a", "end": b"b"}},
        ),
        (
            Revoke(process=ProcessId.parse("reader:guest:alice.os")),
            {
                "Revoke": {
                    "process": {
                        "process_name": "reader",
                        "package_name": "guest",
                        "publisher_node": "alice.os",
                    }
                }
            },
        ),
        (Capabilities(), "Capabilities"),
        (WriteBatch(tx_id=None, count=2), {"WriteBatch": {"tx_id": None, "count": 2}}),
        (WriteBatch(tx_id=5, count=0), {"WriteBatch": {"tx_id": 5, "count": 0}}),
        (
            CommitBatch(tx_id=2**64 - 1, count=100),
            {"CommitBatch": {"tx_id": 2**64 - 1, "count": 100}},
        ),
    ],
)
def test_new_action_wire_shapes(action: KvAction, wire: object) -> None:
    assert encode_request(KvRequest(package_id=PACKAGE, db="messages", action=action)) == body(wire)


@pytest.mark.parametrize(
    ("response", "wire"),
    [
        (ScanResponse(count=2, cursor=b"z"), {"Scan": {"count": 2, "cursor": b"z"}}),
        (ScanResponse(count=0, cursor=None), {"Scan": {"count": 0, "cursor": None}}),
        (IncrementResponse(value=-(2**63)), {"Increment": -(2**63)}),
        (
            CapabilitiesResponse(read=True, write=False),
            {"Capabilities": {"read": True, "write": False}},
        ),
        (
            ErrResponse(error=CasMismatch(present=False)),
            {"Err": {"CasMismatch": {"present": False}}},
        ),
        (ErrResponse(error=TransactionConflict(tx_id=9)), {"Err": {"TransactionConflict": 9}}),
        (ErrResponse(error=NotAnInteger()), {"Err": "NotAnInteger"}),
    ],
)
def test_new_response_wire_shapes(response: KvResponse, wire: object) -> None:
    assert encode_response(response) == pack(wire)


_FULL_SCAN = {
    "prefix": None,
    "start": None,
    "end": None,
    "reverse": False,
    "keys_only": False,
    "limit": None,
    "cursor": None,
    "tx_id": None,
}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (body({"Scan": {**_FULL_SCAN, "prefix": b"a", "start": b"b"}}), "prefix excludes"),
        (body({"Scan": {**_FULL_SCAN, "prefix": b"a", "end": b"b"}}), "prefix excludes"),
        (body({"DeleteRange": {"prefix": b"a", "start": b"b", "end": None}}), "prefix excludes"),
        (body({"Scan": {**_FULL_SCAN, "reverse": 0}}), "Scan.reverse: expected bool, got int"),
        (body({"Scan": {**_FULL_SCAN, "limit": -1}}), "Scan.limit: expected uint"),
        (body({"Scan": {**_FULL_SCAN, "cursor": "k"}}), "Scan.cursor: expected bin, got str"),
        (body({"Scan": {k: v for k, v in _FULL_SCAN.items() if k != "tx_id"}}), "missing field"),
        (body({"Increment": {"key": b"k", "delta": 2**63}}), "outside -2\\*\\*63"),
        (body({"Increment": {"key": b"k", "delta": 1.0}}), "expected int, got float"),
        (body({"Increment": {"key": b"k", "delta": True}}), "expected int, got bool"),
        (body({"TxGet": {"key": b"k", "tx_id": None}}), "TxGet.tx_id: expected uint, got nil"),
        (body({"GetMany": {"count": -1}}), "GetMany.count: expected uint"),
        (body({"GetMany": 3}), "GetMany: expected a map, got int"),
        (body({"GetMany": {"count": 3, "tx_id": 7}}), "GetMany: unexpected field"),
        (body({"TxGetMany": {"count": 3, "tx_id": None}}), "TxGetMany.tx_id: expected uint"),
        (body({"TxGetMany": {"count": 3}}), "TxGetMany: missing field"),
        (body({"TxGetMany": {"count": -1, "tx_id": 7}}), "TxGetMany.count: expected uint"),
        (body({"Capabilities": None}), "Capabilities takes no payload"),
        (body({"Revoke": {"process": "r:g:alice.os"}}), "ProcessId: expected a map, got str"),
        (
            body(
                {
                    "Revoke": {
                        "process": {"process_name": "R", "package_name": "g", "publisher_node": "x"}
                    }
                }
            ),
            "process_name must match",
        ),
        (body({"WriteBatch": {"count": 1}}), "WriteBatch: missing field tx_id"),
        (body({"WriteBatch": {"tx_id": None, "count": None}}), "WriteBatch.count: expected uint"),
        (body({"WriteBatch": {"tx_id": -1, "count": 1}}), "WriteBatch.tx_id: expected uint"),
        (body({"WriteBatch": {"tx_id": "1", "count": 1}}), "WriteBatch.tx_id: expected uint"),
        (body({"WriteBatch": {"tx_id": None, "count": True}}), "expected uint, got bool"),
        (body({"WriteBatch": [None, 1]}), "WriteBatch: expected a map"),
        (body("WriteBatch"), "WriteBatch needs a payload"),
        (body({"CommitBatch": {"tx_id": None, "count": 1}}), "CommitBatch.tx_id: expected uint"),
        (body({"CommitBatch": {"tx_id": 1}}), "CommitBatch: missing field count"),
        (
            body({"CommitBatch": {"tx_id": 1, "count": 1, "key": b"k"}}),
            "CommitBatch: unexpected field",
        ),
    ],
    ids=case_id,
)
def test_rejects_malformed_new_actions(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_request(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (pack({"Increment": 2**63}), "outside -2\\*\\*63"),
        (pack({"Scan": {"count": 1}}), "missing field cursor"),
        (pack({"Capabilities": {"read": 1, "write": True}}), "expected bool, got int"),
        (pack({"Err": {"CasMismatch": {}}}), "missing field present"),
        (pack({"Err": "TransactionConflict"}), "needs a payload"),
        (pack({"Err": {"NotAnInteger": 1}}), "takes no payload"),
    ],
    ids=case_id,
)
def test_rejects_malformed_new_responses(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_response(data)


def test_encode_refuses_a_delta_outside_int64() -> None:
    with pytest.raises(ValueError, match="int64"):
        encode_request(
            KvRequest(package_id=PACKAGE, db="d", action=Increment(key=b"k", delta=2**63))
        )


# --- Equality, hashing and repr (``protocol/variant.py``) ---------------------------
#
# Every message and error class inherits them from ``Variant`` instead of
# having attrs generate them: each must behave exactly as attrs' own methods
# would, which a twin class with those generated methods shows.

VARIANTS: dict[type, st.SearchStrategy[object]] = {
    **ACTIONS,
    **RESPONSES,
    **ERRORS,
    KvRequest: requests,
    KvCapabilityParams: capability_params,
}


def _twin(cls: type) -> Callable[[object], object]:
    """``value`` as an object of a twin of ``cls`` whose methods attrs generated."""
    fields = attrs.fields(cls)
    twin = attrs.make_class(
        cls.__name__, {f.name: attrs.field(kw_only=True) for f in fields}, frozen=True
    )
    twin.__qualname__ = cls.__qualname__
    return lambda value: twin(**{f.name: getattr(value, f.name) for f in fields})


def test_every_variant_has_its_methods_from_variant() -> None:
    for cls in VARIANTS:
        assert issubclass(cls, Variant), cls
        for method in ("__eq__", "__hash__", "__repr__"):
            assert getattr(cls, method) is getattr(Variant, method), (cls, method)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_variant_methods_match_attrs_generated_ones(variant: type, data: st.DataObject) -> None:
    twin = _twin(variant)
    a, b = data.draw(VARIANTS[variant]), data.draw(VARIANTS[variant])
    assert repr(a) == repr(twin(a))
    assert (a == b) == (twin(a) == twin(b))
    assert (a != b) == (twin(a) != twin(b))
    if a == b:
        assert hash(a) == hash(b)
    same = variant(**{f.name: getattr(a, f.name) for f in attrs.fields(variant)})
    assert same is not a
    assert same == a
    assert hash(same) == hash(a)


def test_variants_of_other_classes_are_never_equal() -> None:
    assert Get(key=b"k") != Exists(key=b"k")
    assert Get(key=b"k").__eq__(Exists(key=b"k")) is NotImplemented
    assert OkResponse() != RemoveDb()
    assert OkResponse() == OkResponse()
    assert len({Get(key=b"k"), Get(key=b"k"), Exists(key=b"k"), OkResponse()}) == 3
    assert repr(ErrResponse(error=NoTx(tx_id=3))) == "ErrResponse(error=NoTx(tx_id=3))"
