"""The iterator ``scan`` and ``keys`` hand out entries through (issue 12), on both paths.

``client._entries`` has two: the compiled ``Entries`` (``_centries.c``, where
built) and the async generator ``entries_py``, its reference and fallback.
Through the client on a real runtime on LevelDB, the same scans give the
same entries on both paths and equal a sorted dict model; a page fetch that
fails mid-iteration raises the same typed error after the same entries;
breaking out early and cancelling a scan blocked on a page fetch leave no
request or task behind, and the runtime serves on. The pure iterator is
checked on its own too (the edges, and that it holds no reference after use).
"""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvruntime import ProcessContext, Response, Runtime, kv
from kvruntime.client import _entries
from protocol.codec import encode_request
from protocol.ids import KV_PROCESS_ID, PackageId, ProcessId
from protocol.messages import Get, KvRequest
from tests.conftest import run_as
from tests.internals import queued_answer_bytes, scan_path, waiting_of

pytestmark = pytest.mark.anyio

Which = Literal["c", "py"]
PATHS: tuple[Which, ...] = ("c", "py")
OWNER = "app:scans:test.os"
PKG = PackageId.parse("scans:test.os")
MIB = 1 << 20


def test_the_compiled_iterator_is_built_and_scan_uses_it() -> None:
    # `pip install -e .` builds it here (gcc and Python.h are on this machine): a build
    # that silently failed would leave the async generator alone, unnoticed.
    assert _entries.HAVE_C, "kvruntime.client._centries is not built"

    async def fetch() -> list[int] | None:
        return None

    assert type(_entries.entries(fetch)).__name__ == "Entries"
    assert type(_entries.entries(fetch)).__module__ == "kvruntime.client._centries"


async def test_scan_and_keys_go_through_the_selected_path(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[str, str]:
        db = await kv.open(ctx, ctx.package_id, "db")
        return type(db.scan()).__name__, type(db.keys()).__name__

    with scan_path("c"):
        assert await run_as(rt, OWNER, body) == ("Entries", "Entries")
    with scan_path("py"):
        assert await run_as(rt, OWNER, body) == ("async_generator", "async_generator")


# --- the same scans through both paths, against a model -----------------------------

Scan = dict[str, Any]

scans = st.fixed_dictionaries(
    {
        "reverse": st.booleans(),
        "page_size": st.none() | st.integers(1, 6),
    },
    optional={"prefix": st.binary(max_size=2)},
) | st.fixed_dictionaries(
    {
        "reverse": st.booleans(),
        "page_size": st.none() | st.integers(1, 6),
        "start": st.none() | st.binary(max_size=3),
        "end": st.none() | st.binary(max_size=3),
    }
)


def model_range(model: dict[bytes, bytes], scan: Scan) -> list[tuple[bytes, bytes]]:
    """What ``scan`` reads from ``model`` (keys as bytes)."""
    prefix, start, end = scan.get("prefix"), scan.get("start"), scan.get("end")
    pairs = sorted(
        (k, v)
        for k, v in model.items()
        if (prefix is None or k.startswith(prefix))
        and (start is None or k >= start)
        and (end is None or k < end)
    )
    return pairs[::-1] if scan["reverse"] else pairs


async def both_paths(body: Callable[[ProcessContext], Awaitable[object]]) -> dict[str, object]:
    """``body``'s result on each path, on one fresh runtime on LevelDB."""
    got: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as home:
        async with Runtime(home=Path(home)) as rt:
            for path in PATHS:
                with scan_path(path):
                    got[path] = await run_as(rt, OWNER, body)
    return got


@settings(max_examples=60)
@given(
    st.dictionaries(st.binary(min_size=1, max_size=3), st.binary(max_size=8), max_size=25),
    st.lists(scans, min_size=1, max_size=4),
)
def test_the_same_scans_give_the_same_entries_on_both_paths_as_the_model(
    model: dict[bytes, bytes], queries: list[Scan]
) -> None:
    async def body(ctx: ProcessContext) -> list[object]:
        db = await kv.open(ctx, ctx.package_id, "db")
        if model:
            await db.set_many(model)
        results: list[object] = []
        for query in queries:
            results.append([pair async for pair in db.scan(**query)])
            results.append([key async for key in db.keys(**query)])
        return results

    got = anyio.run(both_paths, body)
    expected: list[object] = []
    for query in queries:
        pairs = model_range(model, query)
        expected += [pairs, [k for k, _ in pairs]]
    assert got["c"] == expected
    assert got["py"] == expected


@settings(max_examples=25)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=3),
        st.integers(-(2**63), 2**63 - 1) | st.text(max_size=3),
        max_size=15,
    ),
    st.booleans(),
    st.none() | st.integers(1, 4),
)
def test_codecs_decode_alike_on_both_paths(
    model: dict[str, object], reverse: bool, page_size: int | None
) -> None:
    async def body(ctx: ProcessContext) -> list[object]:
        db = await kv.open(
            ctx, ctx.package_id, "typed", key_codec=kv.Utf8Codec(), value_codec=kv.MSGPACK
        )
        if model:
            await db.set_many(model)
        return [pair async for pair in db.scan(reverse=reverse, page_size=page_size)]

    got = anyio.run(both_paths, body)
    # UTF-8's byte order is code point order: str's own sort.
    expected = sorted(model.items(), reverse=reverse)
    assert got == {"c": expected, "py": expected}


