"""The host runtime and the bus, through processes as a user writes them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
import attrs
import plyvel
import pytest

from kvruntime import (
    Address,
    Capability,
    CapabilityNotHeld,
    HomeInUse,
    KvConfig,
    PackageId,
    ProcessContext,
    ProcessHandle,
    ProcessId,
    ProcessKilled,
    Request,
    Response,
    Runtime,
    RuntimeClosed,
    SendError,
    SendErrorKind,
    kv,
)
from kvruntime.kvservice.access import kv_capability
from protocol.codec import decode_response, encode_request
from protocol.messages import KvRequest, OkResponse, Open, Set
from tests.conftest import run_as
from tests.internals import bus_of

pytestmark = pytest.mark.anyio

T = TypeVar("T")

ECHO = "echo:tools:pub.os"
NODE = "our.os"


async def echo(ctx: ProcessContext) -> None:
    """Answer every request with ``echo:`` + its body, its blob and metadata."""
    while True:
        message = await ctx.receive()
        if isinstance(message, Request):
            await ctx.respond(
                message, b"echo:" + message.body, blob=message.blob, metadata=message.metadata
            )


async def idle(ctx: ProcessContext) -> None:
    """Return at once."""


async def forever(ctx: ProcessContext) -> None:
    """Never return (until killed)."""
    await anyio.sleep_forever()


def address(process: str, node: str = NODE) -> Address:
    return Address(node=node, process=ProcessId.parse(process))


@attrs.define(eq=False)
class Started(Generic[T]):
    """A process started by ``start``: its handle, and what its body returned."""

    handle: ProcessHandle
    _box: list[T]

    async def result(self) -> T:
        """Wait for the process and return its body's result (re-raising its error)."""
        await self.handle.wait()
        return self._box[0]


async def start(
    rt: Runtime,
    process: str,
    body: Callable[[ProcessContext], Awaitable[T]],
    *,
    caps: Iterable[str] = ("kv:distro:sys",),
    public: bool = False,
) -> Started[T]:
    """Spawn ``body`` as ``process`` without waiting for it."""
    box: list[T] = []

    async def main(ctx: ProcessContext) -> None:
        box.append(await body(ctx))

    handle = await rt.spawn(process, main, request_capabilities=caps, public=public)
    return Started(handle, box)


# --- lifecycle ---------------------------------------------------------------


async def test_wait_returns_when_main_returns(rt: Runtime) -> None:
    seen: list[Address] = []

    async def main(ctx: ProcessContext) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(ctx.our)

    handle = await rt.spawn("app:pkg:pub.os", main)
    assert handle.address == address("app:pkg:pub.os")
    await handle.wait()
    assert not handle.running
    assert seen == [address("app:pkg:pub.os")]
    await handle.wait()  # waiting again returns again


async def test_wait_reraises_the_error_of_main(rt: Runtime) -> None:
    async def main(ctx: ProcessContext) -> None:
        raise LookupError("boom in main")

    handle = await rt.spawn("app:pkg:pub.os", main)
    with pytest.raises(LookupError, match="boom in main"):
        await handle.wait()
    # The id is free again once the process ended.
    again = await rt.spawn("app:pkg:pub.os", main)
    with pytest.raises(LookupError, match="boom in main"):
        await again.wait()


async def test_wait_raises_process_killed_when_killed(rt: Runtime) -> None:
    started = anyio.Event()
    cleaned_up = anyio.Event()

    async def main(ctx: ProcessContext) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cleaned_up.set()

    handle = await rt.spawn("app:pkg:pub.os", main)
    await started.wait()
    assert handle.running
    handle.kill()
    with pytest.raises(ProcessKilled, match=r"app:pkg:pub\.os"):
        await handle.wait()
    assert cleaned_up.is_set()
    assert not handle.running
    assert bus_of(rt).slot(ProcessId.parse("app:pkg:pub.os")) is None


