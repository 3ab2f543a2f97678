"""A sender that does not read its answers cannot make the node hold them all.

The in-flight limit bounds how many answers a process may await through its
mailbox (a count); each Get answer can be a 16 MiB value. So the kv process
defers serving a sender whose unread answers are over its byte budget
(``Runtime(answer_budget=...)``): its requests wait, in order, until it
reads; everyone else is served meanwhile. Measured here from the outside:
the blob bytes queued in the sender's mailbox, through tests/internals.py.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kvruntime import (
    KvConfig,
    ProcessContext,
    Request,
    Response,
    Runtime,
    SendError,
    SendErrorKind,
    kv,
)
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId, ProcessId
from protocol.messages import Get, GetResponse, KvRequest, OkResponse, Set
from tests.conftest import run_as
from tests.internals import bus_of, kv_of, parked_of, queued_answer_bytes
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("backlog:test.os")
MIB = 1 << 20


def get_body(key: bytes) -> bytes:
    return encode_request(KvRequest(package_id=PKG, db="db", action=Get(key=key)))


def set_body(key: bytes) -> bytes:
    return encode_request(KvRequest(package_id=PKG, db="db", action=Set(key=key, tx_id=None)))


async def receive_answers(ctx: ProcessContext, count: int) -> list[Response]:
    answers: list[Response] = []
    while len(answers) < count:
        message = await ctx.receive()
        assert not isinstance(message, Request), message
        answers.append(message)
    return answers


async def test_unread_big_answers_stay_within_the_budget_and_others_are_served(
    home: Path, figures: Figures
) -> None:
    budget, value, pipelined = 16 * MIB, b"v" * (4 * MIB), 64  # 256 MiB if all were held
    async with Runtime(home=home, answer_budget=budget) as rt:
        sent: list[int] = []
        pipelined_all, may_read = anyio.Event(), anyio.Event()
        answers: list[Response] = []

        async def reader_late(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PKG, "db")
            await db.set(b"big", value)
            for _ in range(pipelined):
                sent.append(await ctx.send(KV_PROCESS_ID, get_body(b"big"), expects_response=60))
            pipelined_all.set()
            await may_read.wait()
            answers.extend(await receive_answers(ctx, pipelined))

        a = await rt.spawn(
            "late:backlog:test.os", reader_late, request_capabilities=["kv:distro:sys"]
        )
        with anyio.fail_after(30):
            await pipelined_all.wait()
        late = ProcessId.parse("late:backlog:test.os")
        held: list[int] = []

        async def bystander(ctx: ProcessContext) -> int:
            db = await kv.open(ctx, PKG, "db")
            await db.set(b"small", b"s")
            for i in range(20):  # each waits behind A's queued gets: served, not stalled
                assert await db.get(b"small") == b"s"
                await db.set(b"small%d" % i, b"x")
                held.append(queued_answer_bytes(rt, late))
            return 20

        with anyio.fail_after(30):  # a hang guard: B would never finish if A stalled kv
            assert await run_as(rt, "bystander:backlog:test.os", bystander) == 20
        # The bound: the budget, plus the answers of one serving round past it.
        bound = budget + 2 * len(value)
        assert max(held) <= bound, f"{max(held) / MIB:.0f} MiB held for A (bound {bound / MIB})"
        assert max(held) >= budget, "A's answers were not served up to its budget"
        may_read.set()
        with anyio.fail_after(60):
            await a.wait()
        assert [answer.id for answer in answers] == sent, "answers lost or out of order"
        for answer in answers:
            assert decode_response(answer.body) == GetResponse(key=b"big")
            assert answer.blob == value
    figures.peak("backlog: MiB of unread answers held (64 x 4 MiB pipelined)", max(held) / MIB)


async def test_a_backlogged_senders_requests_keep_their_order(home: Path) -> None:
    """A Set queued behind a backlogged sender's Gets is served after them."""
    old, new = b"o" * (2 * MIB), b"n" * (2 * MIB)
    async with Runtime(home=home, answer_budget=MIB) as rt:

        async def body(ctx: ProcessContext) -> list[tuple[object, bytes | None]]:
            db = await kv.open(ctx, PKG, "db")
            await db.set(b"k", old)
            ids = [
                await ctx.send(KV_PROCESS_ID, get_body(b"k"), expects_response=60) for _ in "abc"
            ]
            ids.append(await ctx.send(KV_PROCESS_ID, set_body(b"k"), blob=new, expects_response=60))
            ids.append(await ctx.send(KV_PROCESS_ID, get_body(b"k"), expects_response=60))
            await anyio.sleep(0.2)  # A does not read for a while: kv parks its requests
            got = await receive_answers(ctx, len(ids))
            assert [answer.id for answer in got] == ids
            return [(decode_response(answer.body), answer.blob) for answer in got]

        with anyio.fail_after(30):
            got = await run_as(rt, "order:backlog:test.os", body)
        assert got == [(GetResponse(key=b"k"), old)] * 3 + [
            (OkResponse(), None),
            (GetResponse(key=b"k"), new),
        ]


