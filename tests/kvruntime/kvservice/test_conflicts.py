"""Pure parts of the extended actions: the conflict log, counters, prefix bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvruntime.kvservice.conflicts import (
    ReadRange,
    ReadSet,
    WriteLog,
    range_written_after,
)
from kvruntime.kvservice.reads import prefix_end
from kvruntime.kvservice.writes import parse_counter
from tests.counting import ComparisonCounter


def test_a_point_read_conflicts_only_with_a_later_write_of_its_key() -> None:
    log = WriteLog()
    log.record([b"a"])
    reads = ReadSet()
    reads.note_key(b"a", log.version)
    assert not log.conflicts(reads)
    log.record([b"b"])
    assert not log.conflicts(reads)
    log.record([b"a"])
    assert log.conflicts(reads)


def test_a_range_read_conflicts_with_a_write_inside_it() -> None:
    log = WriteLog()
    reads = ReadSet()
    reads.note_range(b"b", b"d", log.version)
    log.record([b"a", b"d", b"zz"])
    assert not log.conflicts(reads)
    log.record([b"c"])
    assert log.conflicts(reads)


def test_overflowing_the_log_raises_the_floor_conservatively() -> None:
    log = WriteLog(max_keys=3)
    reads = ReadSet()
    reads.note_key(b"x", log.version)
    log.record([b"a", b"b", b"c", b"d"])  # x was never written, but the log forgot
    assert log.floor == 1
    assert log.conflicts(reads)


def test_trim_forgets_only_what_no_open_transaction_needs() -> None:
    log = WriteLog()
    log.record([b"a"])
    log.record([b"b"])
    log.trim(1)
    reads = ReadSet()
    reads.note_key(b"b", 1)
    assert log.conflicts(reads)
    reads = ReadSet()
    reads.note_key(b"a", 0)
    assert not log.conflicts(reads)  # forgotten: no open transaction began before version 1


def test_a_read_set_past_its_bound_collapses_to_everything() -> None:
    reads = ReadSet(max_entries=2)
    reads.note_key(b"a", 5)
    reads.note_key(b"b", 3)
    reads.note_key(b"c", 7)
    assert not reads.points
    assert len(reads.ranges) == 1
    assert reads.ranges[0].version == 3
    assert reads.ranges[0].covers(b"anything")


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (b"0", 0),
        (b"42", 42),
        (b"-7", -7),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-9223372036854775809", None),
        (b"", None),
        (b"-", None),
        (b"+1", None),
        (b"01", None),
        (b"-0", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1_000", None),
        (b"\xd9\xa1", None),  # ARABIC-INDIC DIGIT ONE in UTF-8: not an ASCII digit
        (b"0" * 30, None),
    ],
)
def test_parse_counter(value: bytes, number: int | None) -> None:
    assert parse_counter(value) == number


@given(st.integers(-(2**63), 2**63 - 1))
def test_parse_counter_reads_what_increment_writes(number: int) -> None:
    assert parse_counter(b"%d" % number) == number


@given(st.binary(max_size=6), st.binary(max_size=6))
def test_prefix_end_bounds_exactly_the_keys_with_the_prefix(prefix: bytes, suffix: bytes) -> None:
    end = prefix_end(prefix)
    key = prefix + suffix
    assert end is None or key < end
    if end is not None:
        assert not end.startswith(prefix)
        assert end > prefix


def test_prefix_end_of_ff_bytes() -> None:
    assert prefix_end(b"a\xff\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None


_keys = st.binary(max_size=3)
_bound = st.none() | _keys


@given(
    written=st.dictionaries(_keys, st.integers(1, 50), max_size=60),
    ranges=st.lists(st.tuples(_bound, _bound, st.integers(0, 50)), max_size=40),
)
def test_range_written_after_agrees_with_the_direct_check(
    written: dict[bytes, int], ranges: list[tuple[bytes | None, bytes | None, int]]
) -> None:
    read = [ReadRange(start=lo, end=hi, version=v) for lo, hi, v in ranges]
    expected = any(v > r.version and r.covers(k) for k, v in written.items() for r in read)
    assert range_written_after(list(written.items()), read) is expected


def test_the_conflict_check_is_not_quadratic_in_ranges_and_writes() -> None:
    counter = ComparisonCounter()
    key = counter.key
    log = WriteLog(max_keys=200_000)
    reads = ReadSet()
    ranges, writes = 5000, 100_000
    for i in range(ranges):  # narrow scans of keys nobody writes
        reads.note_range(key(b"r%05d" % i), key(b"r%05d\x00" % i), log.version)
    for i in range(writes // 1000):
        log.record(key(b"w%07d" % (i * 1000 + j)) for j in range(1000))
    counter.count = 0
    assert not log.conflicts(reads)
    # Sorting the writes and bisecting each range: ~(writes + 2 ranges) log2(writes)
    # comparisons (1.9M here); a range against every write would be 1e9.
    bound = 2 * (writes + 2 * ranges) * math.log2(writes)
    assert counter.count < bound, f"{counter.count} comparisons, bound {bound:.0f}"
    log.record([b"r02500"])
    assert log.conflicts(reads)
