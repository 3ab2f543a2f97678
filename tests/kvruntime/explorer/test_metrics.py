"""``/metrics``: the runtime's ``kvruntime_*`` series, scraped from a real server and parsed
with prometheus-client's own parser, against the traffic the test drove through the client."""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import uvicorn
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.explorer import build_app
from protocol.ids import PackageId
from tests.kvruntime.cli.conftest import APP

from .conftest import Explorer, free_port

pytestmark = pytest.mark.anyio


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _requests(samples: dict[Any, float], action: str, result: str) -> float:
    return samples.get(
        ("kvruntime_requests_total", frozenset({("action", action), ("result", result)})), 0.0
    )


async def _scrape(url: str) -> str:
    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            body: bytes = response.read()
            return body.decode()

    return await anyio.to_thread.run_sync(get)


async def _serve_and_scrape(rt: Runtime) -> str:
    """Serve the explorer of ``rt`` (its own registry) on a free port; GET /metrics once."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"

    async def nothing(*args: Any) -> Any:
        raise AssertionError("the scrape must do no kv work")

    app = build_app(
        run_as=nothing,
        overview=nothing,
        token="t",
        origins={origin},
        metrics=rt.metrics_registry(),
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(20):
            while not server.started:  # noqa: ASYNC110  # uvicorn offers a flag, no event
                await anyio.sleep(0.02)
        try:
            text = await _scrape(origin + "/metrics")
        finally:
            server.should_exit = True
    return text


async def test_metrics_count_the_traffic_driven_through_the_client(tmp_path: Path) -> None:
    values = [b"v" * 10, b"w" * 20, b"x" * 30]
    app_package = PackageId.parse(APP)

    async def writer(ctx: ProcessContext) -> None:
        handle = await kv.open(ctx, ctx.package_id, "notes")
        for i, value in enumerate(values):
            await handle.set(f"k{i}".encode(), value)
        assert await handle.get(b"k2") == values[2]
        await handle.begin_tx()  # left open: the open_transactions gauge counts it

    refused: list[Exception] = []

    async def spy(ctx: ProcessContext) -> None:
        try:
            await kv.handle(ctx, app_package, "notes").get(b"k0")
        except kv.NoReadCap as exc:
            refused.append(exc)

    async with Runtime(home=tmp_path / "home", storage="memory") as rt:
        done = await rt.spawn(f"writer:{APP}", writer, request_capabilities=["kv:distro:sys"])
        await done.wait()
        done = await rt.spawn("spy:other:x.os", spy, request_capabilities=["kv:distro:sys"])
        await done.wait()
        assert len(refused) == 1
        samples = _samples(await _serve_and_scrape(rt))

    none = frozenset[tuple[str, str]]()
    assert _requests(samples, "Set", "Ok") == 3
    assert _requests(samples, "Get", "Ok") == 1
    assert _requests(samples, "Get", "NoReadCap") == 1
    assert _requests(samples, "Open", "Ok") == 1
    assert _requests(samples, "BeginTx", "Ok") == 1
    answered = sum(v for (name, _), v in samples.items() if name == "kvruntime_requests_total")
    assert answered == 7
    assert samples[("kvruntime_request_latency_seconds_count", none)] == answered
    assert samples[("kvruntime_request_latency_seconds_bucket", frozenset({("le", "+Inf")}))] == 7
    assert samples[("kvruntime_request_latency_seconds_sum", none)] > 0
    assert samples[("kvruntime_batch_size_count", none)] >= 1
    assert samples[("kvruntime_batch_size_sum", none)] == answered
    assert samples[("kvruntime_written_bytes_total", none)] == sum(map(len, values))
    assert samples[("kvruntime_read_bytes_total", none)] == len(values[2])
    assert samples[("kvruntime_open_transactions", none)] == 1
    assert samples[("kvruntime_mailbox_depth", none)] == 0
    assert samples[("kvruntime_open_dbs", none)] == 1


async def test_open_dbs_counts_the_leveldb_stores_open_now(tmp_path: Path) -> None:
    async def open_two_then_remove_one(ctx: ProcessContext) -> None:
        for db in ("a", "b"):
            await (await kv.open(ctx, ctx.package_id, db)).set(b"k", b"v")
        opened.append(_samples(await _serve_and_scrape(rt)))
        await kv.remove_db(ctx, ctx.package_id, "b")

    opened: list[dict[tuple[str, frozenset[tuple[str, str]]], float]] = []
    async with Runtime(home=tmp_path / "home") as rt:  # LevelDB, the default engine
        before = _samples(await _serve_and_scrape(rt))
        done = await rt.spawn(
            f"w:{APP}", open_two_then_remove_one, request_capabilities=["kv:distro:sys"]
        )
        await done.wait()
        after = _samples(await _serve_and_scrape(rt))
    gauge = ("kvruntime_open_dbs", frozenset[tuple[str, str]]())
    assert (before[gauge], opened[0][gauge], after[gauge]) == (0, 2, 1)


async def test_each_runtime_counts_alone_and_the_default_registry_stays_empty(
    tmp_path: Path,
) -> None:
    async def one_set(ctx: ProcessContext) -> None:
        await (await kv.open(ctx, ctx.package_id, "notes")).set(b"k", b"v")

    async with (
        Runtime(home=tmp_path / "a", storage="memory") as a,
        Runtime(home=tmp_path / "b", storage="memory") as b,
    ):
        for rt, times in ((a, 2), (b, 1)):
            for _ in range(times):
                done = await rt.spawn(f"w:{APP}", one_set, request_capabilities=["kv:distro:sys"])
                await done.wait()
        scraped_a, scraped_b = (
            _samples(await _serve_and_scrape(a)),
            _samples(await _serve_and_scrape(b)),
        )
    assert _requests(scraped_a, "Set", "Ok") == 2
    assert _requests(scraped_b, "Set", "Ok") == 1
    assert not [m for m in REGISTRY.collect() if m.name.startswith("kvruntime")]


def test_kvruntime_serve_answers_metrics_that_count_its_writes(explorer: Explorer) -> None:
    for i in range(2):
        form = urllib.parse.urlencode({"key": f"m{i}", "value": "v", "token": explorer.token})
        request = urllib.request.Request(
            f"{explorer.url}/db/{APP}/notes/set", data=form.encode(), method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()
    with urllib.request.urlopen(explorer.url + "/metrics", timeout=10) as response:
        samples = _samples(response.read().decode())
    assert _requests(samples, "Set", "Ok") == 2
    assert ("kvruntime_open_transactions", frozenset()) in samples


async def test_requests_that_wait_behind_long_work_are_counted_by_their_own_action(
    tmp_path: Path,
) -> None:
    """A DeleteRange is long work: the same sender's next requests, on any db, wait behind
    it before they are even decoded. Each is counted once, under its own action, and has
    one latency sample."""

    async def writer(ctx: ProcessContext) -> None:
        handle = await kv.open(ctx, ctx.package_id, "notes")
        other = await kv.open(ctx, ctx.package_id, "other")
        await handle.set_many([(b"k%d" % i, b"v") for i in range(2000)])
        async with anyio.create_task_group() as tg:
            tg.start_soon(handle.delete_range)
            tg.start_soon(handle.get, b"k1", None)
            tg.start_soon(other.set, b"x", b"y")
            tg.start_soon(handle.exists, b"k1")

    async with Runtime(home=tmp_path / "home") as rt:
        done = await rt.spawn(f"writer:{APP}", writer, request_capabilities=["kv:distro:sys"])
        await done.wait()
        samples = _samples(await _serve_and_scrape(rt))

    none = frozenset[tuple[str, str]]()
    counted = {
        (dict(labels)["action"], dict(labels)["result"]): value
        for (name, labels), value in samples.items()
        if name == "kvruntime_requests_total"
    }
    assert counted == {
        ("Open", "Ok"): 2,
        ("SetMany", "Ok"): 1,
        ("DeleteRange", "Ok"): 1,
        ("Get", "KeyNotFound"): 1,
        ("Set", "Ok"): 1,
        ("Exists", "Ok"): 1,
    }
    assert samples[("kvruntime_request_latency_seconds_count", none)] == 7


async def test_watch_series_count_watches_changes_and_ends_by_reason(tmp_path: Path) -> None:
    """Two watchers see three changes each; one unwatches, the other's db is removed."""
    scrapes: list[dict[tuple[str, frozenset[tuple[str, str]]], float]] = []
    seen: list[int] = []

    async def watcher(ctx: ProcessContext) -> None:
        handle = await kv.open(ctx, ctx.package_id, "notes")
        other = await kv.open(ctx, ctx.package_id, "scratch")
        async with handle.watch() as changes, other.watch() as doomed:
            scrapes.append(_samples(await _serve_and_scrape(rt)))  # two open
            for i in range(3):
                await handle.set(b"k%d" % i, b"v")
            await other.set(b"x", b"y")
            async for change in changes:
                seen.append(change.seq)
                if len(seen) == 3:
                    break
            async for _ in doomed:
                break
            await kv.remove_db(ctx, ctx.package_id, "scratch")
            with pytest.raises(kv.WatchEnded):
                async for _ in doomed:
                    pass
        scrapes.append(_samples(await _serve_and_scrape(rt)))

    async with Runtime(home=tmp_path / "home") as rt:
        done = await rt.spawn(f"w:{APP}", watcher, request_capabilities=["kv:distro:sys"])
        await done.wait()
    assert len(seen) == 3
    none = frozenset[tuple[str, str]]()
    during, after = scrapes
    assert during[("kvruntime_watches", none)] == 2
    assert after[("kvruntime_watches", none)] == 0
    assert after[("kvruntime_watch_changes_logged_total", none)] == 4
    assert after[("kvruntime_watch_changes_delivered_total", none)] == 4
    ended = {
        dict(labels)["reason"]: value
        for (name, labels), value in after.items()
        if name == "kvruntime_watches_ended_total"
    }
    assert ended == {"unwatched": 1, "db_removed": 1}
