"""send: a KvRequest as JSON in, the KvResponse as JSON out; and the meaning encoder."""

from __future__ import annotations

import json
from pathlib import Path

from kvruntime.cli._meaning import request_from_json
from protocol.golden import load_golden_vectors, response_from_meaning, response_to_meaning
from protocol.ids import PackageId
from protocol.messages import KvRequest, Set

from .conftest import APP, fail, kvr, ok


def _req(action: object, db: str = "notes") -> str:
    return json.dumps({"package_id": APP, "db": db, "action": action})


def test_open_set_get_through_send(home: Path) -> None:
    assert ok(kvr("send", _req("Open"), home=home)) == '"Ok"\n'
    set_ = {"Set": {"key": {"utf8": "hello"}}}
    assert ok(kvr("send", _req(set_), "--blob", "world", home=home)) == '"Ok"\n'
    out = ok(kvr("send", _req({"Get": "68656c6c6f"}), "--text", home=home))
    assert out == '{"Get": "68656c6c6f"}\nworld\n'
    raw = kvr("send", _req({"Get": {"utf8": "hello"}}), "--raw", home=home)
    assert raw.stdout == b'{"Get": "68656c6c6f"}\nworld'
    doc = json.loads(ok(kvr("send", _req({"Exists": "00"}), "--json", home=home)))
    assert doc == {"response": {"Exists": False}, "blob": None}


def test_err_responses_are_printed_and_exit_1(home: Path) -> None:
    ok(kvr("send", _req("Open"), home=home))
    result = kvr("send", _req({"Get": "00"}, db="nope"), home=home)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"Err": {"NoDb": [APP, "nope"]}}
    # another package's process holds no capability on APP's db
    other = kvr("send", _req({"Get": "00"}), "--as", "app:other.os", home=home)
    fail(other, 2, "bad process id")
    other = kvr("send", _req({"Get": "00"}), "--as", "spy:other:pub.os", home=home)
    assert other.returncode == 1
    assert json.loads(other.stdout) == {"Err": "NoReadCap"}
    # a Set without a blob is what the protocol calls malformed
    bare = kvr("send", _req({"Set": {"key": "00", "tx_id": None}}), home=home)
    assert json.loads(bare.stdout) == {"Err": "MalformedRequest"}


def test_bad_json_and_bad_shapes_are_usage_errors(home: Path) -> None:
    fail(kvr("send", '{"package_id": ', home=home), 2, "malformed JSON")
    fail(kvr("send", _req("Fly"), home=home), 2, "not a KvRequest")
    fail(kvr("send", _req({"Get": "zz"}), home=home), 2, "not a KvRequest")
    bad_pkg = json.dumps({"package_id": "NOPE", "db": "x", "action": "Open"})
    fail(kvr("send", bad_pkg, home=home), 2, "not a KvRequest")
    fail(kvr("send", _req({"Get": "00"}), home=home), 3, "does not exist")  # only Open creates
    assert not home.exists()


def test_request_json_accepts_utf8_and_an_omitted_tx_id() -> None:
    text = _req({"Set": {"key": {"utf8": "é"}}})
    assert request_from_json(text) == KvRequest(
        package_id=PackageId.parse(APP), db="notes", action=Set(key="é".encode(), tx_id=None)
    )


def test_response_meaning_matches_every_golden_response() -> None:
    vectors = [v for v in load_golden_vectors().canonical if v.kind == "response"]
    assert len(vectors) > 10
    for vector in vectors:
        assert response_to_meaning(response_from_meaning(vector.meaning)) == vector.meaning, vector


