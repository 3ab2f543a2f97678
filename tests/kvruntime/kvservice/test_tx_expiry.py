"""When a transaction expires: idle time as an injected clock tells it, no sleeps."""

from __future__ import annotations

from kvruntime.kvservice.transactions import Transactions
from protocol.ids import PackageId, ProcessId
from tests.conftest import FakeClock

ALICE = ProcessId.parse("app:demo:alice.os")
BOB = ProcessId.parse("app:demo:bob.os")
DB = (PackageId.parse("demo:alice.os"), "db")
IDLE = 10.0


def transactions(clock: FakeClock, *, per_sender: int = 2) -> Transactions:
    return Transactions(max_per_sender=per_sender, max_bytes=100, idle_seconds=IDLE, clock=clock)


def test_a_transaction_is_open_until_it_has_been_idle_longer_than_the_limit() -> None:
    clock = FakeClock()
    txs = transactions(clock)
    tx = txs.begin(ALICE, DB)
    clock.advance(IDLE)  # exactly the limit: still open
    assert txs.lookup(tx.tx_id, ALICE, DB) is tx
    clock.advance(IDLE + 0.001)  # idle since the lookup, past the limit
    assert txs.lookup(tx.tx_id, ALICE, DB) is None
    assert len(txs) == 0
    assert txs.lookup(tx.tx_id, ALICE, DB) is None  # gone for good, not revived


def test_each_use_restarts_the_idle_time() -> None:
    clock = FakeClock()
    txs = transactions(clock)
    tx = txs.begin(ALICE, DB)
    for _ in range(10):  # 10 x 0.9 x IDLE in all, never idle past the limit
        clock.advance(0.9 * IDLE)
        assert txs.lookup(tx.tx_id, ALICE, DB) is tx
    assert txs.expire() == 0


def test_expire_forgets_exactly_the_idle_ones_and_frees_what_they_held() -> None:
    clock = FakeClock()
    txs = transactions(clock)
    stale = txs.begin(ALICE, DB)
    txs.stage(stale, b"k", b"v" * 9)
    clock.advance(IDLE / 2)
    fresh = txs.begin(BOB, DB)
    txs.stage(fresh, b"k", b"v" * 19)
    clock.advance(IDLE / 2 + 0.001)  # stale is past the limit, fresh is not
    assert txs.expire() == 1
    assert txs.lookup(stale.tx_id, ALICE, DB) is None
    assert txs.lookup(fresh.tx_id, BOB, DB) is fresh
    assert txs.staged_bytes == fresh.size == 20
    assert txs.tracks(DB)  # fresh still needs the db's write log
    clock.advance(IDLE + 1)
    assert txs.expire() == 1
    assert (len(txs), txs.staged_bytes, txs.tracks(DB)) == (0, 0, False)


def test_an_expired_transaction_frees_its_senders_slot() -> None:
    clock = FakeClock()
    txs = transactions(clock, per_sender=1)
    txs.begin(ALICE, DB)
    assert not txs.can_begin(ALICE)
    assert txs.can_begin(BOB)  # the limit is per sender
    clock.advance(IDLE + 1)
    assert not txs.can_begin(ALICE)  # expiry is taken by expire() or a lookup...
    txs.expire()
    assert txs.can_begin(ALICE)  # ...and then the slot is free


def test_a_lookup_by_another_owner_or_on_another_db_neither_finds_nor_refreshes() -> None:
    clock = FakeClock()
    txs = transactions(clock)
    tx = txs.begin(ALICE, DB)
    other_db = (DB[0], "other")
    clock.advance(0.9 * IDLE)
    assert txs.lookup(tx.tx_id, BOB, DB) is None
    assert txs.lookup(tx.tx_id, ALICE, other_db) is None
    clock.advance(0.2 * IDLE)  # idle since begin: the foreign lookups did not count as use
    assert txs.lookup(tx.tx_id, ALICE, DB) is None