async def test_an_answer_larger_than_the_budget_is_still_delivered(home: Path) -> None:
    value = b"x" * (3 * MIB)
    async with Runtime(home=home, answer_budget=MIB) as rt:

        async def body(ctx: ProcessContext) -> int:
            db = await kv.open(ctx, PKG, "db")
            await db.set(b"huge", value)
            ids = [
                await ctx.send(KV_PROCESS_ID, get_body(b"huge"), expects_response=60)
                for _ in range(4)
            ]
            got = await receive_answers(ctx, len(ids))
            assert [answer.id for answer in got] == ids
            assert all(answer.blob == value for answer in got)
            assert await db.get(b"huge") == value  # awaited: a future, not the mailbox
            return len(got)

        with anyio.fail_after(30):
            assert await run_as(rt, "huge:backlog:test.os", body) == 4


async def test_a_backlogged_sender_that_keeps_sending_is_held_not_buffered(home: Path) -> None:
    """Parked requests are bounded: past ``mailbox_capacity`` of them, the sender's
    further requests to kv wait in its own task; others are served; nothing is lost."""
    capacity, flood = 32, 500
    config = KvConfig(mailbox_capacity=capacity)
    async with Runtime(home=home, config=config, answer_budget=MIB) as rt:
        sent: list[int] = []
        may_read, done = anyio.Event(), anyio.Event()

        async def flooder(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PKG, "db")
            await db.set(b"big", b"b" * (2 * MIB))
            await ctx.send(KV_PROCESS_ID, get_body(b"big"), expects_response=60)  # unread

            async def read_later() -> None:
                await may_read.wait()
                answer = await receive_answers(ctx, 1)
                assert answer[0].blob == b"b" * (2 * MIB)

            async with anyio.create_task_group() as tg:
                tg.start_soon(read_later)
                for i in range(flood):  # no answers expected: only the order binds them
                    await ctx.send(KV_PROCESS_ID, set_body(b"f%d" % i), blob=b"%d" % i)
                    sent.append(i)
            done.set()

        late = ProcessId.parse("flood:backlog:test.os")
        await rt.spawn("flood:backlog:test.os", flooder, request_capabilities=["kv:distro:sys"])
        parked: list[int] = []

        async def bystander(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PKG, "db")
            for i in range(20):
                await db.set(b"b%d" % i, b"v")
                assert await db.get(b"b%d" % i) == b"v"
                parked.append(parked_of(rt, late))

        with anyio.fail_after(30):
            await run_as(rt, "bystander:backlog:test.os", bystander)
        # Held at `capacity` parked; those already in kv's mailbox then are parked too.
        bound = 2 * capacity
        assert max(parked) <= bound, f"{max(parked)} requests parked (bound {bound})"
        assert len(sent) < flood, "the backlogged sender was never held"
        assert len(kv_of(rt).slot.mailbox) <= capacity
        may_read.set()
        with anyio.fail_after(30):
            await done.wait()
        assert len(sent) == flood
        assert not bus_of(rt).backlogged

        async def check(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PKG, "db")
            for i in range(flood):
                assert await db.get(b"f%d" % i) == b"%d" % i, i

        with anyio.fail_after(30):
            await run_as(rt, "flood:backlog:test.os", check)


async def test_an_awaited_request_parked_past_its_timeout_times_out(home: Path) -> None:
    """The bus's deadline rules hold for a parked request: the awaiting sender gets
    SendError(TIMEOUT); the answer that comes once it reads is dropped."""
    async with Runtime(home=home, answer_budget=MIB) as rt:

        async def body(ctx: ProcessContext) -> bytes | None:
            db = await kv.open(ctx, PKG, "db")
            await db.set(b"big", b"b" * (2 * MIB))
            await ctx.send(KV_PROCESS_ID, get_body(b"big"), expects_response=60)  # unread
            await anyio.sleep(0.1)  # its answer arrives: over budget
            with pytest.raises(SendError) as raised:
                await ctx.send_and_await_response(KV_PROCESS_ID, get_body(b"big"), timeout=0.2)
            assert raised.value.kind is SendErrorKind.TIMEOUT
            got = await receive_answers(ctx, 1)  # read back: kv serves the parked one
            assert got[0].blob == b"b" * (2 * MIB)
            return await db.get(b"big")  # served after it, its answer not confused with it

        with anyio.fail_after(30):
            assert await run_as(rt, "timeout:backlog:test.os", body) == b"b" * (2 * MIB)
