"""The blob shapes of batches, scans and compare-and-swap: round trips and strictness."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.blobs import (
    decode_cas,
    decode_items,
    decode_keys,
    decode_optional_values,
    decode_scan_page,
    encode_cas,
    encode_items,
    encode_keys,
    encode_optional_values,
    encode_scan_page,
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
        (lambda d: decode_items(d, 1), _pack([[b"k", None]]), "expected bin, got NoneType"),
        (lambda d: decode_items(d, 1), _pack([[b"k", b"v", b"x"]]), "max_array_len|expected"),
        (decode_cas, _pack([b"a"]), "expected 2 entries"),
        (decode_cas, _pack([b"a", 1]), "expected bin, got int"),
        (lambda d: decode_scan_page(d, 1, keys_only=True), _pack([[b"k", b"v"]]), "expected bin"),
    ],
)
def test_malformed_blobs_are_decode_errors(decode: object, data: bytes, match: str) -> None:
    assert callable(decode)
    with pytest.raises(DecodeError, match=match):
        decode(data)
