"""The bus is the trust boundary: exact bytes, genuine answers, revocation, node-aware holders.

Each test plays an attack from issue 10 through processes as a user writes
them (``rt.spawn`` and the ``ctx`` API), against the real kv process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import anyio
import attrs
import pytest

import kvruntime
from kvruntime import (
    Address,
    Capability,
    CapabilityNotHeld,
    KvConfig,
    PackageId,
    ProcessContext,
    ProcessHandle,
    ProcessId,
    Request,
    RespondError,
    Response,
    Runtime,
    SendError,
    SendErrorKind,
    kv,
)
from kvruntime.kernel.bus import Bus, Slot
from kvruntime.kernel.capabilities import CapabilityStore
from kvruntime.kernel.mailbox import Mailbox
from kvruntime.kvservice.access import kv_capability
from kvruntime.kvservice.loop import KvProcess
from kvruntime.storage.databases import Databases
from protocol.codec import decode_response, encode_request, encode_response
from protocol.messages import ErrResponse, GetResponse, KvRequest, Set, ValueTooLarge
from tests.conftest import run_as
from tests.internals import bus_of

pytestmark = pytest.mark.anyio

T = TypeVar("T")

NODE = "our.os"
KV = "kv:distro:sys"
APP = "app:bank:pub.os"
BANK = PackageId.parse("bank:pub.os")
#: Small, so a lying value does not need megabytes.
MAX_VALUE = 64


@pytest.fixture
def config() -> KvConfig:
    return KvConfig(max_value_bytes=MAX_VALUE)


@attrs.define(eq=False)
class Started(Generic[T]):
    """A process started by ``start``: its handle, and what its body returned."""

    handle: ProcessHandle
    _box: list[T]

    async def result(self) -> T:
        """Wait for the process and return its body's result (re-raising its error)."""
        with anyio.fail_after(10):
            await self.handle.wait()
        return self._box[0]


async def start(
    rt: Runtime,
    process: str,
    body: Callable[[ProcessContext], Awaitable[T]],
    *,
    caps: Iterable[str] = (KV,),
    public: bool = False,
) -> Started[T]:
    """Spawn ``body`` as ``process`` without waiting for it."""
    box: list[T] = []

    async def main(ctx: ProcessContext) -> None:
        box.append(await body(ctx))

    handle = await rt.spawn(process, main, request_capabilities=caps, public=public)
    return Started(handle, box)


def here(process: str) -> Address:
    return Address(node=NODE, process=ProcessId.parse(process))


def set_body(key: bytes) -> bytes:
    return encode_request(KvRequest(package_id=BANK, db="db", action=Set(key=key)))


class Lying(bytes):
    """A value that claims to be one byte long."""

    def __len__(self) -> int:
        return 1


# --- 1. exact bytes at the bus ------------------------------------------------------


