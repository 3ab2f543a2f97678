"""The three forms (canonical, ARRAY, JSON): round trips, strictness, the answer's form."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import forms
from protocol.codec import DecodeError, encode_request, encode_response
from protocol.forms import (
    HYPERWARE_ACTIONS,
    HYPERWARE_ERRORS,
    Form,
    RocksDbError,
    answer_from_canonical,
    decode_request_in,
    decode_request_in_any_form,
    decode_response_in_any_form,
    encode_answer,
    encode_request_in,
    encode_response_in,
    form_of,
    hyperware_error,
    is_err_answer,
)
from protocol.hot import OK_BODY, get_response_body
from protocol.ids import PackageId
from protocol.messages import (
    ErrResponse,
    Exists,
    Get,
    GetResponse,
    IoError,
    KeyNotFound,
    KeyTooLarge,
    KvAction,
    KvError,
    KvRequest,
    KvResponse,
    LevelDbError,
    MalformedRequest,
    NoDb,
    OkResponse,
    Open,
    Scan,
    Set,
)
from protocol.prefix import RequestDecoder
from tests.protocol.test_codec import ACTIONS, ERRORS, RESPONSES, db_names, package_ids

PACKAGE = PackageId(package_name="chat", publisher_node="alice.os")
PACKAGE_JSON = '{"package_name":"chat","publisher_node":"alice.os"}'
HYPERWARE_RS = Path(__file__).resolve().parents[2] / "conformance/hyperware-kv/src/hyperware.rs"


def _request(action: KvAction, db: str = "messages") -> KvRequest:
    return KvRequest(package_id=PACKAGE, db=db, action=action)


def _json_request(action: str, db: str = "messages") -> bytes:
    return f'{{"package_id":{PACKAGE_JSON},"db":"{db}","action":{action}}}'.encode()


def _expected_form(body: bytes, form: Form, canonical: bytes) -> Form:
    """Rule 2: a msgpack body without byte fields is the same bytes in both forms: CANONICAL."""
    return Form.CANONICAL if form is Form.ARRAY and body == canonical else form


# --- Round trips, every variant in every form ---------------------------------------------


@pytest.mark.parametrize("form", list(Form), ids=lambda f: f.value)
@pytest.mark.parametrize("variant", list(ACTIONS), ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_action_round_trips_in_every_form(
    variant: type, form: Form, data: st.DataObject
) -> None:
    request = KvRequest(
        package_id=data.draw(package_ids),
        db=data.draw(db_names),
        action=data.draw(ACTIONS[variant]),
    )
    body = encode_request_in(request, form)
    expected = _expected_form(body, form, encode_request(request))
    assert decode_request_in_any_form(body) == (request, expected)
    assert RequestDecoder().decode_parts_in_any_form(body) == (
        request.package_id,
        request.db,
        request.action,
        expected,
    )


@pytest.mark.parametrize("form", list(Form), ids=lambda f: f.value)
@pytest.mark.parametrize("variant", [*RESPONSES, *ERRORS], ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_response_and_error_round_trips_in_every_form(
    variant: type, form: Form, data: st.DataObject
) -> None:
    response: KvResponse = (
        ErrResponse(error=data.draw(ERRORS[variant]))
        if variant in ERRORS
        else data.draw(RESPONSES[variant])
    )
    body = encode_response_in(response, form)
    expected = _expected_form(body, form, encode_response(response))
    decoded, decoded_form = decode_response_in_any_form(body)
    assert decoded_form is expected
    if variant in (LevelDbError, IoError):
        # Free text is sent as valid UTF-8 (lone surrogates backslash-escaped).
        assert isinstance(decoded, ErrResponse)
        assert type(decoded.error) is variant
    else:
        assert decoded == response


def test_the_canonical_form_is_codec_s_byte_for_byte() -> None:
    request = _request(Set(key=b"alice", tx_id=7))
    assert encode_request_in(request, Form.CANONICAL) == encode_request(request)
    response = ErrResponse(error=KeyTooLarge(size=9, max=8))
    assert encode_response_in(response, Form.CANONICAL) == encode_response(response)
    assert encode_answer(response, Form.CANONICAL, Get(key=b"k")) == encode_response(response)


def test_json_is_serde_json_s_compact_form() -> None:
    body = encode_request_in(_request(Set(key=b"al", tx_id=None), db="café"), Form.JSON)
    assert body == _json_request('{"Set":{"key":[97,108],"tx_id":null}}', db="café")
    assert encode_response_in(OkResponse(), Form.JSON) == b'"Ok"'
    assert encode_response_in(GetResponse(key=b"\x00\xff"), Form.JSON) == b'{"Get":[0,255]}'


def test_array_form_is_msgpack_with_byte_arrays() -> None:
    body = encode_request_in(_request(Get(key=b"\x00\xff")), Form.ARRAY)
    assert msgpack.unpackb(body)["action"] == {"Get": [0, 255]}
    assert encode_response_in(GetResponse(key=b""), Form.ARRAY) == msgpack.packb({"Get": []})


# --- The first byte, and one form per body ----------------------------------------------------


def test_form_of_tells_json_by_its_first_byte() -> None:
    assert form_of(b'{"package_id"') is Form.JSON
    assert form_of(b'"Ok"') is Form.JSON
    assert form_of(encode_request(_request(Open()))) is Form.CANONICAL
    assert form_of(b" {}") is Form.CANONICAL
    assert form_of(b"") is Form.CANONICAL


def test_json_first_bytes_are_no_msgpack_body() -> None:
    """``{`` and ``"`` are msgpack fixints: a body starting so is an int, never a map or str."""
    for first in b'{"':
        assert msgpack.unpackb(bytes([first])) == first
        with pytest.raises(DecodeError):
            forms.decode_request_in(bytes([first]) + b"\x80", Form.CANONICAL)


def test_a_body_mixing_bin_and_byte_arrays_is_malformed() -> None:
    wire = {
        "package_id": {"package_name": "chat", "publisher_node": "alice.os"},
        "db": "messages",
        "action": {
            "Scan": {
                "prefix": None,
                "start": b"a",  # bin
                "end": [122],  # array
                "reverse": False,
                "keys_only": False,
                "limit": None,
                "cursor": None,
                "tx_id": None,
            }
        },
    }
    with pytest.raises(DecodeError, match="as byte arrays"):
        decode_request_in_any_form(msgpack.packb(wire, use_bin_type=True))


# --- Strictness -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_json_request('{"Get":"alice"}'), "expected an array of bytes, got str"),
        (_json_request('{"Get":[97,256]}'), "outside"),
        (_json_request('{"Get":[97,-1]}'), "outside"),
        (_json_request('{"Get":[97,1.0]}'), "got float"),
        (_json_request('{"Get":[97,true]}'), "got bool"),
        (_json_request('{"Get":[97,null]}'), "got nil"),
        (_json_request('{"Get":{"0":97}}'), "got map"),
        (_json_request('{"Commit":{"tx_id":1.0}}'), "expected uint, got float"),
        (_json_request('{"Commit":{"tx_id":1e3}}'), "expected uint, got float"),
        (_json_request('{"Commit":{"tx_id":18446744073709551616}}'), "over 2\\*\\*64-1"),
        (_json_request('{"Commit":{"tx_id":-1}}'), "negative"),
        (_json_request('{"Commit":{"tx_id":true}}'), "got bool"),
        (_json_request('{"Commit":{"tx_id":NaN}}'), "NaN"),
        (_json_request('{"Commit":{"tx_id":1,"tx_id":2}}'), "duplicate map key"),
        (_json_request('{"Commit":{"tx_id":1,"x":2}}'), "unexpected field"),
        (_json_request('{"Commit":{}}'), "missing field tx_id"),
        (_json_request('{"Set":{"key":[97]}}'), "missing field tx_id"),
        (_json_request('"Frob"'), "unknown KvAction tag"),
        (_json_request('{"Open":null}'), "takes no payload"),
        (_json_request('"Get"'), "needs a payload"),
        (_json_request('"Open"', db="a/b"), "one path component"),
        (_json_request('"Open"') + b"x", "Extra data"),
        (_json_request('"Open"')[:-1], "unbalanced"),
        (_json_request('"Open"').replace(b'"db":', b'"db"'), "JSONDecodeError"),
        (b'{"package_id":{},"package_id":{},"db":"d","action":"Open"}', "duplicate map key"),
        (b'{"package_id":"chat:alice.os","db":"d","action":"Open"}', "expected a map, got str"),
        (_json_request('"Open"').replace(b"messages", b"\xff"), "not valid UTF-8"),
        (b'"Open"', "KvRequest: expected a map, got str"),
        (b"{" + b'"a":{' * 100_000 + b"}" * 100_001, "nested deeper"),
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper"),
        (_json_request('{"Get":[[[[97]]]]}'), "nested deeper"),
    ],
)
def test_malformed_json_is_refused(body: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match) as caught:
        decode_request_in_any_form(body)
    assert not isinstance(caught.value.__cause__, RecursionError)


