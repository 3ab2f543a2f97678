"""The golden vectors, checked in both directions against the codec."""

from __future__ import annotations

import json
import typing

import msgpack
import pytest

from protocol.codec import (
    DecodeError,
    decode_capability_params,
    decode_request,
    decode_response,
    encode_capability_params,
    encode_request,
    encode_response,
)
from protocol.forms import (
    Form,
    decode_request_in_any_form,
    decode_response_in_any_form,
    encode_answer,
    encode_request_in,
    encode_response_in,
    hyperware_error,
)
from protocol.golden import (
    BodyVector,
    CapabilityVector,
    GoldenFormatError,
    HyperwareAnswer,
    MalformedBody,
    MalformedCapability,
    MalformedJson,
    capability_params_from_meaning,
    error_from_meaning,
    load_golden_vectors,
    request_from_meaning,
    response_from_meaning,
    value_from_meaning,
)
from protocol.messages import (
    Delete,
    ErrResponse,
    Get,
    KvAction,
    KvError,
    KvRequest,
    KvResponse,
    Set,
)

VECTORS = load_golden_vectors()


def _decode(kind: str, data: bytes) -> KvRequest | KvResponse:
    return decode_request(data) if kind == "request" else decode_response(data)


def _encode(value: KvRequest | KvResponse) -> bytes:
    return encode_request(value) if isinstance(value, KvRequest) else encode_response(value)


def _name(vector: object) -> str:
    return str(getattr(vector, "name", vector))


@pytest.mark.parametrize("vector", VECTORS.canonical, ids=_name)
def test_canonical_vector_decodes_to_its_meaning(vector: BodyVector) -> None:
    assert _decode(vector.kind, vector.data) == value_from_meaning(vector.kind, vector.meaning)


@pytest.mark.parametrize("vector", VECTORS.canonical, ids=_name)
def test_canonical_vector_is_what_we_encode(vector: BodyVector) -> None:
    assert _encode(value_from_meaning(vector.kind, vector.meaning)).hex() == vector.data.hex()


@pytest.mark.parametrize("vector", VECTORS.accepted, ids=_name)
def test_accepted_vector_decodes_to_its_meaning(vector: BodyVector) -> None:
    value = value_from_meaning(vector.kind, vector.meaning)
    assert _decode(vector.kind, vector.data) == value
    assert _encode(value) != vector.data, "listed as non-canonical but it is canonical"


@pytest.mark.parametrize("vector", VECTORS.malformed, ids=_name)
def test_malformed_vector_is_rejected(vector: MalformedBody) -> None:
    with pytest.raises(DecodeError):
        _decode(vector.kind, vector.data)


@pytest.mark.parametrize("vector", VECTORS.malformed, ids=_name)
def test_malformed_vector_is_rejected_in_every_form(vector: MalformedBody) -> None:
    with pytest.raises(DecodeError):
        _decode_any(vector.kind, vector.data)


# --- The ARRAY and JSON forms (PROTOCOL.md, "Forms") ------------------------------------------


def _decode_any(kind: str, data: bytes) -> tuple[KvRequest | KvResponse, Form]:
    if kind == "request":
        return decode_request_in_any_form(data)
    return decode_response_in_any_form(data)


def _encode_in(value: KvRequest | KvResponse, form: Form) -> bytes:
    if isinstance(value, KvRequest):
        return encode_request_in(value, form)
    return encode_response_in(value, form)


@pytest.mark.parametrize("vector", VECTORS.canonical, ids=_name)
def test_json_form_of_a_vector_in_both_directions(vector: BodyVector) -> None:
    assert vector.json is not None, "every canonical vector has its JSON form"
    value = value_from_meaning(vector.kind, vector.meaning)
    assert _decode_any(vector.kind, vector.json.encode()) == (value, Form.JSON)
    assert _encode_in(value, Form.JSON).decode() == vector.json


@pytest.mark.parametrize("vector", VECTORS.canonical, ids=_name)
def test_array_form_of_a_vector_in_both_directions(vector: BodyVector) -> None:
    assert vector.array is not None, "every canonical vector has its ARRAY form"
    value = value_from_meaning(vector.kind, vector.meaning)
    # Without a byte field the two msgpack forms are the same bytes, read as CANONICAL.
    form = Form.CANONICAL if vector.array == vector.data else Form.ARRAY
    assert _decode_any(vector.kind, vector.array) == (value, form)
    assert _encode_in(value, Form.ARRAY).hex() == vector.array.hex()