# --- a page that fails mid-iteration ------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_a_page_failing_mid_scan_raises_the_typed_error_after_the_entries_before(
    rt: Runtime, path: Which
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        await db.set_many({b"k%d" % i: b"v%d" % i for i in range(7)})
        tx = await db.begin_tx()
        seen: list[tuple[bytes, bytes]] = []
        scan = db.scan(page_size=3, tx_id=tx)

        async def read() -> None:
            async for pair in scan:
                seen.append(pair)
                if len(seen) == 2:
                    await db.rollback_tx(tx)  # the next page's request finds no transaction

        with pytest.raises(kv.NoTx):
            await read()
        assert seen == [(b"k%d" % i, b"v%d" % i) for i in range(3)]  # the first page, whole
        assert [pair async for pair in scan] == []  # the error ended the iteration
        assert await anext(scan, "end") == "end"

    with scan_path(path):
        await run_as(rt, OWNER, body)


# --- break early and cancellation: nothing left behind -----------------------------


def get_body(key: bytes) -> bytes:
    return encode_request(KvRequest(package_id=PKG, db="db", action=Get(key=key)))


@pytest.mark.parametrize("path", PATHS)
async def test_breaking_out_early_leaves_no_request_or_task_behind(
    rt: Runtime, path: Which
) -> None:
    pid = ProcessId.parse(OWNER)

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        pairs = [(b"k%02d" % i, b"v") for i in range(20)]
        await db.set_many(pairs)
        tasks = asyncio.all_tasks()
        for page_size in (1, 3, None):
            seen = []
            async for pair in db.scan(page_size=page_size):
                seen.append(pair)
                if len(seen) == 4:
                    break
            assert seen == pairs[:4]
            assert waiting_of(rt, pid) == 0
        scan = db.keys(page_size=3)
        assert await anext(scan) == b"k00"
        await scan.aclose()  # type: ignore[attr-defined]
        assert [k async for k in scan] == []
        gc.collect()
        assert waiting_of(rt, pid) == 0
        assert asyncio.all_tasks() <= tasks  # no task was started for the scans
        assert [pair async for pair in db.scan(page_size=7)] == pairs  # served on

    with scan_path(path):
        await run_as(rt, OWNER, body)


