"""The change log's newest changes kept in memory (``changelog.py``, invariant 6),
as a networked engine's kv process uses them: a parked watcher is answered from
memory, never past the seq a commit made durable, never while its db is held,
and one behind what memory keeps is handed back to be served as long work.

The store is the in-memory engine's, whose log reads raise ``NotAtHand`` here
(as a networked store's do inline): an answer that needs no store read proves
it came from memory.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from kvruntime import KvConfig
from kvruntime.kernel.message import Request
from kvruntime.kvservice.changelog import Feeds, WatchState
from kvruntime.storage.memory import MemoryEngine
from kvruntime.storage.store import NotAtHand, Store
from protocol.blobs import decode_changes
from protocol.ids import Address, PackageId
from protocol.messages import KvResponse, WatchChangesResponse

PKG = PackageId.parse("app:pub.os")
DB = (PKG, "main")
HOLDER = Address.parse("main@app:app:pub.os")


class _Networked:
    """A store whose log reads are not at hand inline (as a networked one's)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.closed = False

    def write(self, ops: Any, *, sync: bool = False) -> None:
        self.store.write(ops, sync=sync)

    def get(self, key: bytes) -> bytes | None:
        return self.store.get(key)

    def iterate(self, **bounds: Any) -> Any:
        raise NotAtHand(self, ("range", bounds))


_Answers = list[tuple[Request, KvResponse, "bytes | None"]]


def _setup(recent: int) -> tuple[Feeds, Store, _Answers]:
    feeds = Feeds(KvConfig(watch_window_items=3), loads_inline=True, recent_items=recent)
    store = cast(Store, _Networked(MemoryEngine().open(PKG, "main", create=True)))
    feeds.enable(store, DB, sync=False)
    return feeds, store, []


def _parked(feeds: Feeds, store: Store) -> Request:
    """A watch from the log's last seq on, with its WatchNext parked."""
    log = feeds.logs[store]
    assert log is not None
    watch = feeds.add(HOLDER.process, HOLDER, DB, None, b"\xff", log.last)
    assert isinstance(watch, WatchState)
    request = Request(1, HOLDER, HOLDER, b"")
    watch.parked = request
    return request


def _changes(blob: bytes | None, count: int) -> list[bytes]:
    assert blob is not None
    return [key for _, _, key, _ in decode_changes(blob, count)]


def test_a_parked_watcher_is_answered_from_memory_up_to_what_is_durable() -> None:
    feeds, store, answered = _setup(recent=8)
    parked = _parked(feeds, store)
    log = feeds.logs[store]
    assert log is not None
    start = log.last
    store.write(feeds.with_log(store, [(b"a", b"1"), (b"b", b"2")]))
    durable = feeds.take_dirty()
    store.write(feeds.with_log(store, [(b"c", b"3")]))  # after the commit began: not durable
    feeds.notify(lambda db: store, lambda m, r, b: answered.append((m, r, b)), upto=durable)
    ((msg, response, blob),) = answered
    assert msg is parked
    assert isinstance(response, WatchChangesResponse)
    assert response.last == start + 2
    assert _changes(blob, response.count) == [b"a", b"b"]
    assert feeds.dirty == [log]  # "c" wakes it at the next commit's notify


def test_a_held_db_is_woken_later_and_a_watcher_behind_memory_is_served_again() -> None:
    feeds, store, answered = _setup(recent=2)
    parked = _parked(feeds, store)
    log = feeds.logs[store]
    store.write(feeds.with_log(store, [(b"a", b"1")]))

    def answer(m: Request, r: KvResponse, b: bytes | None) -> None:
        answered.append((m, r, b))

    again: list[Request] = []
    feeds.notify(lambda db: store, answer, again.append, feeds.take_dirty(), held={DB})
    assert answered == []  # long work holds the db: later
    assert again == []
    assert feeds.dirty == [log]
    store.write(feeds.with_log(store, [(b"b", b"2"), (b"c", b"3")]))  # "a" leaves memory
    feeds.notify(lambda db: store, answer, again.append, feeds.take_dirty())
    assert answered == []
    assert again == [parked]  # its changes are read from the store, as long work


def test_without_memory_a_read_is_the_stores() -> None:
    feeds, store, _ = _setup(recent=0)
    _parked(feeds, store)
    store.write(feeds.with_log(store, [(b"a", b"1")]))
    with pytest.raises(NotAtHand):
        feeds.notify(lambda db: store, lambda m, r, b: None)