def test_json_nesting_is_refused_before_json_parses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> object:
        raise AssertionError("json.loads ran on a body nested too deep")

    monkeypatch.setattr(json, "loads", never)
    with pytest.raises(DecodeError, match="nested deeper"):
        decode_request_in_any_form(b"{" + b"[" * 100_000 + b"]" * 100_000 + b"}")


def test_brackets_inside_json_strings_are_text() -> None:
    db = '[[[[[{{{{{\\"]]'
    body = _json_request('"Open"', db=db)
    assert decode_request_in_any_form(body) == (_request(Open(), db='[[[[[{{{{{"]]'), Form.JSON)


def test_json_body_over_the_size_limit_is_refused_unparsed() -> None:
    body = _json_request('{"Get":[' + ",".join(["97"] * 1000) + "]}")
    with pytest.raises(DecodeError, match="over the limit"):
        decode_request_in_any_form(body, max_size=len(body) - 1)
    assert decode_request_in_any_form(body, max_size=len(body))[1] is Form.JSON


@pytest.mark.parametrize(
    ("byte", "match"),
    [(256, "outside"), (-1, "outside"), (True, "got bool"), (None, "got nil"), (1.5, "got float")],
)
def test_malformed_array_form_is_refused(byte: object, match: str) -> None:
    wire = {
        "package_id": {"package_name": "chat", "publisher_node": "alice.os"},
        "db": "messages",
        "action": {"Get": [97, byte]},
    }
    with pytest.raises(DecodeError, match=match):
        decode_request_in_any_form(msgpack.packb(wire, use_bin_type=True))


