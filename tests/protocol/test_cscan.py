"""The C decoder of scan pages (``protocol/_cblobs.c``) against its Python reference.

Both run on the same inputs, well-formed pages and malformed ones (cut
short, trailing bytes, wrong types, wrong counts, lengths past the end, any
bytes at all): the C twin gives exactly the reference's entries, and refuses
(None) exactly the pages the reference raises DecodeError for; through
``decode_scan_page`` the error is then the reference's own, message included.
"""

from __future__ import annotations

import gc
import sys

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocol import _cblobs
from protocol.blobs import HAVE_C, decode_scan_page, decode_scan_page_py, encode_scan_page
from protocol.codec import DecodeError

entries = st.lists(
    st.tuples(
        st.binary(max_size=300) | st.sampled_from([b"", b"k" * 255, b"k" * 256, b"k" * 65536]),
        st.binary(max_size=300) | st.sampled_from([b"", b"v" * 255, b"v" * 256, b"v" * 70000]),
    ),
    max_size=30,
)

#: Any msgpack value a page could wrongly hold (no ext: ext types are their own case).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=5)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=6,
)


def test_the_c_twin_is_built() -> None:
    # `pip install -e .` builds it here (gcc and Python.h are on this machine):
    # a build that silently failed would leave the slow path alone, unnoticed.
    assert HAVE_C


def outcome(data: bytes, count: int, keys_only: bool) -> tuple[str, object]:
    """What the reference does: its entries, or its error's message."""
    try:
        return "ok", decode_scan_page_py(data, count, keys_only=keys_only)
    except DecodeError as exc:
        return "error", str(exc)


def assert_same(data: bytes, count: int, keys_only: bool) -> None:
    expected = outcome(data, count, keys_only)
    raw = _cblobs.decode_scan_page(data, count, keys_only)
    if expected[0] == "ok":
        assert raw == expected[1]
        assert raw is not None
        assert all(type(e) is tuple and len(e) == 2 for e in raw)
    else:
        assert raw is None
    try:
        got: tuple[str, object] = ("ok", decode_scan_page(data, count, keys_only=keys_only))
    except DecodeError as exc:
        got = ("error", str(exc))
    assert got == expected


@settings(max_examples=300)
@given(entries, st.booleans())
def test_well_formed_pages_decode_alike(page: list[tuple[bytes, bytes]], keys_only: bool) -> None:
    data = encode_scan_page(page, keys_only=keys_only)
    assert outcome(data, len(page), keys_only)[0] == "ok"
    assert_same(data, len(page), keys_only)


@settings(max_examples=500)
@given(entries, st.booleans(), st.data())
def test_cut_padded_or_miscounted_pages_are_refused_alike(
    page: list[tuple[bytes, bytes]], keys_only: bool, data: st.DataObject
) -> None:
    blob = encode_scan_page(page, keys_only=keys_only)
    cut = data.draw(st.integers(0, max(0, len(blob) - 1)))
    assert_same(blob[:cut], len(page), keys_only)  # truncated
    tail = data.draw(st.binary(min_size=1, max_size=4))
    assert_same(blob + tail, len(page), keys_only)  # trailing bytes
    count = data.draw(st.integers(-3, 40) | st.sampled_from([2**31, 2**62, 2**64, -(2**70)]))
    assert_same(blob, count, keys_only)  # a count other than the page's


@settings(max_examples=500)
@given(
    st.lists(values, max_size=8), st.booleans(), st.sampled_from(["array", "array16", "array32"])
)
def test_pages_of_other_types_are_refused_alike(
    items: list[object], keys_only: bool, form: str
) -> None:
    body = b"".join(msgpack.packb(item, use_bin_type=True) for item in items)
    head: bytes = {
        "array": msgpack.Packer().pack_array_header(len(items)),  # the shortest form
        "array16": b"\xdc" + len(items).to_bytes(2, "big"),
        "array32": b"\xdd" + len(items).to_bytes(4, "big"),
    }[form]
    data = head + body
    for count in {len(items) // 2, len(items), (len(items) + 1) // 2}:
        assert_same(data, count, keys_only)


@settings(max_examples=500)
@given(st.binary(max_size=40), st.integers(0, 10), st.booleans())
@example(b"\xc4", 0, True)
@example(b"\x91\xc4\x05ab", 1, True)  # a bin's length past the end
@example(b"\x91\xc6\xff\xff\xff\xffab", 1, True)
@example(b"\xdd\xff\xff\xff\xff", 1, False)  # an array header claiming past the limits
@example(b"\x92\xc4\x00\xc4\x00", 1, False)
@example(b"\x91\xd4\x01\x00", 1, True)  # an ext type
@example(b"\x91\xa1a", 1, True)  # a str, not a bin
@example(b"\x80", 0, True)  # an empty map
@example(b"\x90", 0, False)
def test_any_bytes_are_read_alike(data: bytes, count: int, keys_only: bool) -> None:
    assert_same(data, count, keys_only)


def test_a_blob_that_is_not_bytes_is_refused_alike() -> None:
    for data in (bytearray(b"\x90"), memoryview(b"\x90"), None, "x"):
        assert _cblobs.decode_scan_page(data, 0, False) is None
        with pytest.raises(DecodeError, match="a blob is bytes"):
            decode_scan_page(data, 0, keys_only=False)  # type: ignore[arg-type]


def test_many_decodes_hold_no_memory() -> None:
    # Every object the decoder makes is owned by the list it returns: after
    # thousands of pages (and refusals), no object and no reference is left.
    page = [(b"k%05d" % i, b"v" * (i % 50)) for i in range(200)]
    blob = encode_scan_page(page, keys_only=False)
    bad = blob[:-1]
    for _ in range(50):  # warm up the allocator and the caches
        _cblobs.decode_scan_page(blob, 200, False)
    gc.collect()
    refs, objects = sys.getrefcount(blob), len(gc.get_objects())
    for _ in range(5000):
        assert _cblobs.decode_scan_page(blob, 200, False) == page
        assert _cblobs.decode_scan_page(bad, 200, False) is None
        assert _cblobs.decode_scan_page(blob, 200, True) is None
    gc.collect()
    assert sys.getrefcount(blob) == refs
    assert len(gc.get_objects()) - objects < 100  # tuples are tracked: a leak is 1M