async def test_processes_still_running_at_exit_are_killed(home: Path) -> None:
    async with Runtime(home=home) as rt:
        handle = await rt.spawn("app:pkg:pub.os", forever)
        await anyio.wait_all_tasks_blocked()
    with pytest.raises(ProcessKilled):
        await handle.wait()
    with pytest.raises(RuntimeClosed):
        await rt.spawn("late:pkg:pub.os", forever)
    with pytest.raises(RuntimeClosed):
        rt.list_dbs()


async def test_spawn_refuses_a_running_id_and_a_stopped_runtime(rt: Runtime, home: Path) -> None:
    await rt.spawn("app:pkg:pub.os", forever)
    with pytest.raises(ValueError, match="already running"):
        await rt.spawn("app:pkg:pub.os", forever)
    with pytest.raises(RuntimeClosed):
        await Runtime(home=home / "never-entered").spawn("app:pkg:pub.os", forever)


async def test_a_failing_process_disturbs_neither_others_nor_kv(rt: Runtime) -> None:
    await rt.spawn(ECHO, echo, public=True)

    async def setup(ctx: ProcessContext) -> None:
        await (await kv.open(ctx, ctx.package_id, "db")).set(b"k", b"before")

    await run_as(rt, "writer:pkg:pub.os", setup)

    async def crash(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        await db.set(b"k", b"by the crasher")
        raise RuntimeError("crash")

    failing = await rt.spawn("crasher:pkg:pub.os", crash, request_capabilities=["kv:distro:sys"])
    with pytest.raises(RuntimeError, match="crash"):
        await failing.wait()

    async def after(ctx: ProcessContext) -> tuple[bytes, bytes]:
        response = await ctx.send_and_await_response(ECHO, b"still there?")
        return response.body, await kv.handle(ctx, ctx.package_id, "db").get(b"k")

    assert await run_as(rt, "writer:pkg:pub.os", after) == (
        b"echo:still there?",
        b"by the crasher",
    )


async def test_ctx_our_and_package_id(home: Path) -> None:
    async with Runtime(home=home, node="alice.os") as rt:

        async def body(ctx: ProcessContext) -> tuple[Address, PackageId, ProcessId]:
            return ctx.our, ctx.package_id, ctx.process_id

        our, package_id, process_id = await run_as(rt, "chat:my-app:pub.os", body, kv=False)
    assert our == Address.parse("alice.os@chat:my-app:pub.os")
    assert str(our) == "alice.os@chat:my-app:pub.os"
    assert package_id == PackageId(package_name="my-app", publisher_node="pub.os")
    assert process_id == ProcessId.parse("chat:my-app:pub.os")


# --- messaging -----------------------------------------------------------------


async def test_send_and_await_response_to_a_process_id_string_and_an_address(
    rt: Runtime,
) -> None:
    await rt.spawn(ECHO, echo, public=True)

    async def body(ctx: ProcessContext) -> list[Response]:
        by_string = await ctx.send_and_await_response(
            ECHO, b"one", blob=b"\x00blob", metadata="m1", timeout=2.0
        )
        by_id = await ctx.send_and_await_response(ProcessId.parse(ECHO), b"two")
        by_address = await ctx.send_and_await_response(address(ECHO), b"three", metadata="m3")
        return [by_string, by_id, by_address]

    one, two, three = await run_as(rt, "client:app:pub.os", body, kv=False)
    assert (one.body, one.blob, one.metadata) == (b"echo:one", b"\x00blob", "m1")
    assert (two.body, two.blob, two.metadata) == (b"echo:two", None, None)
    assert (three.body, three.metadata) == (b"echo:three", "m3")
    for response in (one, two, three):
        assert response.source == address(ECHO)
        assert response.target == address("client:app:pub.os")
    assert len({one.id, two.id, three.id}) == 3


async def test_receive_shows_the_request_as_sent_and_respond_answers_it(rt: Runtime) -> None:
    received: list[Request] = []

    async def server(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        assert isinstance(message, Request)
        received.append(message)
        await ctx.respond(message, b"pong", blob=b"b", metadata="answer")

    handle = await rt.spawn("server:svc:pub.os", server, public=True)

    async def body(ctx: ProcessContext) -> Response:
        return await ctx.send_and_await_response(
            "server:svc:pub.os", b"ping", blob=b"payload", metadata="meta", timeout=3.0
        )

    response = await run_as(rt, "client:app:pub.os", body, kv=False)
    await handle.wait()
    [request] = received
    assert request.source == address("client:app:pub.os")
    assert request.target == address("server:svc:pub.os")
    assert (request.body, request.blob, request.metadata) == (b"ping", b"payload", "meta")
    assert request.expects_response == 3.0
    assert request.capabilities == ()
    assert response.id == request.id
    assert (response.body, response.blob, response.metadata) == (b"pong", b"b", "answer")


async def test_send_with_expects_response_delivers_the_answer_to_receive(rt: Runtime) -> None:
    await rt.spawn(ECHO, echo, public=True)

    async def body(ctx: ProcessContext) -> tuple[list[int], list[Response]]:
        ids = [await ctx.send(ECHO, b"%d" % i, expects_response=5.0) for i in range(3)]
        # Without expects_response the answer is not wanted: it never arrives.
        await ctx.send(ECHO, b"nobody waits")
        answers = []
        for _ in range(3):
            message = await ctx.receive()
            assert isinstance(message, Response)
            answers.append(message)
        with anyio.move_on_after(0.05):
            extra = await ctx.receive()
            raise AssertionError(f"an unwanted answer arrived: {extra!r}")
        return ids, answers

    ids, answers = await run_as(rt, "client:app:pub.os", body, kv=False)
    assert [a.id for a in answers] == ids
    assert [a.body for a in answers] == [b"echo:0", b"echo:1", b"echo:2"]


async def test_send_error_offline(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[SendError]:
        errors = []
        for target in ("nobody:pkg:pub.os", address("kv:distro:sys", node="other.os")):
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response(target, b"hello?", timeout=1.0)
            errors.append(caught.value)
        with pytest.raises(SendError) as caught:
            await ctx.send("nobody:pkg:pub.os", b"hello?")
        errors.append(caught.value)
        return errors

    errors = await run_as(rt, "client:app:pub.os", body)
    assert [e.kind for e in errors] == [SendErrorKind.OFFLINE] * 3
    assert "nobody:pkg:pub.os" in str(errors[0])
    assert "other.os" in str(errors[1])


async def test_send_error_timeout_and_a_late_answer_is_dropped(rt: Runtime) -> None:
    answer_late = anyio.Event()

    async def silent(ctx: ProcessContext) -> None:
        first = await ctx.receive()
        assert isinstance(first, Request)
        await answer_late.wait()
        await ctx.respond(first, b"too late")
        second = await ctx.receive()
        assert isinstance(second, Request)
        await ctx.respond(second, b"in time")

    await rt.spawn("silent:svc:pub.os", silent, public=True)

    async def body(ctx: ProcessContext) -> tuple[SendError, float, bytes]:
        started = time.monotonic()
        with pytest.raises(SendError) as caught:
            await ctx.send_and_await_response("silent:svc:pub.os", b"first", timeout=0.05)
        elapsed = time.monotonic() - started
        answer_late.set()
        response = await ctx.send_and_await_response("silent:svc:pub.os", b"second")
        with anyio.move_on_after(0.05):
            stray = await ctx.receive()
            raise AssertionError(f"the late answer leaked into the mailbox: {stray!r}")
        return caught.value, elapsed, response.body

    error, elapsed, body_of_second = await run_as(rt, "client:app:pub.os", body, kv=False)
    assert error.kind is SendErrorKind.TIMEOUT
    assert 0.04 <= elapsed < 2.0
    assert body_of_second == b"in time"


async def test_send_error_forbidden_without_the_messaging_capability(rt: Runtime) -> None:
    await rt.spawn("private:svc:pub.os", echo)  # not public

    async def body(ctx: ProcessContext) -> list[SendError]:
        errors = []
        for target in ("kv:distro:sys", "private:svc:pub.os"):
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response(target, b"hello")
            errors.append(caught.value)
        with pytest.raises(SendError) as caught:
            await kv.open(ctx, ctx.package_id, "db")
        errors.append(caught.value)
        return errors

    errors = await run_as(rt, "client:app:pub.os", body, kv=False)
    assert [e.kind for e in errors] == [SendErrorKind.FORBIDDEN] * 3
    assert "request the kv:distro:sys capability" in str(errors[0])

    # With the capabilities requested at spawn, both are reachable.
    async def allowed(ctx: ProcessContext) -> bytes:
        await kv.open(ctx, ctx.package_id, "db")
        return (await ctx.send_and_await_response("private:svc:pub.os", b"hi")).body

    friend = await start(
        rt, "friend:app:pub.os", allowed, caps=["kv:distro:sys", "private:svc:pub.os"]
    )
    assert await friend.result() == b"echo:hi"


async def test_send_error_capability_not_held(rt: Runtime) -> None:
    received: list[Request] = []

    async def server(ctx: ProcessContext) -> None:
        while True:
            message = await ctx.receive()
            assert isinstance(message, Request)
            received.append(message)
            await ctx.respond(message, b"ok")

    await rt.spawn("server:svc:pub.os", server, public=True)
    package = PackageId.parse("app:pub.os")
    not_held = kv_capability(NODE, "read", package, "never-opened")

    async def body(ctx: ProcessContext) -> list[SendError | CapabilityNotHeld]:
        errors: list[SendError | CapabilityNotHeld] = []
        with pytest.raises(SendError) as caught:
            await ctx.send_and_await_response(
                "server:svc:pub.os", b"take this", capabilities=[not_held]
            )
        errors.append(caught.value)
        with pytest.raises(SendError) as caught:
            await ctx.send("server:svc:pub.os", b"take this", capabilities=[not_held])
        errors.append(caught.value)
        return errors

    errors = await run_as(rt, "client:app:pub.os", body)
    assert [e.kind for e in errors if isinstance(e, SendError)] == [
        SendErrorKind.CAPABILITY_NOT_HELD
    ] * 2
    assert "never-opened" in str(errors[0])
    assert received == []  # refused in the sender's task: nothing reached the server


async def test_respond_refuses_a_capability_not_held(rt: Runtime) -> None:
    outcome: list[BaseException] = []

    async def server(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        assert isinstance(message, Request)
        cap = kv_capability(NODE, "write", ctx.package_id, "not-mine")
        try:
            await ctx.respond(message, b"here", capabilities=[cap])
        except CapabilityNotHeld as exc:
            outcome.append(exc)
        await ctx.respond(message, b"without it")

    await rt.spawn("server:svc:pub.os", server, public=True)

    async def body(ctx: ProcessContext) -> Response:
        return await ctx.send_and_await_response("server:svc:pub.os", b"give")

    response = await run_as(rt, "client:app:pub.os", body, kv=False)
    assert response.body == b"without it"
    assert response.capabilities == ()
    assert len(outcome) == 1


# --- capabilities ------------------------------------------------------------

OWNER = "owner:alpha:pub.os"
READER = "reader:beta:pub.os"
ALPHA = PackageId.parse("alpha:pub.os")


def read_cap(db: str = "shared") -> Capability:
    return kv_capability(NODE, "read", ALPHA, db)


def write_cap(db: str = "shared") -> Capability:
    return kv_capability(NODE, "write", ALPHA, db)


async def test_an_attached_capability_is_saved_and_used_by_its_receiver(rt: Runtime) -> None:
    async def reader(ctx: ProcessContext) -> list[str]:
        log = []
        shared = kv.handle(ctx, ALPHA, "shared")
        message = await ctx.receive()
        assert isinstance(message, Request)
        assert message.capabilities == (read_cap(),)
        with pytest.raises(kv.NoReadCap):
            await shared.get(b"k")  # offered is not held: it must be saved first
        ctx.save_capabilities(message.capabilities)
        assert ctx.holds(read_cap())
        log.append((await shared.get(b"k")).decode())
        with pytest.raises(kv.NoWriteCap):
            await shared.set(b"k", b"overwritten")
        await ctx.respond(message, b"thanks")
        return log

    receiver = await start(rt, READER, reader)

    async def owner(ctx: ProcessContext) -> bytes:
        db = await kv.open(ctx, ctx.package_id, "shared")
        await db.set(b"k", b"v")
        assert ctx.holds(read_cap())
        response = await ctx.send_and_await_response(READER, b"a gift", capabilities=[read_cap()])
        return await db.get(b"k") + b"/" + response.body

    sender = await start(rt, OWNER, owner, caps=["kv:distro:sys", READER])
    assert await sender.result() == b"v/thanks"  # the reader's set changed nothing
    assert await receiver.result() == ["v"]


async def test_a_capability_never_offered_cannot_be_saved(rt: Runtime) -> None:
    async def create(ctx: ProcessContext) -> None:
        await (await kv.open(ctx, ctx.package_id, "shared")).set(b"k", b"v")

    await run_as(rt, OWNER, create)

    async def reader(ctx: ProcessContext) -> bytes:
        with pytest.raises(CapabilityNotHeld, match="no message offered"):
            ctx.save_capabilities([read_cap()])  # nothing offered yet
        message = await ctx.receive()
        assert isinstance(message, Request)
        assert message.capabilities == (read_cap(),)
        with pytest.raises(CapabilityNotHeld, match="no message offered"):
            ctx.save_capabilities([read_cap(), write_cap()])  # write was never offered
        assert not ctx.holds(read_cap())  # the refused call saved nothing at all
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, ALPHA, "shared").get(b"k")
        ctx.save_capabilities([read_cap()])
        assert not ctx.holds(write_cap())
        return await kv.handle(ctx, ALPHA, "shared").get(b"k")

    receiver = await start(rt, READER, reader)
    await anyio.wait_all_tasks_blocked()

    async def offer(ctx: ProcessContext) -> None:
        await ctx.send(READER, b"read only", capabilities=[read_cap()])

    await (await start(rt, OWNER, offer, caps=[READER])).result()
    assert await receiver.result() == b"v"


async def test_capabilities_persist_across_a_restart(home: Path) -> None:
    async with Runtime(home=home) as rt:

        async def owner(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, ctx.package_id, "shared")
            await db.set(b"k", b"v")
            await db.share("sharer:beta:pub.os")  # granted at once, reader not running
            await ctx.send_and_await_response(READER, b"gift", capabilities=[read_cap()])

        async def saver(ctx: ProcessContext) -> None:
            message = await ctx.receive()
            assert isinstance(message, Request)
            ctx.save_capabilities(message.capabilities)
            await ctx.respond(message, b"saved")

        receiver = await start(rt, READER, saver)
        await (await start(rt, OWNER, owner, caps=["kv:distro:sys", READER])).result()
        await receiver.result()
        await run_as(rt, "sharer:beta:pub.os", idle)  # granted kv messaging, nothing else

    async with Runtime(home=home) as rt:
        # No capability requested at spawn: the messaging grants persisted too.
        async def read_shared(ctx: ProcessContext) -> tuple[bytes, bool, bool]:
            db = kv.handle(ctx, ALPHA, "shared")
            with pytest.raises(kv.NoWriteCap):
                await db.set(b"k", b"x")
            return await db.get(b"k"), ctx.holds(read_cap()), ctx.holds(write_cap())

        async def owner_again(ctx: ProcessContext) -> bytes:
            db = kv.handle(ctx, ctx.package_id, "shared")  # no Open: reopened lazily
            await db.set(b"k2", b"v2")
            return await db.get(b"k")

        for process in (READER, "sharer:beta:pub.os"):
            assert await (await start(rt, process, read_shared, caps=[])).result() == (
                b"v",
                True,
                False,
            )
        assert await (await start(rt, OWNER, owner_again, caps=[])).result() == b"v"

        # A process never granted anything still holds nothing after the restart.
        async def stranger(ctx: ProcessContext) -> SendErrorKind:
            with pytest.raises(SendError) as caught:
                await kv.handle(ctx, ALPHA, "shared").get(b"k")
            return caught.value.kind

        assert await (await start(rt, "x:gamma:pub.os", stranger, caps=[])).result() == (
            SendErrorKind.FORBIDDEN
        )


# --- backpressure ----------------------------------------------------------------


async def test_a_slow_receiver_makes_senders_wait(home: Path) -> None:
    async with Runtime(home=home, mailbox_capacity=4) as rt:
        go = anyio.Event()
        sink_id = ProcessId.parse("sink:svc:pub.os")

        async def sink(ctx: ProcessContext) -> list[bytes]:
            await go.wait()
            bodies = []
            for _ in range(10):
                message = await ctx.receive()
                assert isinstance(message, Request)
                bodies.append(message.body)
            with anyio.move_on_after(0.05):
                extra = await ctx.receive()
                bodies.append(b"unexpected " + extra.body)
            return bodies

        sent: list[int] = []

        async def sender(ctx: ProcessContext) -> None:
            for i in range(10):
                await ctx.send(sink_id, b"%d" % i)
                sent.append(i)

        receiver = await start(rt, str(sink_id), sink, caps=[], public=True)
        producer = await start(rt, "producer:app:pub.os", sender, caps=[])
        await anyio.wait_all_tasks_blocked()
        slot = bus_of(rt).slot(sink_id)
        assert slot is not None
        assert sent == [0, 1, 2, 3]  # the fifth send waits for room
        assert len(slot.mailbox) == 4 == slot.mailbox.capacity

        # A request that cannot get in before its timeout fails, and is withdrawn.
        async def probe(ctx: ProcessContext) -> SendErrorKind:
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response(sink_id, b"probe", timeout=0.05)
            return caught.value.kind

        assert await (await start(rt, "probe:app:pub.os", probe, caps=[])).result() == (
            SendErrorKind.TIMEOUT
        )
        assert sent == [0, 1, 2, 3]
        assert len(slot.mailbox) == 4

        go.set()
        await producer.result()
        assert await receiver.result() == [b"%d" % i for i in range(10)]


# --- shutdown ----------------------------------------------------------------------


async def test_on_exit_kv_answers_what_is_queued_and_closes_every_db(home: Path) -> None:
    package = PackageId.parse("app:pub.os")
    fired = anyio.Event()
    accepted: dict[int, bytes] = {}  # request id -> key, for every Set the runtime accepted
    answered_ok: set[bytes] = set()
    errors: list[object] = []

    def set_body(key: bytes) -> bytes:
        return encode_request(KvRequest(package_id=package, db="main", action=Set(key=key)))

    async def sender(ctx: ProcessContext) -> None:
        await kv.open(ctx, package, "main")

        async def fire(first: int, count: int) -> None:
            # No await yields here while the kv mailbox has room: the whole
            # burst is queued before kv:distro:sys runs again.
            for i in range(first, first + count):
                key = b"key-%05d" % i
                rid = await ctx.send("kv:distro:sys", set_body(key), blob=key, expects_response=30)
                accepted[rid] = key

        async def collect(count: int | None) -> None:
            while count is None or count > 0:
                message = await ctx.receive()
                assert isinstance(message, Response)
                response = decode_response(message.body)
                if isinstance(response, OkResponse):
                    answered_ok.add(accepted[message.id])
                else:
                    errors.append(response)
                if count is not None:
                    count -= 1

        await fire(0, 300)
        await collect(300)
        # The first request of the second burst opens another db in a worker
        # thread, so kv:distro:sys is still busy with it when the runtime exits.
        await ctx.send(
            "kv:distro:sys",
            encode_request(KvRequest(package_id=package, db="other", action=Open())),
            expects_response=30,
        )
        await fire(300, 700)
        fired.set()
        await collect(None)

    async with Runtime(home=home) as rt:
        await rt.spawn("writer:app:pub.os", sender, request_capabilities=["kv:distro:sys"])
        await fired.wait()
    assert errors == []
    assert len(answered_ok) >= 300
    assert len(accepted) == 1000
    assert len(answered_ok) < len(accepted), "nothing was left queued at exit"

    # Every db is closed: plyvel can take the LevelDB locks at once.
    db_path = home / "kv" / "app:pub.os" / "main"
    stored = plyvel.DB(str(db_path))
    try:
        keys = {key for key, _ in stored.iterator()}
    finally:
        stored.close()
    assert answered_ok <= keys
    assert keys == set(accepted.values())  # queued requests were served, not dropped
    plyvel.DB(str(home / "kv" / "app:pub.os" / "other")).close()
    plyvel.DB(str(home / "kernel" / "capabilities")).close()

    # And the runtime reopens the home.
    async with Runtime(home=home) as rt:

        async def count(ctx: ProcessContext) -> int:
            db = kv.handle(ctx, package, "main")
            return sum([await db.exists(key) for key in accepted.values()])

        assert await run_as(rt, "writer:app:pub.os", count) == 1000


async def test_two_runtimes_on_two_homes_side_by_side(tmp_path: Path) -> None:
    async with (
        Runtime(home=tmp_path / "a", node="a.os") as a,
        Runtime(home=tmp_path / "b", node="b.os") as b,
    ):

        async def write(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, ctx.package_id, "db")
            await db.set(b"node", ctx.our.node.encode())

        await run_as(a, "app:pkg:pub.os", write)
        await run_as(b, "app:pkg:pub.os", write)
        await a.spawn(ECHO, echo, public=True)

        async def read(ctx: ProcessContext) -> tuple[bytes, SendErrorKind]:
            value = await kv.handle(ctx, ctx.package_id, "db").get(b"node")
            with pytest.raises(SendError) as caught:  # no network between them
                await ctx.send_and_await_response(address(ECHO, node="a.os"), b"hi")
            return value, caught.value.kind

        assert await run_as(b, "app:pkg:pub.os", read) == (b"b.os", SendErrorKind.OFFLINE)

        async def read_a(ctx: ProcessContext) -> tuple[bytes, bytes]:
            value = await kv.handle(ctx, ctx.package_id, "db").get(b"node")
            return value, (await ctx.send_and_await_response(ECHO, b"hi")).body

        assert await run_as(a, "app:pkg:pub.os", read_a) == (b"a.os", b"echo:hi")
    for name in ("a", "b"):
        assert (tmp_path / name / "kv" / "pkg:pub.os" / "db" / "CURRENT").is_file()


async def test_one_home_serves_one_runtime_at_a_time(home: Path) -> None:
    async with Runtime(home=home) as first:
        with pytest.raises(HomeInUse, match="in use by another runtime"):
            async with Runtime(home=home):
                raise AssertionError("a second runtime entered a home in use")

        async def still_works(ctx: ProcessContext) -> bytes:
            db = await kv.open(ctx, ctx.package_id, "db")
            await db.set(b"k", b"v")
            return await db.get(b"k")

        assert await run_as(first, "app:pkg:pub.os", still_works) == b"v"
    async with Runtime(home=home):  # free again once the first one exited
        pass


async def test_config_limits_reach_the_kv_process(home: Path) -> None:
    async with Runtime(home=home, config=KvConfig(max_value_bytes=8)) as rt:

        async def body(ctx: ProcessContext) -> bool:
            db = await kv.open(ctx, ctx.package_id, "db")
            with pytest.raises(kv.ValueTooLarge, match="9 bytes exceeds the limit of 8"):
                await db.set(b"k", b"123456789")
            await db.set(b"k", b"12345678")
            return await db.exists(b"k")

        assert await run_as(rt, "app:pkg:pub.os", body)