def test_send_refuses_odd_requests_without_traceback(home: Path) -> None:
    ok(kvr("send", _req("Open"), home=home))
    for text, message in [
        ("[1]", "KvRequest is not a JSON object"),
        ('"Open"', "KvRequest is not a JSON object"),
        ("null", "KvRequest is not a JSON object"),
        ("{", "malformed JSON"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        (_req({"Get": {"utf8": 5}}), "takes a string"),
        ('{"a": ' * 900 + "1" + "}" * 900, "nested too deeply"),
        (_req({"Commit": {"tx_id": -1}}), "expected a u64 integer, got -1"),
        (_req({"Commit": {"tx_id": 2**64}}), "expected a u64 integer"),
        (_req("Bogus"), "not a KvAction: 'Bogus'"),
    ]:
        fail(kvr("send", text, home=home), 2, message)
    # a process the runtime runs itself cannot be borrowed
    fail(kvr("send", _req({"Get": "00"}), "--as", "kv:distro:sys", home=home), 2, "already running")


# --- Bodies in Hyperware's own forms (--form json / --form msgpack) ---------------------

_HW_PKG = {"package_name": "app", "publisher_node": "cli-test.os"}


def _hw(action: object, db: str = "notes") -> str:
    """A request as process_lib's serde_json writes it."""
    return json.dumps({"package_id": _HW_PKG, "db": db, "action": action}, separators=(",", ":"))


def test_a_json_body_is_sent_as_is_and_answered_in_json(home: Path) -> None:
    assert ok(kvr("send", "--form", "json", _hw("Open"), home=home)) == '"Ok"\n'
    hello = list(b"hello")
    set_ = {"Set": {"key": hello, "tx_id": None}}
    assert ok(kvr("send", "--form", "json", _hw(set_), "--blob", "world", home=home)) == '"Ok"\n'
    out = ok(kvr("send", "--form", "json", _hw({"Get": hello}), "--text", home=home))
    assert out == '{"Get":[104,101,108,108,111]}\nworld\n'  # the answer's own bytes
    # An error Hyperware's KvError lacks arrives as one it has; exit 1 for an Err.
    missing = kvr("send", "--form", "json", _hw({"Get": [0]}, db="nope"), home=home)
    assert missing.returncode == 1
    assert json.loads(missing.stdout) == {"Err": {"NoDb": [_HW_PKG, "nope"]}}
    doc = json.loads(ok(kvr("send", "--form", "json", _hw({"Get": hello}), "--json", home=home)))
    assert doc == {"form": "json", "body": {"Get": hello}, "blob": {"utf8": "world"}}
    # The value is the same one the canonical client reads.
    assert ok(kvr("get", APP, "notes", "hello", "--raw", home=home)) == "world"


def test_a_msgpack_body_in_hex_is_answered_in_its_own_byte_form(home: Path) -> None:
    from protocol.forms import Form, encode_request_in
    from protocol.messages import Get, KvRequest, Open
    from protocol.messages import Set as SetAction

    pkg = PackageId.parse(APP)

    def body(action: object, form: Form) -> str:
        request = KvRequest(package_id=pkg, db="notes", action=action)  # type: ignore[arg-type]
        return encode_request_in(request, form).hex()

    assert ok(kvr("send", "--form", "msgpack", body(Open(), Form.ARRAY), home=home)) == "a24f6b\n"
    set_ = body(SetAction(key=b"k", tx_id=None), Form.ARRAY)
    assert ok(kvr("send", "--form", "msgpack", set_, "--blob", "v", home=home)) == "a24f6b\n"
    # rmp-serde's arrays of ints in, arrays of ints out: {"Get": [0x6b]}
    array = ok(
        kvr("send", "--form", "msgpack", body(Get(key=b"k"), Form.ARRAY), "--text", home=home)
    )
    assert array == "81a3476574916b\nv\n"
    # bin in, bin out: {"Get": bin 0x6b}
    canonical = body(Get(key=b"k"), Form.CANONICAL)
    assert (
        ok(kvr("send", "--form", "msgpack", canonical, "--text", home=home))
        == "81a3476574c4016b\nv\n"
    )
    doc = json.loads(ok(kvr("send", "--form", "msgpack", canonical, "--json", home=home)))
    assert doc == {"form": "canonical", "body": "81a3476574c4016b", "blob": {"utf8": "v"}}


def test_a_body_in_the_wrong_form_or_no_form_is_a_usage_error(home: Path) -> None:
    ok(kvr("send", "--form", "json", _hw("Open"), home=home))
    fail(kvr("send", "--form", "json", '{"package_id":1}', home=home), 2, "not a KvRequest")
    fail(kvr("send", "--form", "msgpack", "zz", home=home), 2, "not hex")
    fail(kvr("send", "--form", "msgpack", "c1", home=home), 2, "not a KvRequest")
    hex_of_json = _hw("Open").encode().hex()  # JSON bytes are not a msgpack body
    fail(kvr("send", "--form", "msgpack", hex_of_json, home=home), 2, "use --form json")
