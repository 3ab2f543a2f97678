"""The compiled batch blobs (``protocol/_cblobs.c``) against their Python twins.

Both paths get the same inputs and must give the same results: the same pairs
for a blob both accept, a refusal (None from C, DecodeError from Python) for
every blob the Python decoder refuses, with the same message through the
public functions; the same bytes as msgpack for what C packs. The inputs are
well-formed batches and every kind of malformed one: truncated, extra
trailing bytes, wrong types, ext types, maps, wrong counts, non-minimal
headers, random bytes.
"""

from __future__ import annotations

import os
import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import _cblobs, blobs
from protocol.codec import DecodeError


def test_the_extension_is_built() -> None:
    """`pip install -e .` (make test, make run) builds it: its absence is a failure."""
    assert blobs.HAVE_C, "protocol._cblobs is not built: blobs.py runs its Python fallback"


def _py(decode: Any, data: object, count: int) -> list[Any] | str:
    """The Python decoder's pairs, or its refusal's message."""
    try:
        result: list[Any] = decode(data, count)
    except DecodeError as exc:
        return f"DecodeError: {exc}"
    return result


def _same(data: object, count: int) -> None:
    """C and Python agree on ``data`` for items and for writes."""
    for c_decode, py_decode, public in (
        (_cblobs.decode_items, blobs._py_decode_items, blobs.decode_items),
        (_cblobs.decode_writes, blobs._py_decode_writes, blobs.decode_writes),
    ):
        expected = _py(py_decode, data, count)
        got = c_decode(data, count)
        if isinstance(expected, str):
            assert got is None, (data, count, expected)
        else:
            assert got == expected
            assert all(type(k) is bytes for k, _ in got)
        assert _py(public, data, count) == expected  # the public function: identical


_bins = st.binary(max_size=40)
_atoms = (
    _bins
    | st.none()
    | st.text(max_size=5)
    | st.integers(-(2**40), 2**40)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4))
)
_entries = st.one_of(
    st.tuples(_bins, _bins).map(list),
    st.tuples(_bins, st.none()).map(list),
    st.lists(_atoms, max_size=3),
    _atoms,
    st.dictionaries(_bins, _bins, max_size=1),
)
_batches = st.lists(_entries, max_size=20)


def _pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_batches, st.integers(-1, 3), st.data())
@example([[b"k", b"v"]], 0, None)
@example([[b"k", None]], 0, None)
def test_any_batch_and_its_mutations_decode_alike(
    entries: list[object], off: int, data: st.DataObject | None
) -> None:
    blob = _pack(entries)
    count = len(entries) + (off if off != 3 else 0)
    _same(blob, count)
    _same(blob + b"\xc0", count)  # extra trailing bytes
    _same(blob + b"\x90", count)
    for cut in range(len(blob)) if len(blob) < 40 else range(0, len(blob), 7):
        _same(blob[:cut], count)  # truncated
    if data is not None and blob:
        at = data.draw(st.integers(0, len(blob) - 1))
        byte = data.draw(st.integers(0, 255))
        _same(blob[:at] + bytes([byte]) + blob[at + 1 :], count)  # one byte changed


@given(st.binary(max_size=64), st.integers(0, 5))
def test_random_bytes_decode_alike(data: bytes, count: int) -> None:
    _same(data, count)


def _array_header(n: int, width: int) -> bytes:
    if width == 1:
        return bytes([0x90 | n])
    return (b"\xdc" if width == 3 else b"\xdd") + n.to_bytes(width - 1, "big")


def _bin(value: bytes, width: int) -> bytes:
    marker = {2: b"\xc4", 3: b"\xc5", 5: b"\xc6"}[width]
    return marker + len(value).to_bytes(width - 1, "big") + value


@given(
    st.lists(st.tuples(_bins, _bins), max_size=20),
    st.sampled_from([1, 3, 5]),
    st.sampled_from([1, 3, 5]),
    st.sampled_from([2, 3, 5]),
)
def test_non_minimal_headers_decode_alike(
    pairs: list[tuple[bytes, bytes]], outer: int, inner: int, bin_width: int
) -> None:
    """msgpack accepts array16/32 and bin16/32 for short lengths; so does C."""
    if outer == 1 and len(pairs) > 15:
        outer = 3
    blob = _array_header(len(pairs), outer) + b"".join(
        _array_header(2, inner) + _bin(k, bin_width) + _bin(v, bin_width) for k, v in pairs
    )
    _same(blob, len(pairs))
    assert _cblobs.decode_items(blob, len(pairs)) == pairs


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x91",
        b"\x91\x92\xc4\x01k",  # the value missing
        b"\x91\x92\xc4\x05k",  # a bin longer than the blob
        b"\x91\x92\xc6\xff\xff\xff\xffk",
        b"\xdd\xff\xff\xff\xff",
        b"\x91\x92\xd4\x01\x00\xc4\x00",  # fixext 1 where the key is due
        b"\x91\x92\xc4\x00\xc7\x01\x05x",  # ext 8 where the value is due
        b"\x91\x92\xa1k\xc4\x00",  # a str key
        b"\x91\x81\xc4\x00\xc4\x00",  # a map entry
        b"\x91\x93\xc4\x00\xc4\x00\xc4\x00",
        b"\x91\x92\xc4\x00\xc4\x00\xc4\x00",  # trailing bytes
    ],
)
@pytest.mark.parametrize("count", [0, 1, 2])
def test_malformed_blobs_decode_alike(data: bytes, count: int) -> None:
    _same(data, count)


