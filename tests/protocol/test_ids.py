"""PackageId, ProcessId, Address and db-name validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.ids import (
    MAX_DB_NAME_BYTES,
    Address,
    IdError,
    PackageId,
    ProcessId,
    validate_db_name,
)

names = st.from_regex(r"[a-z0-9-]+", fullmatch=True)
nodes = st.from_regex(r"[a-z0-9.-]+", fullmatch=True).filter(lambda n: n not in (".", ".."))


# --- PackageId ---------------------------------------------------------------


def test_package_id_parse_and_format() -> None:
    package_id = PackageId.parse("chat:alice.os")
    assert package_id == PackageId(package_name="chat", publisher_node="alice.os")
    assert str(package_id) == "chat:alice.os"


@given(names, nodes)
def test_package_id_round_trips_through_text(name: str, node: str) -> None:
    package_id = PackageId(package_name=name, publisher_node=node)
    assert PackageId.parse(str(package_id)) == package_id


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("chat", "package_name:publisher_node"),
        ("a:b:c", "package_name:publisher_node"),
        ("", "package_name:publisher_node"),
        (":alice.os", "package_name must match"),
        ("Chat:alice.os", "package_name must match"),
        ("chat.app:alice.os", "package_name must match"),
        ("chat_app:alice.os", "package_name must match"),
        ("chat:", "publisher_node must match"),
        ("chat:Alice.os", "publisher_node must match"),
        ("chat:.", "not be '.' or '..'"),
        ("chat:..", "not be '.' or '..'"),
        ("chat:alice/os", "publisher_node must match"),
        ("chat:alice.os\n", "publisher_node must match"),
        ("chät:alice.os", "package_name must match"),
    ],
)
def test_package_id_rejects_bad_text(text: str, match: str) -> None:
    with pytest.raises(IdError, match=match):
        PackageId.parse(text)


def test_package_id_rejects_non_str_fields() -> None:
    with pytest.raises(IdError, match="package_name must match"):
        PackageId(package_name=b"chat", publisher_node="alice.os")  # type: ignore[arg-type]


def test_id_error_is_a_value_error() -> None:
    assert issubclass(IdError, ValueError)


def test_publisher_node_may_contain_dots() -> None:
    assert PackageId.parse("chat:.alice..os.").publisher_node == ".alice..os."


# --- ProcessId and Address ---------------------------------------------------


def test_process_id_parse_and_format() -> None:
    process = ProcessId.parse("kv:distro:sys")
    assert process == ProcessId(process_name="kv", package_name="distro", publisher_node="sys")
    assert str(process) == "kv:distro:sys"
    assert process.package_id == PackageId(package_name="distro", publisher_node="sys")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("kv:distro", "process_name:package_name:publisher_node"),
        ("kv:distro:sys:x", "process_name:package_name:publisher_node"),
        ("KV:distro:sys", "process_name must match"),
        ("kv:dis tro:sys", "package_name must match"),
        ("kv:distro:..", "not be '.' or '..'"),
    ],
)
def test_process_id_rejects_bad_text(text: str, match: str) -> None:
    with pytest.raises(IdError, match=match):
        ProcessId.parse(text)


def test_address_parse_and_format() -> None:
    address = Address.parse("our.os@kv:distro:sys")
    assert address.node == "our.os"
    assert address.process == ProcessId.parse("kv:distro:sys")
    assert str(address) == "our.os@kv:distro:sys"


@given(nodes, names, names, nodes)
def test_address_round_trips_through_text(node: str, process: str, package: str, pub: str) -> None:
    address = Address(
        node=node,
        process=ProcessId(process_name=process, package_name=package, publisher_node=pub),
    )
    assert Address.parse(str(address)) == address


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("kv:distro:sys", "node@process_name"),
        ("@kv:distro:sys", "node must match"),
        ("..@kv:distro:sys", "not be '.' or '..'"),
        ("our.os@kv:distro", "process_name:package_name:publisher_node"),
        ("a@b@kv:distro:sys", "process_name must match"),
    ],
)
def test_address_rejects_bad_text(text: str, match: str) -> None:
    with pytest.raises(IdError, match=match):
        Address.parse(text)


# --- db names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["messages", "café", "日本語", "a.b", "...", ".hidden", "with space", "x" * MAX_DB_NAME_BYTES],
)
def test_valid_db_names(name: str) -> None:
    assert validate_db_name(name) == name


def test_longest_db_name_counts_bytes_not_characters() -> None:
    name = "é" * (MAX_DB_NAME_BYTES // 2)  # 254 bytes
    assert validate_db_name(name) == name
    with pytest.raises(IdError, match="1 to 255 bytes"):
        validate_db_name(name + "é")  # 256 bytes, 128 characters


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "1 to 255 bytes of UTF-8, got 0"),
        (".", "one path component"),
        ("..", "one path component"),
        ("a/b", "one path component"),
        ("/", "one path component"),
        ("a\\b", "one path component"),
        ("a\x00b", "one path component"),
        ("x" * (MAX_DB_NAME_BYTES + 1), "1 to 255 bytes of UTF-8, got 256"),
        ("a\ud800b", "valid UTF-8"),
        ("\udfff", "valid UTF-8"),
    ],
)
def test_invalid_db_names(name: str, match: str) -> None:
    with pytest.raises(IdError, match=match):
        validate_db_name(name)


@pytest.mark.parametrize("name", [b"messages", None, 3, ["a"]])
def test_db_name_must_be_str(name: object) -> None:
    with pytest.raises(IdError, match="a db name is a str"):
        validate_db_name(name)


@given(st.text(min_size=1))
def test_db_name_validation_matches_the_rules(name: str) -> None:
    try:
        encoded: bytes | None = name.encode("utf-8")
    except UnicodeEncodeError:
        encoded = None
    ok = (
        encoded is not None
        and 0 < len(encoded) <= MAX_DB_NAME_BYTES
        and name not in (".", "..")
        and not any(c in name for c in "/\\\0")
    )
    if ok:
        assert validate_db_name(name) == name
    else:
        with pytest.raises(IdError):
            validate_db_name(name)


def test_a_process_belongs_to_its_own_package_only() -> None:
    process = ProcessId.parse("app:notes:pub.os")
    assert process.belongs_to(PackageId.parse("notes:pub.os"))
    assert not process.belongs_to(PackageId.parse("notes:other.os"))
    assert not process.belongs_to(PackageId.parse("other:pub.os"))