@pytest.mark.parametrize("vector", VECTORS.malformed_json, ids=_name)
def test_malformed_json_vector_is_rejected(vector: MalformedJson) -> None:
    with pytest.raises(DecodeError):
        _decode_any(vector.kind, vector.text.encode())


@pytest.mark.parametrize("vector", VECTORS.hyperware_answers, ids=_name)
def test_hyperware_answer_vector(vector: HyperwareAnswer) -> None:
    error = error_from_meaning(vector.error)
    response = ErrResponse(error=error)
    assert encode_answer(response, Form.JSON, Get(key=b"k")).decode() == vector.json
    assert encode_answer(response, Form.ARRAY, Get(key=b"k")).hex() == vector.array.hex()
    assert vector.mapped == (hyperware_error(error) != error)
    if not vector.mapped:
        assert vector.json == encode_response_in(response, Form.JSON).decode()


def test_every_error_has_its_hyperware_answer() -> None:
    errors = {type(error_from_meaning(v.error)) for v in VECTORS.hyperware_answers}
    assert errors == set(typing.get_args(KvError))
    assert any(v.mapped for v in VECTORS.hyperware_answers)
    assert any(not v.mapped for v in VECTORS.hyperware_answers)


@pytest.mark.parametrize("vector", VECTORS.canonical, ids=_name)
def test_error_display_text(vector: BodyVector) -> None:
    value = value_from_meaning(vector.kind, vector.meaning)
    if isinstance(value, ErrResponse):
        assert str(value.error) == vector.text
    else:
        assert vector.text is None


@pytest.mark.parametrize("vector", VECTORS.capability_params, ids=_name)
def test_capability_params_vector(vector: CapabilityVector) -> None:
    params = capability_params_from_meaning(vector.meaning)
    assert decode_capability_params(vector.text) == params
    if vector.canonical:
        assert json.loads(encode_capability_params(params)) == json.loads(vector.text)


@pytest.mark.parametrize("vector", VECTORS.malformed_capability_params, ids=_name)
def test_malformed_capability_params_rejected(vector: MalformedCapability) -> None:
    with pytest.raises(DecodeError):
        decode_capability_params(vector.text)


# --- The file covers the protocol ------------------------------------------------------


def test_every_variant_has_a_canonical_vector() -> None:
    requests = [
        value_from_meaning("request", v.meaning) for v in VECTORS.canonical if v.kind == "request"
    ]
    responses = [
        value_from_meaning("response", v.meaning) for v in VECTORS.canonical if v.kind == "response"
    ]
    actions = [r.action for r in requests if isinstance(r, KvRequest)]
    errors = [r.error for r in responses if isinstance(r, ErrResponse)]
    assert {type(a) for a in actions} == set(typing.get_args(KvAction))
    assert {type(r) for r in responses} == set(typing.get_args(KvResponse))
    assert {type(e) for e in errors} == set(typing.get_args(KvError))
    for variant in (Set, Delete):
        tx_ids = [a.tx_id for a in actions if isinstance(a, variant)]
        assert None in tx_ids
        assert any(tx_id is not None for tx_id in tx_ids)


#: msgpack's uint formats and their widths in bytes.
UINT_WIDTHS = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def _walk(data: bytes) -> tuple[object, list[tuple[tuple[object, ...], int]]]:
    """Decode ``data`` token by token: its value, and the path and format byte
    of every uint8/16/32/64 token in it (those inside a str or bin are bytes
    of that token, not tokens)."""
    uints: list[tuple[tuple[object, ...], int]] = []

    def sized(at: int, width: int) -> tuple[int, int]:
        return int.from_bytes(data[at : at + width], "big"), at + width

    def value(at: int, path: tuple[object, ...]) -> tuple[object, int]:
        b = data[at]
        at += 1
        if b <= 0x7F:
            return b, at
        if b >= 0xE0:
            return b - 0x100, at
        if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
            size, at = (b & 0x1F, at) if b <= 0xBF else sized(at, 1 << (b - 0xD9))
            return data[at : at + size].decode(), at + size
        if b in (0xC4, 0xC5, 0xC6):
            size, at = sized(at, 1 << (b - 0xC4))
            return data[at : at + size], at + size
        if b in UINT_WIDTHS:
            uints.append((path, b))
            return sized(at, UINT_WIDTHS[b])
        if b in (0xD0, 0xD1, 0xD2, 0xD3):
            width = 1 << (b - 0xD0)
            return int.from_bytes(data[at : at + width], "big", signed=True), at + width
        if b == 0xC0:
            return None, at
        if b in (0xC2, 0xC3):
            return b == 0xC3, at
        if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
            size, at = (b & 0x0F, at) if b <= 0x9F else sized(at, 2 << (b - 0xDC))
            items = []
            for index in range(size):
                item, at = value(at, (*path, index))
                items.append(item)
            return items, at
        if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
            size, at = (b & 0x0F, at) if b <= 0x8F else sized(at, 2 << (b - 0xDE))
            entries = {}
            for _ in range(size):
                key, at = value(at, (*path, "<key>"))
                entries[key], at = value(at, (*path, key))
            return entries, at
        raise AssertionError(f"format byte {b:#x} is not in the schema")

    decoded, end = value(0, ())
    assert end == len(data), "trailing bytes"
    return decoded, uints