@given(st.binary(max_size=200).map(lambda tail: b"{" + tail))
def test_any_json_like_body_is_a_request_or_a_decode_error(body: bytes) -> None:
    try:
        request, form = decode_request_in_any_form(body)
    except DecodeError:
        return
    assert form is Form.JSON
    assert isinstance(request, KvRequest)


# --- The answer in the request's form (Rule 4) --------------------------------------------------


def _hyperware_variants(enum: str) -> set[str]:
    """The variant names of ``enum`` in the conformance client's declaration of process_lib."""
    text = HYPERWARE_RS.read_text()
    body = re.search(rf"pub enum {enum} \{{(.*?)\n        \}}", text, re.DOTALL)
    assert body is not None, f"no enum {enum} in {HYPERWARE_RS}"
    return set(re.findall(r"^\s*([A-Z]\w*)", body.group(1), re.MULTILINE))


def test_hyperware_tables_are_process_lib_s_declaration() -> None:
    assert {cls.TAG for cls in HYPERWARE_ACTIONS} == _hyperware_variants("KvAction")
    assert {cls.TAG for cls in HYPERWARE_ERRORS} | {RocksDbError.TAG} == _hyperware_variants(
        "KvError"
    )


@pytest.mark.parametrize("variant", list(ERRORS), ids=lambda c: c.__name__)
@given(data=st.data())
def test_an_answer_to_a_hyperware_action_holds_only_hyperware_s_errors(
    variant: type, data: st.DataObject
) -> None:
    error: KvError = data.draw(ERRORS[variant])
    response = ErrResponse(error=error)
    mapped = hyperware_error(error)
    hyperware_tags = {cls.TAG for cls in HYPERWARE_ERRORS} | {RocksDbError.TAG}
    assert mapped.TAG in hyperware_tags
    for form in (Form.ARRAY, Form.JSON):
        body = encode_answer(response, form, Get(key=b"k"))
        wire = json.loads(body) if form is Form.JSON else msgpack.unpackb(body)
        tag = wire["Err"] if isinstance(wire["Err"], str) else next(iter(wire["Err"]))
        assert tag in hyperware_tags
        # An extension action's sender uses kvruntime's types: the error as it is.
        assert encode_answer(response, form, Exists(key=b"k")) == encode_response_in(response, form)
    if type(error) in HYPERWARE_ERRORS:
        assert mapped == error
        assert encode_answer(response, Form.JSON, Get(key=b"k")) == encode_response_in(
            response, Form.JSON
        )


