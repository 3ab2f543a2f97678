"""The blob shapes of batches, scans and compare-and-swap: round trips and strictness."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.blobs import (
    ScanPageWriter,
    decode_cas,
    decode_changes,
    decode_items,
    decode_keys,
    decode_optional_values,
    decode_scan_page,
    decode_writes,
    encode_cas,
    encode_changes,
    encode_items,
    encode_keys,
    encode_optional_values,
    encode_scan_page,
    encode_writes,
)
from protocol.codec import DecodeError

keys = st.lists(st.binary(max_size=20), max_size=40)
items = st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=20)), max_size=40)


@given(keys)
def test_keys_round_trip(value: list[bytes]) -> None:
    assert decode_keys(encode_keys(value), len(value)) == value


@given(items)
def test_items_round_trip(value: list[tuple[bytes, bytes]]) -> None:
    assert decode_items(encode_items(value), len(value)) == value


writes = st.lists(
    st.tuples(st.binary(max_size=20), st.none() | st.binary(max_size=20)), max_size=40
)


@given(writes)
def test_writes_round_trip(value: list[tuple[bytes, bytes | None]]) -> None:
    assert decode_writes(encode_writes(value), len(value)) == value


def test_writes_keep_order_and_duplicates() -> None:
    value: list[tuple[bytes, bytes | None]] = [(b"k", b"1"), (b"k", None), (b"k", b"3")]
    assert decode_writes(encode_writes(value), 3) == value


def test_writes_blob_is_an_array_of_pairs() -> None:
    assert encode_writes([(b"a", b"1"), (b"b", None)]) == msgpack.packb(
        [[b"a", b"1"], [b"b", None]], use_bin_type=True
    )


def test_items_blob_is_a_writes_blob() -> None:
    # A SetMany blob (no deletes) is also a valid WriteBatch blob.
    assert decode_writes(encode_items([(b"a", b"1")]), 1) == [(b"a", b"1")]


@given(st.lists(st.none() | st.binary(max_size=20), max_size=40))
def test_optional_values_round_trip(value: list[bytes | None]) -> None:
    assert decode_optional_values(encode_optional_values(value), len(value)) == value


@given(items, st.booleans())
def test_scan_page_round_trip(value: list[tuple[bytes, bytes]], keys_only: bool) -> None:
    entries: list[tuple[bytes, bytes | None]] = list(value)
    decoded = decode_scan_page(
        encode_scan_page(entries, keys_only=keys_only), len(value), keys_only=keys_only
    )
    assert decoded == [(k, None if keys_only else v) for k, v in value]


def test_scan_page_blob_is_flat() -> None:
    entries: list[tuple[bytes, bytes | None]] = [(b"a", b"1"), (b"b", b"2")]
    assert encode_scan_page(entries, keys_only=False) == _pack([b"a", b"1", b"b", b"2"])
    assert encode_scan_page(entries, keys_only=True) == _pack([b"a", b"b"])


@given(st.lists(items, max_size=5), st.booleans())
def test_a_page_written_in_chunks_is_the_page_written_at_once(
    chunks: list[list[tuple[bytes, bytes]]], keys_only: bool
) -> None:
    writer = ScanPageWriter(keys_only=keys_only)
    for chunk in chunks:
        writer.add([key for key, _ in chunk] if keys_only else [x for pair in chunk for x in pair])
    entries: list[tuple[bytes, bytes | None]] = [pair for chunk in chunks for pair in chunk]
    assert writer.count == len(entries)
    assert writer.blob() == encode_scan_page(entries, keys_only=keys_only)


@given(st.none() | st.binary(max_size=9), st.none() | st.binary(max_size=9))
def test_cas_round_trip(expected: bytes | None, new: bytes | None) -> None:
    assert decode_cas(encode_cas(expected, new)) == (expected, new)


def _pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


@pytest.mark.parametrize(
    ("decode", "data", "match"),
    [
        (lambda d: decode_keys(d, 2), _pack([b"a"]), "expected 2 entries, got 1"),
        (lambda d: decode_keys(d, 1), _pack([b"a", b"b"]), "max_array_len|expected 1"),
        (lambda d: decode_keys(d, 1), _pack(["a"]), "expected bin, got str"),
        (lambda d: decode_keys(d, 1), _pack({"a": b"b"}), "max_map_len|expected an array"),
        (lambda d: decode_keys(d, 1), _pack([b"a"]) + b"\x00", "ExtraData"),
        (lambda d: decode_keys(d, 1), b"\x91\xd4\x01\x00", "ext type 1"),
        (lambda d: decode_keys(d, 1), b"", "blob"),
        (lambda d: decode_items(d, 1), _pack([[b"k"]]), r"expected \[key, value\]"),
        (lambda d: decode_items(d, 1), _pack([[b"k", None]]), "expected bin, got nil"),
        (lambda d: decode_items(d, 1), _pack([[b"k", b"v", b"x"]]), "max_array_len|expected"),
        (decode_cas, _pack([b"a"]), "expected 2 entries"),
        (decode_cas, _pack([b"a", 1]), "expected bin, got int"),
        (lambda d: decode_scan_page(d, 1, keys_only=True), _pack([[b"k", b"v"]]), "expected bin"),
        (lambda d: decode_scan_page(d, 1, keys_only=False), _pack([[b"k", b"v"]]), "expected 2"),
        (lambda d: decode_scan_page(d, 2, keys_only=False), _pack([b"k", b"v"]), "expected 4"),
        (lambda d: decode_scan_page(d, 1, keys_only=False), _pack([b"k", None]), "0 value"),
        (
            lambda d: decode_scan_page(d, 2, keys_only=False),
            _pack([b"a", b"1", "b", b"2"]),
            "1 key",
        ),
        (lambda d: decode_writes(d, 2), _pack([[b"k", None]]), "expected 2 entries, got 1"),
        (lambda d: decode_writes(d, 1), _pack([[None, b"v"]]), "entry 0 key: expected bin"),
        (lambda d: decode_writes(d, 1), _pack([["k", b"v"]]), "entry 0 key: expected bin, got str"),
        (lambda d: decode_writes(d, 1), _pack([[b"k", "v"]]), "entry 0 value: expected bin"),
        (lambda d: decode_writes(d, 1), _pack([[b"k", 0]]), "entry 0 value: expected bin, got int"),
        (lambda d: decode_writes(d, 1), _pack([[b"k"]]), r"expected \[key, value or nil\]"),
        (lambda d: decode_writes(d, 1), _pack([b"k"]), r"expected \[key, value or nil\]"),
        (lambda d: decode_writes(d, 1), _pack([[b"k", b"v", None]]), "max_array_len|expected"),
        (lambda d: decode_writes(d, 2), _pack([[b"a", None], [b"b", True]]), "entry 1 value"),
        (lambda d: decode_writes(d, 1), _pack([{b"k": b"v"}]), "max_map_len|expected"),
        (lambda d: decode_writes(d, 1), _pack([[b"k", None]]) + b"\x00", "ExtraData"),
        (lambda d: decode_writes(d, 1), b"\x91\x92\xc4\x01k\xd4\x01\x00", "ext type 1"),
        (lambda d: decode_writes(d, 0), b"", "blob"),
    ],
)
def test_malformed_blobs_are_decode_errors(decode: object, data: bytes, match: str) -> None:
    assert callable(decode)
    with pytest.raises(DecodeError, match=match):
        decode(data)


# --- change feeds (issue 14) ------------------------------------------------------------

changes = st.lists(
    st.tuples(
        st.integers(1, 2**64 - 1),
        st.sampled_from(["set", "delete", "expire"]),
        st.binary(max_size=16),
        st.none() | st.binary(max_size=16),
    ),
    max_size=8,
)


@given(changes)
def test_changes_round_trip(value: list[tuple[int, str, bytes, bytes | None]]) -> None:
    assert decode_changes(encode_changes(value), len(value)) == value


def test_changes_blob_is_an_array_of_seq_kind_key_value() -> None:
    blob = encode_changes([(7, "set", b"k", b"v"), (8, "delete", b"k", None)])
    assert msgpack.unpackb(blob) == [[7, "set", b"k", b"v"], [8, "delete", b"k", None]]


@pytest.mark.parametrize(
    "bad",
    [
        [[0, "set", b"k", b"v"]],  # seqs start at 1
        [[1, "rename", b"k", b"v"]],  # an unknown kind
        [[1, "set", "k", b"v"]],  # a key is bin
        [[1, "set", b"k", 5]],  # a value is bin or nil
        [[1, "set", b"k"]],  # four fields
        [1],  # an entry is an array
    ],
)
def test_malformed_changes_are_rejected(bad: list[object]) -> None:
    with pytest.raises(DecodeError):
        decode_changes(msgpack.packb(bad, use_bin_type=True), len(bad))