def test_the_token_walker_reads_what_msgpack_reads() -> None:
    for vector in VECTORS.canonical:
        decoded, _ = _walk(vector.data)
        assert decoded == msgpack.unpackb(vector.data, raw=False, strict_map_key=False)


def test_the_token_walker_sees_uints_only_where_they_are_tokens() -> None:
    # The uint format bytes inside a key and a bin are not uint fields (the
    # old check, any byte of any body, took them for all four widths).
    body = msgpack.packb({b"\xcc\xcd": b"\xce\xcf", "n": 2**40}, use_bin_type=True)
    assert {0xCC, 0xCD, 0xCE, 0xCF} <= set(body)
    assert _walk(body)[1] == [(("n",), 0xCF)]


def test_canonical_vectors_use_every_uint_width() -> None:
    seen: dict[int, list[tuple[object, ...]]] = {}
    for vector in VECTORS.canonical:
        for path, marker in _walk(vector.data)[1]:
            seen.setdefault(marker, []).append(path)
    assert set(seen) == set(UINT_WIDTHS)
    # Each width sits in a field of the schema, not in a key.
    assert all("<key>" not in path for paths in seen.values() for path in paths)


def test_vectors_are_well_formed_msgpack() -> None:
    for vector in (*VECTORS.canonical, *VECTORS.accepted):
        msgpack.unpackb(vector.data, strict_map_key=False)


def test_names_are_unique() -> None:
    for section in (
        VECTORS.canonical,
        VECTORS.accepted,
        VECTORS.malformed,
        VECTORS.malformed_json,
        VECTORS.hyperware_answers,
        VECTORS.capability_params,
        VECTORS.malformed_capability_params,
    ):
        names = [v.name for v in section]
        assert len(names) == len(set(names))


def test_there_are_vectors_in_every_section() -> None:
    assert VECTORS.accepted
    assert len(VECTORS.malformed) >= 20
    assert len(VECTORS.malformed_json) >= 20
    assert any(v.canonical for v in VECTORS.capability_params)
    assert any(not v.canonical for v in VECTORS.capability_params)
    assert VECTORS.malformed_capability_params


# --- The meaning notation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "meaning",
    [
        None,
        "Open",
        {"package_id": "chat:alice.os", "db": "d"},
        {"package_id": "chat:alice.os", "db": "d", "action": "Frob"},
        {"package_id": "chat:alice.os", "db": "d", "action": {"Get": "zz"}},
        {"package_id": "chat:alice.os", "db": "d", "action": {"Commit": {"tx_id": -1}}},
        {"package_id": "chat:alice.os", "db": "d", "action": {"Commit": {"tx_id": True}}},
        {"package_id": "chat:alice.os", "db": 5, "action": "Open"},
    ],
)
def test_bad_request_meanings_are_rejected(meaning: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        request_from_meaning(meaning)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "meaning",
    [
        "ok",
        {"Err": "Nope"},
        {"Exists": 1},
        {"Err": {"NoDb": ["chat:alice.os"]}},
        {"BeginTx": {"tx_id": 2**64}},
    ],
)
def test_bad_response_meanings_are_rejected(meaning: object) -> None:
    with pytest.raises(GoldenFormatError):
        response_from_meaning(meaning)  # type: ignore[arg-type]


def test_bad_capability_meaning_is_rejected() -> None:
    with pytest.raises(GoldenFormatError, match="read or write"):
        capability_params_from_meaning({"kind": "admin", "package_id": "chat:x", "db": "d"})
