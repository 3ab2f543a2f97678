"""Load: floods, many senders on one db, a sender that never reads its answers.

Checked: every request answered exactly once, in each sender's order;
nothing lost or duplicated in the db; the kv mailbox and each sender's
in-flight answers never pass their bounds; a well-behaved sender is not
starved by a flooding one. Peak RSS is sampled from /proc and reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from kvruntime import KvConfig, ProcessContext, ProcessId, Request, Runtime, kv
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import KvRequest, OkResponse, Set
from tests.conftest import run_as
from tests.internals import bus_of, kv_of
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("load:test.os")


def rss_mib() -> float:
    """This process's resident set size now, in MiB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def set_body(key: bytes) -> bytes:
    return encode_request(KvRequest(package_id=PKG, db="db", action=Set(key=key, tx_id=None)))


async def pipeline(ctx: ProcessContext, items: list[tuple[bytes, bytes]]) -> list[int]:
    """Send every Set without awaiting its answer; return the answered ids in arrival order.

    Fails if an answer is not Ok or arrives twice.
    """
    sent: list[int] = []
    answered: list[int] = []

    async def receive() -> None:
        while len(answered) < len(items):
            message = await ctx.receive()
            assert not isinstance(message, Request)
            assert decode_response(message.body) == OkResponse(), message
            answered.append(message.id)

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        for key, value in items:
            sent.append(
                await ctx.send(KV_PROCESS_ID, set_body(key), blob=value, expects_response=60)
            )
    assert answered == sent, "answers lost, duplicated or out of the sender's order"
    return answered


class Watch:
    """Samples RSS and the bounded queues while a load runs."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.base_rss = self.peak_rss = rss_mib()
        self.peak_kv_queue = 0
        self.peak_inflight = 0

    async def run(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, rss_mib())
            self.peak_kv_queue = max(self.peak_kv_queue, len(kv_of(self.rt).slot.mailbox))
            for pid in ("flood:load:test.os", "slow:load:test.os"):
                slot = bus_of(self.rt).slot(pid_of(pid))
                if slot is not None:
                    self.peak_inflight = max(self.peak_inflight, len(slot.expected))
            await anyio.sleep(0.005)


def pid_of(text: str) -> ProcessId:
    """The ProcessId spelled ``text``."""
    return ProcessId.parse(text)


async def _flood(home: Path, figures: Figures, n: int) -> None:
    config = KvConfig(mailbox_capacity=256)
    async with Runtime(home=home, config=config, inflight_limit=512) as rt:
        items = [(b"k%06d" % i, b"v%06d" % i * 8) for i in range(n)]
        watch = Watch(rt)  # after building the items: what grows is the runtime's

        async def flood(ctx: ProcessContext) -> None:
            await kv.open(ctx, PKG, "db")
            await pipeline(ctx, items)
            db = kv.handle(ctx, PKG, "db")
            for key, value in items[:: max(1, n // 2000)] + items[-5:]:
                assert await db.get(key) == value

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            await run_as(rt, "flood:load:test.os", flood)
            tg.cancel_scope.cancel()
        assert watch.peak_kv_queue <= config.mailbox_capacity
        assert watch.peak_inflight <= 512
        store = kv_of(rt).dbs.get(PKG, "db")
        assert store is not None
        assert sum(1 for _ in store.iterate(include_value=False)) == n  # none lost, none extra
    figures.add("flood: pipelined requests answered in order", n)
    figures.peak("flood: peak RSS of the test process (MiB)", round(watch.peak_rss, 1))
    figures.peak(
        "flood: RSS growth during the flood (MiB)", round(watch.peak_rss - watch.base_rss, 1)
    )


async def test_one_sender_fires_20k_requests_without_awaiting(home: Path, figures: Figures) -> None:
    await _flood(home, figures, 20_000)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_flood_soak(home: Path, figures: Figures) -> None:
    await _flood(home, figures, 300_000)


async def test_many_senders_hammer_one_db_in_order(rt: Runtime, figures: Figures) -> None:
    senders, per_sender = 16, 400
    await run_as(rt, "opener:load:test.os", lambda ctx: kv.open(ctx, PKG, "db"))

    async def hammer(ctx: ProcessContext) -> None:
        await kv.open(ctx, PKG, "db")
        me = str(ctx.process_id).encode()
        # The same key again and again: the value left is the last sent, or order broke.
        items = [(me + b"/last", b"%d" % i) for i in range(per_sender)]
        items += [(me + b"/%d" % i, b"x") for i in range(per_sender)]
        await pipeline(ctx, items)

    async with anyio.create_task_group() as tg:
        for i in range(senders):
            handle = await rt.spawn(
                f"s{i}:load:test.os", hammer, request_capabilities=["kv:distro:sys"]
            )
            tg.start_soon(handle.wait)

    async def check(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "db")
        for i in range(senders):
            me = f"s{i}:load:test.os".encode()
            assert await db.get(me + b"/last") == b"%d" % (per_sender - 1)
            for j in range(0, per_sender, 37):
                assert await db.get(me + b"/%d" % j) == b"x"

    await run_as(rt, "opener:load:test.os", check)
    figures.add("flood: requests from concurrent senders", senders * per_sender * 2)


async def test_a_sender_that_never_reads_answers_neither_grows_nor_starves_others(
    home: Path, figures: Figures
) -> None:
    inflight = 64
    async with Runtime(home=home, inflight_limit=inflight) as rt:
        sent: list[int] = []
        at_bound = anyio.Event()  # the slow sender has sent ``inflight`` requests

        async def slow(ctx: ProcessContext) -> None:
            await kv.open(ctx, PKG, "db")
            for i in range(100_000):  # never receives: blocks once `inflight` answers wait
                await ctx.send(
                    KV_PROCESS_ID, set_body(b"slow%d" % i), blob=b"x" * 1000, expects_response=60
                )
                sent.append(i)
                if len(sent) == inflight:
                    at_bound.set()

        slow_handle = await rt.spawn(
            "slow:load:test.os", slow, request_capabilities=["kv:distro:sys"]
        )
        # The fast sender runs beside a stuck one: first the slow sender reaches its
        # bound (under load it could still be on its way when the fast one was done).
        with anyio.fail_after(20):
            await at_bound.wait()
        latencies: list[float] = []

        async def fast(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PKG, "fast")
            for i in range(300):
                start = time.monotonic()
                await db.set(b"f%d" % i, b"v")
                assert await db.get(b"f%d" % i) == b"v"
                latencies.append(time.monotonic() - start)

        with anyio.fail_after(20):
            await run_as(rt, "fast:load:test.os", fast)
        slot = bus_of(rt).slot(pid_of("slow:load:test.os"))
        assert slot is not None
        assert len(sent) == inflight, "the slow sender was not held at its in-flight bound"
        assert len(slot.mailbox) <= inflight, "unread answers piled up past the bound"
        slow_handle.kill()
    figures.add("flood: fast-sender requests beside a stuck one", 600)
    assert max(latencies) < 1.0, f"fast sender starved: {max(latencies):.3f}s"