async def test_a_str_blob_is_refused_in_the_senders_task_and_kv_keeps_serving(
    rt: Runtime,
) -> None:
    """Once a str blob crashed the whole runtime in kv's flush (plyvel's TypeError)."""

    async def body(ctx: ProcessContext) -> bytes:
        db = await kv.open(ctx, BANK, "db")
        with pytest.raises(TypeError, match="blob must be bytes, not str"):
            await ctx.send_and_await_response(KV, set_body(b"k"), blob="not bytes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="blob must be bytes, not str"):
            await ctx.send(KV, set_body(b"k"), blob="not bytes", expects_response=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="body must be bytes, not int"):
            await ctx.send(KV, 42)  # type: ignore[arg-type]
        await db.set(b"after", b"still serving")
        return await db.get(b"after")

    assert await run_as(rt, APP, body) == b"still serving"
    assert await run_as(rt, APP, lambda ctx: kv.handle(ctx, BANK, "db").exists(b"k")) is False


async def test_a_bytes_subclass_is_copied_so_a_lying_len_cannot_pass_the_size_limit(
    rt: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> tuple[object, bytes, bytes]:
        db = await kv.open(ctx, BANK, "db")
        lying = Lying(b"x" * (MAX_VALUE * 10))
        assert len(lying) == 1
        refused = await ctx.send_and_await_response(KV, set_body(b"big"), blob=lying)
        # bytearray and memoryview are bytes-like: accepted, stored as they are.
        await ctx.send_and_await_response(KV, set_body(b"ba"), blob=bytearray(b"from bytearray"))
        await ctx.send_and_await_response(KV, set_body(b"mv"), blob=memoryview(b"from memoryview"))
        return decode_response(refused.body), await db.get(b"ba"), await db.get(b"mv")

    refused, ba, mv = await run_as(rt, APP, body)
    assert refused == ErrResponse(error=ValueTooLarge(size=MAX_VALUE * 10, max=MAX_VALUE))
    assert (ba, mv) == (b"from bytearray", b"from memoryview")
    assert await run_as(rt, APP, lambda ctx: kv.handle(ctx, BANK, "db").exists(b"big")) is False


async def test_what_crosses_the_bus_is_exact_bytes_and_respond_checks_too(rt: Runtime) -> None:
    seen: list[tuple[type, type]] = []
    refused: list[str] = []

    async def server(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        assert isinstance(message, Request)
        assert message.blob is not None
        seen.append((type(message.body), type(message.blob)))
        try:
            await ctx.respond(message, "a str answer")  # type: ignore[arg-type]
        except TypeError as exc:
            refused.append(str(exc))
        await ctx.respond(message, bytearray(b"answer"), blob=Lying(b"blob of the answer"))

    await rt.spawn("server:svc:pub.os", server, public=True)

    async def client(ctx: ProcessContext) -> Response:
        return await ctx.send_and_await_response(
            "server:svc:pub.os", memoryview(b"request"), blob=Lying(b"blob of the request")
        )

    response = await run_as(rt, APP, client, kv=False)
    assert seen == [(bytes, bytes)]
    assert refused == ["body must be bytes, not str"]
    assert (type(response.body), type(response.blob)) == (bytes, bytes)
    assert (response.body, response.blob) == (b"answer", b"blob of the answer")


# --- 2. forged answers --------------------------------------------------------------

VICTIM = "victim:bank:pub.os"
ATTACKER = "mallory:evil:evil.os"
SINK = "sink:svc:pub.os"


async def ignore(ctx: ProcessContext) -> None:
    """Take every message and answer none."""
    while True:
        await ctx.receive()


async def test_a_third_process_cannot_answer_the_victims_request_to_kv(rt: Runtime) -> None:
    """The attack from the issue: request ids are predictable, so the attacker answers first.

    The victim's request goes to kv right after it wakes the attacker, so the
    attacker runs before kv does and its forged answers are there first.
    """
    await rt.spawn(SINK, ignore, public=True)

    async def setup(ctx: ProcessContext) -> None:
        await (await kv.open(ctx, BANK, "db")).set(b"balance", b"100")

    await run_as(rt, VICTIM, setup)
    ready, probed, go = anyio.Event(), anyio.Event(), anyio.Event()
    outcomes: list[str] = []

    async def attacker(ctx: ProcessContext) -> None:
        await ready.wait()
        last = await ctx.send(SINK, b"which id now?")  # ids come from one counter
        probed.set()
        await go.wait()
        forged = encode_response(GetResponse(key=b"balance"))
        for rid in range(last + 1, last + 20):
            request = Request(id=rid, source=here(VICTIM), target=ctx.our, body=b"")
            try:
                await ctx.respond(request, forged, blob=b"1000000")
            except RespondError:
                outcomes.append("refused")
            else:
                outcomes.append("answered")

    await rt.spawn(ATTACKER, attacker)

    async def victim(ctx: ProcessContext) -> bytes:
        db = kv.handle(ctx, BANK, "db")
        ready.set()
        await probed.wait()
        go.set()  # the attacker runs next, before kv
        return await db.get(b"balance")

    assert await run_as(rt, VICTIM, victim) == b"100"
    assert outcomes == ["refused"] * 19


async def test_respond_takes_only_a_request_received_and_answers_it_once(rt: Runtime) -> None:
    errors: list[str] = []

    async def server(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        assert isinstance(message, Request)
        copy = Request(
            id=message.id, source=message.source, target=message.target, body=message.body
        )
        for forged in (copy, message):
            try:
                await ctx.respond(forged, b"first" if forged is message else b"from a copy")
            except RespondError as exc:
                errors.append(str(exc))
        try:
            await ctx.respond(message, b"second")
        except RespondError as exc:
            errors.append(str(exc))

    handle = await rt.spawn("server:svc:pub.os", server, public=True)

    async def client(ctx: ProcessContext) -> bytes:
        return (await ctx.send_and_await_response("server:svc:pub.os", b"hi")).body

    assert await run_as(rt, APP, client, kv=False) == b"first"
    await handle.wait()
    assert len(errors) == 2
    assert all("did not receive or has answered" in e for e in errors)


async def test_a_request_received_and_rewritten_cannot_answer_another(rt: Runtime) -> None:
    """The attacker got a genuine request from the victim, and gives it the id of another.

    ``respond`` lets it through (it did receive that request object), so the
    bus itself must refuse: the other request went to another process.
    """
    release, taken = anyio.Event(), anyio.Event()
    other: list[int] = []

    async def slow(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        assert isinstance(message, Request)
        taken.set()
        await release.wait()
        await ctx.respond(message, b"real")

    async def attacker(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        assert isinstance(message, Request)
        await taken.wait()
        message.id = other[0]
        await ctx.respond(message, b"forged")
        release.set()

    await rt.spawn("slow:svc:pub.os", slow, public=True)
    await rt.spawn(ATTACKER, attacker, public=True)

    async def victim(ctx: ProcessContext) -> list[tuple[int, bytes]]:
        await ctx.send(ATTACKER, b"hello", expects_response=10)
        other.append(await ctx.send("slow:svc:pub.os", b"ask", expects_response=10))
        message = await ctx.receive()
        answers = [(message.id, message.body)]
        with anyio.move_on_after(0.1):
            message = await ctx.receive()
            answers.append((message.id, message.body))
        return answers

    assert await run_as(rt, VICTIM, victim, kv=False) == [(other[0], b"real")]


async def test_the_bus_drops_an_answer_from_anyone_but_the_addressee(rt: Runtime) -> None:
    """Below ``ctx.respond``, for a waiter of ``send_and_await_response``."""
    release, taken = anyio.Event(), anyio.Event()

    async def slow(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        assert isinstance(message, Request)
        taken.set()
        await release.wait()
        await ctx.respond(message, b"real")

    await rt.spawn("slow:svc:pub.os", slow, public=True)

    async def forge() -> None:
        await taken.wait()
        victim = here(VICTIM)
        bus = bus_of(rt)
        slot = bus.slot(victim.process)
        assert slot is not None
        [rid] = slot.waiters
        bus.respond(Response(id=rid, source=here(ATTACKER), target=victim, body=b"forged"))
        release.set()

    async def victim(ctx: ProcessContext) -> bytes:
        async with anyio.create_task_group() as tg:
            tg.start_soon(forge)
            response = await ctx.send_and_await_response("slow:svc:pub.os", b"ask")
        return response.body

    assert await run_as(rt, VICTIM, victim, kv=False) == b"real"


# --- 3. revocation that holds ----------------------------------------------------------

OWNER = "owner:alpha:pub.os"
READER = "reader:beta:pub.os"
ALPHA = PackageId.parse("alpha:pub.os")


def read_cap() -> Capability:
    return kv_capability(NODE, "read", ALPHA, "shared")


async def _owner_db(ctx: ProcessContext) -> kv.Kv[bytes, bytes]:
    db = await kv.open(ctx, ALPHA, "shared")
    await db.set(b"k", b"before")
    return db


async def test_a_revoked_reader_cannot_save_the_old_offer_again(rt: Runtime) -> None:
    revoked = anyio.Event()

    async def reader(ctx: ProcessContext) -> tuple[bytes, str]:
        message = await ctx.receive()
        assert isinstance(message, Request)
        ctx.save_capabilities(message.capabilities)
        before = await kv.handle(ctx, ALPHA, "shared").get(b"k")
        await ctx.respond(message, b"saved")
        await revoked.wait()
        with pytest.raises(CapabilityNotHeld, match="no message offered"):
            ctx.save_capabilities(message.capabilities)
        assert not ctx.holds(read_cap())
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, ALPHA, "shared").get(b"k")
        return before, "refused"

    receiver = await start(rt, READER, reader)

    async def owner(ctx: ProcessContext) -> None:
        db = await _owner_db(ctx)
        await ctx.send_and_await_response(READER, b"a gift", capabilities=[read_cap()])
        await db.revoke(READER)
        await db.set(b"k", b"written after the revoke")
        revoked.set()

    await (await start(rt, OWNER, owner, caps=[KV, READER])).result()
    assert await receiver.result() == (b"before", "refused")


async def test_revoke_withdraws_an_offer_not_saved_yet(rt: Runtime) -> None:
    offered, revoked = anyio.Event(), anyio.Event()

    async def reader(ctx: ProcessContext) -> str:
        message = await ctx.receive()
        offered.set()
        await revoked.wait()
        with pytest.raises(CapabilityNotHeld, match="no message offered"):
            ctx.save_capabilities(message.capabilities)
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, ALPHA, "shared").get(b"k")
        return "refused"

    receiver = await start(rt, READER, reader)

    async def owner(ctx: ProcessContext) -> None:
        db = await _owner_db(ctx)
        await ctx.send(READER, b"a gift", capabilities=[read_cap()])
        await offered.wait()
        await db.revoke(READER)
        revoked.set()

    await (await start(rt, OWNER, owner, caps=[KV, READER])).result()
    assert await receiver.result() == "refused"


async def test_an_offer_from_a_process_revoked_since_cannot_be_saved(rt: Runtime) -> None:
    middle = "middle:beta:pub.os"
    offered, revoked = anyio.Event(), anyio.Event()

    async def reader(ctx: ProcessContext) -> str:
        message = await ctx.receive()
        offered.set()
        await revoked.wait()
        with pytest.raises(CapabilityNotHeld, match="no longer held"):
            ctx.save_capabilities(message.capabilities)
        return "refused"

    receiver = await start(rt, READER, reader)

    async def owner(ctx: ProcessContext) -> None:
        await (await _owner_db(ctx)).share(middle)

    async def pass_on(ctx: ProcessContext) -> None:
        await ctx.send(READER, b"from the middle", capabilities=[read_cap()])

    await run_as(rt, OWNER, owner)
    await (await start(rt, middle, pass_on, caps=[READER])).result()
    await offered.wait()

    async def revoke(ctx: ProcessContext) -> None:
        await kv.handle(ctx, ALPHA, "shared").revoke(middle)

    await run_as(rt, OWNER, revoke)
    revoked.set()
    assert await receiver.result() == "refused"


# --- 4. holders are addresses; the network seam checks like the bus -------------------


async def test_a_remote_source_reusing_a_local_process_id_offers_nothing(rt: Runtime) -> None:
    """Held per ProcessId, the caps of the local OWNER were offered for ``far.os@OWNER``."""
    await run_as(rt, OWNER, _owner_db)
    outcome: list[str] = []

    async def receiver(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        assert isinstance(message, Request)
        assert message.source.node == "far.os"
        try:
            ctx.save_capabilities(message.capabilities)
        except CapabilityNotHeld:
            outcome.append("refused")
            return
        outcome.append("saved: " + (await kv.handle(ctx, ALPHA, "shared").get(b"k")).decode())

    handle = await rt.spawn(READER, receiver, request_capabilities=[KV], public=True)
    await rt.deliver_from_network(
        Request(
            id=1,
            source=Address(node="far.os", process=ProcessId.parse(OWNER)),
            target=here(READER),
            body=b"take this",
            capabilities=(read_cap(),),
        )
    )
    with anyio.fail_after(5):
        await handle.wait()
    assert outcome == ["refused"]


async def test_the_network_seam_checks_messaging_like_the_bus(rt: Runtime) -> None:
    got: list[bytes] = []

    async def private(ctx: ProcessContext) -> None:
        got.append((await ctx.receive()).body)

    handle = await rt.spawn("private:svc:pub.os", private)  # not public
    remote = Address(node="far.os", process=ProcessId.parse("x:evil:evil.os"))

    def request(body: bytes, blob: object = None) -> Request:
        return Request(
            id=7,
            source=remote,
            target=here("private:svc:pub.os"),
            body=body,
            blob=blob,  # type: ignore[arg-type]
        )

    with pytest.raises(SendError) as caught:
        await rt.deliver_from_network(request(b"let me in"))
    assert caught.value.kind is SendErrorKind.FORBIDDEN
    with pytest.raises(TypeError, match="blob must be bytes"):
        await rt.deliver_from_network(request(b"x", blob="str"))
    await anyio.wait_all_tasks_blocked()
    assert got == []
    handle.kill()


# --- the public surface hands out no kernel piece ------------------------------------


async def test_no_public_name_hands_out_the_bus_the_store_or_a_mailbox(rt: Runtime) -> None:
    """What a host or a process reaches without a leading underscore carries no power."""
    powers = (Bus, Slot, CapabilityStore, KvProcess, Mailbox, Databases)
    seen: list[str] = []

    def check(owner: str, obj: object) -> None:
        for name in dir(obj):
            if name.startswith("_"):
                continue
            value = getattr(obj, name)
            seen.append(f"{owner}.{name}")
            assert not isinstance(value, powers), f"{owner}.{name} is a {type(value).__name__}"

    async def body(ctx: ProcessContext) -> None:
        check("ctx", ctx)
        for value in ctx.extensions.values():
            assert not isinstance(value, powers)

    handle = await rt.spawn(APP, body)
    await handle.wait()
    check("rt", rt)
    check("handle", handle)
    check("kvruntime", kvruntime)
    assert "KV_PROCESS_ID" not in kvruntime.__all__
    assert {"rt.kv_address", "ctx.our", "handle.address"} <= set(seen)
    for holder, cap in rt.capability_holders():  # plain values
        assert isinstance(holder, Address)
        assert isinstance(cap, Capability)