@pytest.mark.parametrize("data", [bytearray(b"\x90"), memoryview(b"\x90"), "\x90", None, 1])
def test_a_blob_that_is_no_bytes_is_refused_alike(data: object) -> None:
    _same(data, 0)


def test_a_count_past_any_blob_is_refused() -> None:
    assert _cblobs.decode_items(b"\x90", 2**70) is None
    assert _cblobs.decode_writes(b"\x90", -(2**70)) is None
    with pytest.raises(TypeError):
        _cblobs.decode_items(b"\x90", "0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _cblobs.decode_items(b"\x90")  # type: ignore[call-arg]


# --- packing -------------------------------------------------------------------------


class _Bytes(bytes):
    pass


def _view(value: bytes) -> memoryview:
    return memoryview(value)


_values: st.SearchStrategy[object] = (
    _bins
    | st.binary(min_size=250, max_size=70_000)
    | st.builds(bytearray, _bins)
    | _bins.map(_view)
    | st.builds(_Bytes, _bins)
    | st.none()
    | st.text(max_size=3)
)
_pair_lists = st.lists(
    st.one_of(
        st.tuples(_bins, _bins),
        st.tuples(_values, _values),
        st.tuples(_bins, _bins).map(list),
        st.tuples(_bins),
        st.tuples(_bins, _bins, _bins),
        _bins,
    ),
    max_size=20,
)


def _packs(items: list[Any], max_key: int, max_value: int, *, nil_ok: bool) -> bool:
    """Whether C must pack ``items``: exact (bytes, bytes | None) tuples within the limits."""

    def fits(value: object, limit: int) -> bool:
        return type(value) is bytes and len(value) <= limit

    return all(
        type(item) is tuple
        and len(item) == 2
        and fits(item[0], max_key)
        and (fits(item[1], max_value) or (nil_ok and item[1] is None))
        for item in items
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_pair_lists, st.integers(0, 50), st.integers(0, 80_000))
def test_packing_gives_msgpacks_bytes_or_declines(
    items: list[Any], max_key: int, max_value: int
) -> None:
    for c_encode, within, py_encode, nil_ok in (
        (_cblobs.encode_items, blobs.encode_items_within, blobs.encode_items, False),
        (_cblobs.encode_writes, blobs.encode_writes_within, blobs.encode_writes, True),
    ):
        got = c_encode(items, max_key, max_value)
        assert within(items, max_key, max_value) == got
        if _packs(items, max_key, max_value, nil_ok=nil_ok):
            assert got == py_encode(items)
        else:
            assert got is None


def test_packing_uses_every_header_width() -> None:
    for n in (0, 15, 16, 65_535, 65_536):
        items = [(b"k", b"v")] * n
        assert _cblobs.encode_items(items, 10, 10) == blobs.encode_items(items)
    for size in (255, 256, 65_535, 65_536):
        writes: list[tuple[bytes, bytes | None]] = [(b"k" * size, b"v" * size), (b"j", None)]
        assert _cblobs.encode_writes(writes, size, size) == blobs.encode_writes(writes)
    assert _cblobs.encode_items((), 1, 1) is None  # type: ignore[arg-type]  # a tuple: not here


# --- ops_fit -------------------------------------------------------------------------


@given(
    st.lists(st.one_of(st.tuples(_values, _values), st.tuples(_bins), _bins), max_size=20),
    st.integers(0, 50),
    st.integers(0, 80_000),
    st.binary(max_size=3),
)
@example([(b"\xff", b"")], 5, 5, b"\xff")
@example([(b"\xfe\xff", b"")], 5, 5, b"\xff")
@example([(b"\xff\x00", b"")], 5, 5, b"\xff")
def test_ops_fit_is_the_python_checks(
    ops: list[Any], max_key: int, max_value: int, reserved: bytes
) -> None:
    expected = all(
        type(op) is tuple
        and len(op) == 2
        and type(op[0]) is bytes
        and len(op[0]) <= max_key
        and op[0] < reserved
        and (op[1] is None or (type(op[1]) is bytes and len(op[1]) <= max_value))
        for op in ops
    )
    assert _cblobs.ops_fit(ops, max_key, max_value, reserved) is expected
    assert blobs.ops_fit(ops, max_key, max_value, reserved) is expected


# --- no leak ---------------------------------------------------------------------------


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _every_path_once(good: bytes, writes: bytes, pairs: list[tuple[bytes, bytes]]) -> None:
    assert _cblobs.decode_items(good, 10) is not None
    assert _cblobs.decode_writes(writes, 10) is not None
    assert _cblobs.decode_items(good[:-1], 10) is None  # truncated: refused after a walk
    assert _cblobs.decode_items(good + b"\x00", 10) is None
    assert _cblobs.encode_items(pairs, 100, 100) is not None
    assert _cblobs.encode_writes(pairs, 100, 1) is None
    assert _cblobs.ops_fit(pairs, 100, 100, b"\xff") is True


def test_a_hundred_thousand_calls_leak_nothing() -> None:
    pairs = [(b"key%d" % i, b"value%d" % i) for i in range(10)]
    good = blobs.encode_items(pairs)
    writes = blobs.encode_writes([(k, None) for k, _ in pairs])
    for _ in range(1000):  # warm-up: the allocator's pools reach their steady size
        _every_path_once(good, writes, pairs)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(10_000):
            _every_path_once(good, writes, pairs)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Each round allocates ~5 KB of objects: 50 MB over the loop, if none were freed.
    assert after - before < 64 * 1024
    rss = _rss_kb()
    for _ in range(100_000):
        _every_path_once(good, writes, pairs)
    assert _rss_kb() - rss < 8 * 1024  # a leak of one 20-byte object per call: 14 MB
