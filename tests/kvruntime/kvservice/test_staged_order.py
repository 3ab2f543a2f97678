"""A transaction's staged writes, kept ordered for scans, and the node-wide staging total."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kvruntime.kvservice.transactions import Transaction, Transactions
from protocol.ids import PackageId, ProcessId
from tests.counting import ComparisonCounter

OWNER = ProcessId.parse("app:demo:alice.os")
DB = (PackageId.parse("demo:alice.os"), "db")

_key = st.binary(max_size=3)
_bound = st.none() | _key
#: Staging steps: one write, or a batch of writes.
_steps = st.lists(
    st.one_of(
        st.tuples(_key, st.none() | st.binary(max_size=2)),
        st.dictionaries(_key, st.none() | st.binary(max_size=2), max_size=40),
    ),
    max_size=30,
)


def fresh_tx() -> Transaction:
    return Transaction(tx_id=1, owner=OWNER, db=DB, last_used=0.0)


@given(steps=_steps, reads=st.lists(st.tuples(_bound, _bound, st.booleans()), max_size=8))
def test_staged_range_is_the_sorted_filtered_writes(
    steps: list[tuple[bytes, bytes | None] | dict[bytes, bytes | None]],
    reads: list[tuple[bytes | None, bytes | None, bool]],
) -> None:
    tx = fresh_tx()
    model: dict[bytes, bytes | None] = {}
    for step in steps:
        if isinstance(step, dict):
            tx.stage_many(step, tx.size_after_many(step))
            model.update(step)
        else:
            tx.stage(*step)
            model[step[0]] = step[1]
        for lo, hi, reverse in reads:  # reads between the steps settle what came so far
            expected = sorted(
                (
                    (k, v)
                    for k, v in model.items()
                    if (lo is None or k >= lo) and (hi is None or k < hi)
                ),
                reverse=reverse,
            )
            assert list(tx.staged_range(lo, hi, reverse=reverse)) == expected
    assert tx.writes == model


def test_a_page_of_staged_writes_costs_no_sort_of_them_all() -> None:
    counter = ComparisonCounter()
    key = counter.key
    staged = 200_000
    tx = fresh_tx()
    for start in range(0, staged, 10_000):
        batch = {key(b"s%07d" % i): b"v" for i in range(start, start + 10_000)}
        tx.stage_many(batch, tx.size_after_many(batch))
    list(tx.staged_range(None, None, reverse=False))  # settles once
    counter.count = 0
    for i in range(100):  # 100 pages of 100, each after one more write
        tx.stage(key(b"t%07d" % i), b"v")
        page = tx.staged_range(key(b"s%07d" % (i * 1000)), None, reverse=False)
        keys = [next(page)[0] for _ in range(100)]
        assert keys == [b"s%07d" % j for j in range(i * 1000, i * 1000 + 100)]
    # A page costs a few bisections (~18 comparisons each), where sorting the
    # staged keys again would cost at least one comparison per staged key.
    per_page = counter.count / 100
    assert per_page < 200, f"{per_page:.0f} comparisons a page with {staged} staged keys"


def test_the_staged_total_follows_every_stage_and_finish() -> None:
    txs = Transactions(max_per_sender=4, max_bytes=100, idle_seconds=60, max_total_bytes=150)
    a = txs.begin(OWNER, DB)
    b = txs.begin(OWNER, DB)
    txs.stage(a, b"k", b"v" * 79)  # 80
    assert txs.too_large(b, b.size_after(b"k", b"v" * 79)) is not None  # 160 > 150
    assert txs.too_large(b, b.size_after(b"k", b"v" * 69)) is None  # 150 fits
    txs.stage(b, b"k", b"v" * 69)
    txs.stage(a, b"k", b"v" * 9)  # shrinking is always fine: 10 + 70
    assert txs.staged_bytes == 80
    assert txs.too_large(a, 101) is not None  # its own bound first
    txs.finish(a)
    txs.finish(b)
    assert txs.staged_bytes == 0
