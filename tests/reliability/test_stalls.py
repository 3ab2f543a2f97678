"""No single request may stall the node: a bystander of another package does
gets on its own db while one attacker runs a request that used to hold the
kv loop, and its worst latency is reported (and bounded, generously).

Attacks: a DeleteRange of many keys, an Open and a RemoveDb made slow, a
commit whose conflict check covers many scans against many writes, a
GetMany naming one large key many times, scan pages of a transaction with
many staged writes, 40 large SetMany pipelined. The order of one sender's
answers across a long request, and across the rounds a large taken batch is
served in (several senders pipelining big and small requests at once), is
checked exactly. A bystander's latency counts from when its get was due, or
from when the attack began if later: a wait for the attacker's own setup on
the shared event loop (encoding its blobs) is not the attack's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from kvruntime import ProcessContext, Response, Runtime, kv
from kvruntime.storage.databases import Databases
from protocol.blobs import encode_items, encode_writes
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import (
    DeleteRange,
    DeleteRangeResponse,
    Get,
    GetResponse,
    KvAction,
    KvRequest,
    OkResponse,
    Set,
    SetMany,
    WriteBatch,
)
from tests.conftest import run_as
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.anyio

ATTACKER = "attacker:evil:pub.os"
EVIL = PackageId.parse("evil:pub.os")
BYSTANDER = "bystander:calm:pub.os"
CALM = PackageId.parse("calm:pub.os")
#: Generous: the shared 2-core machine is noisy. Measured figures go to the summary.
BOUND = 1.0


class Bystander:
    """Gets on its own db every 2 ms until stopped; keeps the worst latency."""

    def __init__(self) -> None:
        self.measuring = False
        self.began = 0.0
        self.worst = 0.0
        self.gets = 0
        self.ready = anyio.Event()
        self.stop = anyio.Event()
        self.measured = anyio.Event()  # set after 3 gets measured

    def start(self) -> None:
        """Measure from now on (the attack's setup is not the attack)."""
        self.measuring = True
        self.began = time.monotonic()

    async def run(self, ctx: ProcessContext) -> None:
        db = await kv.open(ctx, CALM, "own")
        await db.set(b"k", b"v")
        self.ready.set()
        # From when a get was due, not when it was sent: work that holds the
        # event loop delays the sending too.
        due = time.monotonic()
        while not self.stop.is_set():
            assert await db.get(b"k") == b"v"
            done = time.monotonic()
            if self.measuring:  # the wait for the attack's setup is not the attack's
                self.worst = max(self.worst, done - max(due, self.began))
                self.gets += 1
                if self.gets >= 3:
                    self.measured.set()
            due = done + 0.002
            await anyio.sleep(0.002)


async def beside_a_bystander(
    rt: Runtime,
    figures: Figures,
    attack: str,
    body: Callable[[ProcessContext, Callable[[], None]], Awaitable[None]],
) -> float:
    """Run ``body`` as the attacker while a bystander does gets; its worst latency."""
    watch = Bystander()
    async with anyio.create_task_group() as tg:
        handle = await rt.spawn(BYSTANDER, watch.run, request_capabilities=["kv:distro:sys"])
        tg.start_soon(handle.wait)
        await watch.ready.wait()
        try:
            await run_as(rt, ATTACKER, lambda ctx: body(ctx, watch.start))
            with anyio.fail_after(10):  # a few gets after it too: one may have waited
                await watch.measured.wait()
        finally:
            watch.stop.set()
    figures.peak(f"stall: {attack}: bystander worst latency (ms)", round(watch.worst * 1000, 1))
    return watch.worst


async def fill(ctx: ProcessContext, db: str, n: int, value: bytes = b"v") -> kv.Kv[bytes, bytes]:
    handle = await kv.open(ctx, EVIL, db)
    for start in range(0, n, 10_000):
        await handle.set_many((b"k%07d" % i, value) for i in range(start, min(n, start + 10_000)))
    return handle


def raw(db: str, action: KvAction) -> bytes:
    return encode_request(KvRequest(package_id=EVIL, db=db, action=action))


async def receive(ctx: ProcessContext) -> Response:
    with anyio.fail_after(30):
        message = await ctx.receive()
    assert isinstance(message, Response)
    return message


# --- long work on one db ---------------------------------------------------------------


async def test_a_large_delete_range_stalls_no_other_db(rt: Runtime, figures: Figures) -> None:
    n = 300_000

    async def attack(ctx: ProcessContext, start: Callable[[], None]) -> None:
        await fill(ctx, "big", n)
        await kv.open(ctx, EVIL, "other")
        await kv.handle(ctx, EVIL, "other").set(b"o", b"1")
        start()
        ids = [
            await ctx.send(
                KV_PROCESS_ID,
                raw("big", DeleteRange(prefix=b"k", start=None, end=None)),
                expects_response=30,
            ),
            # The same sender, another db, right after: answered after the DeleteRange.
            await ctx.send(KV_PROCESS_ID, raw("other", Get(key=b"o")), expects_response=30),
            # And its db again: sees the range deleted.
            await ctx.send(KV_PROCESS_ID, raw("big", Get(key=b"k0000001")), expects_response=30),
        ]
        answers = [await receive(ctx) for _ in ids]
        assert [a.id for a in answers] == ids, "one sender's answers left their order"
        assert decode_response(answers[0].body) == DeleteRangeResponse(count=n)
        assert decode_response(answers[1].body) == GetResponse(key=b"o")
        assert answers[1].blob == b"1"
        assert decode_response(answers[2].body) != GetResponse(key=b"k0000001")

    worst = await beside_a_bystander(rt, figures, f"DeleteRange of {n} keys", attack)
    assert worst < BOUND, f"bystander waited {worst:.3f} s"


async def test_another_senders_request_is_served_during_a_delete_range(rt: Runtime) -> None:
    """Not a timing: a get of another sender, sent after the DeleteRange was
    accepted, is answered before the DeleteRange is (it used to wait)."""
    started = anyio.Event()
    order: list[str] = []

    async def attack(ctx: ProcessContext) -> None:
        await fill(ctx, "big", 300_000)
        await ctx.send(
            KV_PROCESS_ID,
            raw("big", DeleteRange(prefix=None, start=None, end=None)),
            expects_response=30,
        )
        started.set()
        await receive(ctx)
        order.append("delete range")

    async def other(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, CALM, "own")
        await db.set(b"k", b"v")
        await started.wait()
        await anyio.sleep(0.01)  # the DeleteRange is in the kv mailbox or running
        assert await db.get(b"k") == b"v"
        order.append("get")

    async with anyio.create_task_group() as tg:
        first = await rt.spawn(BYSTANDER, other, request_capabilities=["kv:distro:sys"])
        tg.start_soon(first.wait)
        await run_as(rt, ATTACKER, attack)
    assert order == ["get", "delete range"]


@pytest.mark.parametrize("slow", ["open", "remove"])
async def test_a_slow_open_or_remove_stalls_no_other_db(
    rt: Runtime, figures: Figures, slow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    delay = 0.6
    real = getattr(Databases, slow)

    @functools.wraps(real)
    def slowed(self: Databases, package_id: PackageId, db: str, **kw: bool) -> object:
        if db == "slow":
            time.sleep(delay)  # in the worker thread
        return real(self, package_id, db, **kw)

    async def attack(ctx: ProcessContext, start: Callable[[], None]) -> None:
        handle = await kv.open(ctx, EVIL, "slow" if slow == "remove" else "other")
        await handle.set(b"o", b"1")
        monkeypatch.setattr(Databases, slow, slowed)
        start()
        started = time.monotonic()
        if slow == "open":
            await kv.open(ctx, EVIL, "slow")
        else:
            await kv.remove_db(ctx, EVIL, "slow")
        assert time.monotonic() - started >= delay

    worst = await beside_a_bystander(rt, figures, f"{slow} made {delay} s slow", attack)
    assert worst < delay / 2, f"bystander waited {worst:.3f} s"


# --- work on the loop, bounded -----------------------------------------------------------


@pytest.mark.parametrize(
    ("scans", "writes"),
    [(2000, 50_000), pytest.param(5000, 100_000, marks=pytest.mark.slow)],
)
async def test_a_commit_over_many_scans_and_many_writes_stalls_nobody(
    rt: Runtime, figures: Figures, scans: int, writes: int
) -> None:

    async def attack(ctx: ProcessContext, start: Callable[[], None]) -> None:
        db = await kv.open(ctx, EVIL, "c")
        tx = await db.begin_tx()
        for i in range(scans):  # narrow scans of keys nobody writes
            await db.list_page(prefix=b"r%05d" % i, tx_id=tx)
        await fill(ctx, "c", writes)
        start()
        await db.commit_tx(tx)

    worst = await beside_a_bystander(
        rt, figures, f"commit over {scans} scans and {writes} writes", attack
    )
    assert worst < BOUND, f"bystander waited {worst:.3f} s"


async def test_a_get_many_of_one_large_key_many_times_stalls_nobody(
    rt: Runtime, figures: Figures
) -> None:
    async def attack(ctx: ProcessContext, start: Callable[[], None]) -> None:
        db = await kv.open(ctx, EVIL, "g")
        await db.set(b"big", b"x" * (1 << 20))
        start()
        with pytest.raises(kv.AnswerTooLarge):
            await db.get_many([b"big"] * 1000)

    worst = await beside_a_bystander(rt, figures, "GetMany of 1 MiB x 1000", attack)
    assert worst < BOUND, f"bystander waited {worst:.3f} s"


async def test_scan_pages_over_many_staged_writes_stall_nobody(
    rt: Runtime, figures: Figures
) -> None:
    staged, pages = 200_000, 20
    spent: list[float] = []

    async def attack(ctx: ProcessContext, start: Callable[[], None]) -> None:
        db = await kv.open(ctx, EVIL, "s")
        tx = await db.begin_tx()
        for first in range(0, staged, 10_000):
            ops = [(b"s%07d" % i, b"v") for i in range(first, first + 10_000)]
            await kv_request(ctx, WriteBatch(tx_id=tx, count=len(ops)), encode_writes(ops))
        start()
        cursor = None
        for _ in range(pages):
            started = time.monotonic()
            page = await db.list_page(prefix=b"s", tx_id=tx, cursor=cursor, limit=100)
            spent.append(time.monotonic() - started)
            cursor = page.cursor
        await db.rollback_tx(tx)

    worst = await beside_a_bystander(rt, figures, f"scan pages over {staged} staged", attack)
    figures.peak(
        f"stall: scan page over {staged} staged: mean page (ms)",
        round(1000 * sum(spent) / len(spent), 2),
    )
    assert worst < BOUND, f"bystander waited {worst:.3f} s"


async def kv_request(ctx: ProcessContext, action: KvAction, blob: bytes) -> None:
    message = await ctx.send_and_await_response(KV_PROCESS_ID, raw("s", action), blob=blob)
    assert decode_response(message.body) == OkResponse()


@pytest.mark.parametrize(
    ("items", "size"),
    [
        (10_000, 100),  # each one long work (writes.py): written alone, in a thread
        (1_900, 500),  # each just under LONG_BATCH_BYTES: served inline, in rounds
    ],
)
async def test_pipelined_large_batches_stall_no_other_db(
    rt: Runtime, figures: Figures, items: int, size: int
) -> None:
    """A get on another db waits for a round or two of 40 pipelined batches,
    not for all of them: half the attack's own time bounds it (a get that
    waited for every batch queued before it, as one taken batch served in
    arrival order made it, waits about all of it: 0.21 s of 0.21 s measured).
    Measured here, beside the kv loop's rounds (rounds.py): 25-46 ms of
    0.10-0.16 s for the inline shape; the long-work shape was fair already."""
    batches = 40
    span: list[float] = []

    async def attack(ctx: ProcessContext, start: Callable[[], None]) -> None:
        await kv.open(ctx, EVIL, "b")
        blobs = [
            encode_items([(b"k%03d%06d" % (b, i), b"v" * size) for i in range(items)])
            for b in range(batches)
        ]
        start()
        span.append(time.monotonic())
        ids = [
            await ctx.send(
                KV_PROCESS_ID, raw("b", SetMany(count=items)), blob=blob, expects_response=60
            )
            for blob in blobs
        ]
        answers = [await receive(ctx) for _ in ids]
        span.append(time.monotonic())
        assert [a.id for a in answers] == ids
        assert all(decode_response(a.body) == OkResponse() for a in answers)

    shape = f"{batches} SetMany of {items} x {size} B pipelined"
    worst = await beside_a_bystander(rt, figures, shape, attack)
    took = span[1] - span[0]
    figures.peak(f"stall: {shape}: attack (ms)", round(took * 1000, 1))
    assert worst < took / 2, f"bystander waited {worst:.3f} s of {took:.3f} s"


# --- rounds: fair across senders, order per sender (loop.py, rounds.py) -----------------


def _big(n: int, tag: bytes) -> bytes:
    """A SetMany blob of ``n`` keys (over one round's budget at 10,000), k000000 = ``tag``."""
    return encode_items([(b"k%06d" % i, tag + b"." * 100) for i in range(n)])


async def test_several_senders_pipelining_big_and_small_keep_order_and_answers(
    rt: Runtime,
) -> None:
    """Three senders pipeline big SetMany, small Set and Get on their own dbs
    at once: each gets its answers in its order, each Get sees exactly the
    writes that sender sent before it."""
    items = 10_000

    async def sender(ctx: ProcessContext, me: int) -> None:
        db = f"mix{me}"
        await kv.open(ctx, EVIL, db)
        tag = b"%d" % me
        plan: list[tuple[KvAction, bytes | None, object, bytes | None]] = [
            (SetMany(count=items), _big(items, tag + b"a"), OkResponse(), None),
            (Get(key=b"k000000"), None, GetResponse(key=b"k000000"), tag + b"a" + b"." * 100),
            (Set(key=b"k000000", tx_id=None), tag + b"small", OkResponse(), None),
            (Get(key=b"k000000"), None, GetResponse(key=b"k000000"), tag + b"small"),
            (SetMany(count=items), _big(items, tag + b"b"), OkResponse(), None),
            (SetMany(count=items), _big(items, tag + b"c"), OkResponse(), None),
            (Get(key=b"k000000"), None, GetResponse(key=b"k000000"), tag + b"c" + b"." * 100),
            (Set(key=b"k000000", tx_id=None), tag + b"last", OkResponse(), None),
            (Get(key=b"k009999"), None, GetResponse(key=b"k009999"), tag + b"c" + b"." * 100),
            (Get(key=b"k000000"), None, GetResponse(key=b"k000000"), tag + b"last"),
        ]
        ids = [
            await ctx.send(KV_PROCESS_ID, raw(db, action), blob=blob, expects_response=60)
            for action, blob, _, _ in plan
        ]
        answers = [await receive(ctx) for _ in ids]
        assert [a.id for a in answers] == ids, f"sender {me}: answers left their order"
        for (action, _, response, blob), answer in zip(plan, answers, strict=True):
            assert decode_response(answer.body) == response, f"sender {me}: {action}"
            assert answer.blob == blob, f"sender {me}: {action}"

    async with anyio.create_task_group() as tg:
        for me in range(3):
            tg.start_soon(run_as, rt, f"mix{me}:evil:pub.os", functools.partial(sender, me=me))


async def test_one_senders_pipelined_writes_are_seen_by_its_own_get(rt: Runtime) -> None:
    """20 big SetMany pipelined (many rounds), then a Get: it sees the last
    write of its key, and is answered last."""
    batches, items = 20, 10_000

    async def attack(ctx: ProcessContext) -> None:
        await kv.open(ctx, EVIL, "own")
        ids = [
            await ctx.send(
                KV_PROCESS_ID,
                raw("own", SetMany(count=items)),
                blob=_big(items, b"%02d" % b),
                expects_response=60,
            )
            for b in range(batches)
        ]
        ids.append(
            await ctx.send(KV_PROCESS_ID, raw("own", Get(key=b"k004242")), expects_response=60)
        )
        answers = [await receive(ctx) for _ in ids]
        assert [a.id for a in answers] == ids
        assert all(decode_response(a.body) == OkResponse() for a in answers[:-1])
        assert decode_response(answers[-1].body) == GetResponse(key=b"k004242")
        assert answers[-1].blob == b"%02d" % (batches - 1) + b"." * 100

    await run_as(rt, ATTACKER, attack)