@pytest.mark.parametrize("how", ["move_on_after", "cancel_scope"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_scan_cancelled_while_blocked_on_a_page_leaves_nothing_behind(
    home: Path, path: Which, how: str
) -> None:
    """The next page's request is held: the kv process defers a sender whose unread
    answers are over its budget (tests/reliability/test_unread_answers.py)."""
    pid = ProcessId.parse(OWNER)
    async with Runtime(home=home, answer_budget=MIB) as rt:

        async def body(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PKG, "db")
            pairs = [(b"k%02d" % i, b"v") for i in range(10)]
            await db.set_many(pairs)
            await db.set(b"big", b"b" * (2 * MIB))
            scan = db.scan(prefix=b"k", page_size=3)
            seen = [await anext(scan) for _ in range(3)]  # the first page
            await ctx.send(KV_PROCESS_ID, get_body(b"big"), expects_response=60)  # unread
            with anyio.fail_after(10):  # its answer arrives: over budget, the next page waits
                while queued_answer_bytes(rt, pid) < 2 * MIB:  # noqa: ASYNC110 (a count)
                    await anyio.sleep(0.01)
            tasks = asyncio.all_tasks()
            if how == "move_on_after":
                with anyio.move_on_after(0.3) as scope:
                    async for pair in scan:
                        seen.append(pair)
            else:
                async with anyio.create_task_group() as tg:
                    with anyio.CancelScope() as scope:

                        async def cancel_later() -> None:
                            await anyio.sleep(0.3)
                            scope.cancel()

                        tg.start_soon(cancel_later)
                        async for pair in scan:
                            seen.append(pair)
            assert scope.cancelled_caught
            assert seen == pairs[:3]
            assert waiting_of(rt, pid) == 0  # the cancelled request is not awaited
            assert asyncio.all_tasks() <= tasks
            assert [pair async for pair in scan] == []  # cancellation ended the scan
            answer = await ctx.receive()  # read back: kv serves what it held
            assert isinstance(answer, Response)
            assert answer.blob == b"b" * (2 * MIB)
            with anyio.fail_after(10):
                assert [pair async for pair in db.scan(prefix=b"k", page_size=3)] == pairs
                assert [k async for k in db.keys(prefix=b"k")] == [k for k, _ in pairs]
            assert waiting_of(rt, pid) == 0

        with scan_path(path):
            with anyio.fail_after(30):
                await run_as(rt, OWNER, body)


# --- the pure iterator ---------------------------------------------------------------


class Failed(Exception):
    """A page fetch's error."""


def make(path: Which, fetch: _entries.Fetch[Any]) -> AsyncIterator[Any]:
    return _entries.entries_c(fetch) if path == "c" else _entries.entries_py(fetch)


def pager(pages: list[Any], calls: list[int] | None = None) -> _entries.Fetch[Any]:
    """A fetch giving ``pages`` then None (forever), counting its calls."""
    it: Iterator[Any] = iter(pages)

    async def fetch() -> Any:
        if calls is not None:
            calls.append(1)
        await anyio.lowlevel.checkpoint()
        return next(it, None)

    return fetch


@pytest.mark.parametrize("path", PATHS)
async def test_pages_empty_ones_and_tuples_are_read_in_order_asking_only_when_spent(
    path: Which,
) -> None:
    calls: list[int] = []
    it = make(path, pager([[], [(1, "a"), (2, "b")], [], [], ((3, "c"),), [(4, "d")]], calls))
    assert calls == []  # nothing asked before the first entry is awaited
    assert await anext(it) == (1, "a")
    assert len(calls) == 2
    assert await anext(it) == (2, "b")
    assert len(calls) == 2  # the page's entries come without a fetch
    assert [x async for x in it] == [(3, "c"), (4, "d")]
    assert len(calls) == 7
    assert await anext(it, "end") == "end"
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    assert len(calls) == 7  # once at the end, no more fetches


@pytest.mark.parametrize("path", PATHS)
async def test_an_error_from_fetch_propagates_and_ends_the_iteration(path: Which) -> None:
    pages: list[Any] = [[1, 2]]

    async def fetch() -> Any:
        if pages:
            return pages.pop()
        raise Failed("the page")

    it = make(path, fetch)
    assert [await anext(it), await anext(it)] == [1, 2]
    with pytest.raises(Failed, match=r"^the page$"):
        await anext(it)
    assert await anext(it, "end") == "end"


@pytest.mark.parametrize("path", PATHS)
async def test_a_page_that_is_no_sequence_is_a_type_error_ending_the_iteration(
    path: Which,
) -> None:
    async def fetch() -> Any:
        return 5

    it = make(path, fetch)
    with pytest.raises(TypeError):
        await anext(it)
    assert await anext(it, "end") == "end"


@pytest.mark.parametrize("path", PATHS)
async def test_a_second_anext_while_a_page_is_fetched_is_a_runtime_error(path: Which) -> None:
    release = anyio.Event()

    async def fetch() -> Any:
        await release.wait()
        return None

    it = make(path, fetch)
    async with anyio.create_task_group() as tg:
        done: list[object] = []

        async def first() -> None:
            done.append(await anext(it, "end"))

        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError):
            await anext(it)
        with pytest.raises(RuntimeError):
            await it.aclose()  # type: ignore[attr-defined]
        release.set()
    assert done == ["end"]


@pytest.mark.parametrize("path", PATHS)
async def test_anext_is_a_coroutine_like_awaitable_a_task_can_run(path: Which) -> None:
    it = make(path, pager([[1, 2], [3]]))
    step = it.__anext__()
    assert isinstance(step, collections.abc.Coroutine)
    assert await asyncio.create_task(step) == 1
    assert await asyncio.create_task(anext(it)) == 2  # type: ignore[arg-type]
    assert await asyncio.ensure_future(anext(it)) == 3
    assert await anext(it, None) is None


@pytest.mark.parametrize("path", PATHS)
async def test_aclose_ends_the_iteration_and_drops_the_page(path: Which) -> None:
    page = [object(), object(), object()]
    it = make(path, pager([page, [object()]]))
    gc.collect()
    refs = sys.getrefcount(page)
    assert await anext(it) is page[0]
    assert sys.getrefcount(page) > refs  # the iterator holds its page
    await it.aclose()  # type: ignore[attr-defined]
    await it.aclose()  # type: ignore[attr-defined]  # again: nothing
    assert [x async for x in it] == []
    gc.collect()
    assert sys.getrefcount(page) <= refs  # (the async generator drops its fetch too)


async def test_many_scans_hold_no_reference_and_no_object() -> None:
    # Entries, pages, Ready awaitables, StopIteration values: every path (read to
    # the end, errors from fetch, pages of the wrong type, aclose, anext(default),
    # the iterator protocol of the awaitable) gives back what it took.
    items = [(b"k%03d" % i, b"v" * (i % 7)) for i in range(20)]
    page = list(items)
    boom = ValueError("boom")

    def fetch_for(kind: str) -> _entries.Fetch[Any]:
        state = {"n": 0}

        async def fetch() -> Any:
            state["n"] += 1
            if state["n"] <= 2:
                return page if state["n"] == 1 else tuple(page[:5])
            if kind == "error":
                raise boom
            if kind == "type":
                return 5
            return None

        return fetch

    async def once(kind: str, fetch: _entries.Fetch[Any]) -> None:
        it = _entries.entries_c(fetch)
        if kind == "aclose":
            assert await anext(it) == items[0]
            await it.aclose()  # type: ignore[attr-defined]
            return
        if kind == "protocol":  # yield from / __await__().__next__()
            assert await anext(it) == items[0]
            with pytest.raises(StopIteration) as stop:
                it.__anext__().__await__().__next__()  # a Ready's
            assert stop.value.value == items[1]
            return
        got = []
        try:
            async for pair in it:
                got.append(pair)
        except (ValueError, TypeError):
            assert kind in ("error", "type")
        assert got == items + items[:5]
        assert await anext(it, None) is None

    kinds = ["end", "error", "type", "aclose", "protocol"]
    fetches = {kind: fetch_for(kind) for kind in kinds}
    for _ in range(20):  # warm up the allocator and the caches
        for kind in kinds:
            await once(kind, fetch_for(kind))
    boom.__traceback__ = None  # (each raise chains its frames, and they hold `got`)
    gc.collect()
    refs = [sys.getrefcount(x) for x in items]
    page_refs, boom_refs = sys.getrefcount(page), sys.getrefcount(boom)
    fetch_refs = {kind: sys.getrefcount(fetch) for kind, fetch in fetches.items()}
    objects = len(gc.get_objects())
    for _ in range(2000):
        for kind in kinds:
            await once(kind, fetch_for(kind))
    for kind in kinds:
        await once(kind, fetches[kind])
    boom.__traceback__ = None
    gc.collect()
    assert [sys.getrefcount(x) for x in items] == refs
    assert sys.getrefcount(page) == page_refs
    assert sys.getrefcount(boom) == boom_refs
    assert {kind: sys.getrefcount(f) for kind, f in fetches.items()} == fetch_refs
    assert len(gc.get_objects()) - objects < 200  # a leak per scan would be 10k