def _err(error: KvError) -> ErrResponse:
    return ErrResponse(error=error)


@given(response=st.one_of(*RESPONSES.values(), *(e.map(_err) for e in ERRORS.values())))
def test_is_err_answer_tells_an_err_in_every_form(response: KvResponse) -> None:
    for form in Form:
        for action in (Get(key=b"k"), Exists(key=b"k")):  # mapped to Hyperware's, and not
            assert is_err_answer(encode_answer(response, form, action)) == isinstance(
                response, ErrResponse
            )


@pytest.mark.parametrize(
    "body", [b"", b"\xc1", b"{", b'{"Err":1', b'"Err"', b"\x81\xa3Err", b'{"Err":1,"Ok":2}', b"[1]"]
)
def test_is_err_answer_is_false_for_anything_else(body: bytes) -> None:
    assert not is_err_answer(body)


def test_the_mapping_keeps_the_error_s_kind_and_numbers() -> None:
    assert hyperware_error(LevelDbError(message="Corruption")) == RocksDbError(message="Corruption")
    assert hyperware_error(KeyTooLarge(size=70000, max=65536)) == RocksDbError(
        message="KeyTooLarge: key of 70000 bytes exceeds the limit of 65536"
    )
    body = encode_answer(ErrResponse(error=KeyTooLarge(size=3, max=2)), Form.JSON, Set(key=b"k"))
    assert body == b'{"Err":{"RocksDBError":"KeyTooLarge: key of 3 bytes exceeds the limit of 2"}}'
    error = NoDb(package_id=PACKAGE, db="m")
    assert encode_answer(ErrResponse(error=error), Form.ARRAY, Open()) == msgpack.packb(
        {"Err": {"NoDb": [{"package_name": "chat", "publisher_node": "alice.os"}, "m"]}}
    )


def test_an_undecodable_body_is_answered_without_mapping() -> None:
    malformed = ErrResponse(error=MalformedRequest())
    assert encode_answer(malformed, Form.JSON, None) == b'{"Err":"MalformedRequest"}'
    assert encode_answer(malformed, form_of(b"\xc1"), None) == encode_response(malformed)


def test_answers_encoded_canonically_are_re_encoded_for_the_form() -> None:
    assert answer_from_canonical(OK_BODY, Form.CANONICAL, Get(key=b"k")) is OK_BODY
    assert answer_from_canonical(OK_BODY, Form.JSON, Set(key=b"k")) == b'"Ok"'
    body = get_response_body(b"ab")
    assert answer_from_canonical(body, Form.JSON, Get(key=b"ab")) == b'{"Get":[97,98]}'
    assert answer_from_canonical(body, Form.ARRAY, Get(key=b"ab")) == msgpack.packb(
        {"Get": [97, 98]}
    )
    not_found = encode_response(ErrResponse(error=KeyNotFound()))
    assert answer_from_canonical(not_found, Form.JSON, Get(key=b"k")) == b'{"Err":"KeyNotFound"}'


# --- The request decoder of the kv process --------------------------------------------------------


def test_request_decoder_reads_every_form_after_a_known_head() -> None:
    decoder = RequestDecoder()
    get = _request(Get(key=b"alice"))
    assert decoder.decode_parts_in_any_form(encode_request(get))[3] is Form.CANONICAL
    # The head is known now: the array-form action after it fails the fast
    # path's bin reading and is read as the ARRAY form.
    assert decoder.decode_parts_in_any_form(encode_request_in(get, Form.ARRAY)) == (
        PACKAGE,
        "messages",
        Get(key=b"alice"),
        Form.ARRAY,
    )
    scan = _request(Scan(prefix=b"a"))
    assert decoder.decode_parts_in_any_form(encode_request_in(scan, Form.JSON))[2:] == (
        scan.action,
        Form.JSON,
    )
    with pytest.raises(DecodeError):
        decoder.decode_parts_in_any_form(encode_request(get)[:-1])
    with pytest.raises(DecodeError):
        decoder.decode_parts_in_any_form(_json_request('{"Get":"alice"}'))


def test_the_forms_cover_every_variant() -> None:
    assert set(ACTIONS) == set(typing.get_args(KvAction))
    assert set(RESPONSES) == set(typing.get_args(KvResponse))
    assert set(ERRORS) == set(typing.get_args(KvError))
    assert decode_request_in(_json_request('"Open"'), Form.JSON) == _request(Open())
