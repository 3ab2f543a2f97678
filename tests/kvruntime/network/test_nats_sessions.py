"""Sessions between runtimes on a real nats-server: one signed handshake, then MACs.

What the handshake must withstand: a replayed HELLO (also to a peer that
restarted and forgot it saw it), a HELLO signed with another node's key, a
replayed session frame; and what it must survive: a peer that restarts
(new session, the request in flight sent again), a peer that crashes (its
requests in flight fail at once, not at their timeouts).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import nats
import nats.aio.msg
import pytest

from kvruntime import (
    ProcessContext,
    Request,
    Response,
    Runtime,
    SendError,
    SendErrorKind,
    node_public_key,
)
from kvruntime.kernel.envelope import Envelope, Kind, seal, unpack_frame
from kvruntime.kernel.node_key import load_node_key
from kvruntime.kernel.session import start_handshake
from tests.conftest import run_as
from tests.internals import transport_of

from .conftest import NatsServer
from .test_nats_transport import ECHO, echo, homes, node, start_node

pytestmark = pytest.mark.anyio

__all__ = ["homes"]  # the fixture, shared with test_nats_transport


class Wire:
    """Every frame published to bob's inbox, as a NATS user who may listen sees it."""

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, str]] = []
        self.welcomes: list[bytes] = []

    async def capture(self, msg: nats.aio.msg.Msg) -> None:
        self.frames.append((msg.data, msg.reply))

    async def welcome(self, msg: nats.aio.msg.Msg) -> None:
        self.welcomes.append(msg.data)

    def forms(self) -> list[str]:
        return ["signed" if len(unpack_frame(f)) == 3 else "mac" for f, _ in self.frames]


async def ask(rt: Runtime, body: bytes, timeout: float = 10) -> Response:
    """alice's (or whoever's) client asks bob's echo."""

    async def asking(ctx: ProcessContext) -> Response:
        return await ctx.send_and_await_response(ECHO, body, timeout=timeout)

    answer: Response = await run_as(rt, "client:app:dev.os", asking, kv=False)
    return answer


async def test_one_handshake_then_every_frame_is_maced(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    wire = Wire()
    spy = await nats.connect(nats_server.url)
    try:
        await spy.subscribe("kvr.in.bob_os", cb=wire.capture)
        await spy.flush()
        async with (
            node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
            node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
        ):
            await bob.spawn("echo:app:dev.os", echo, public=True)

            async def many(ctx: ProcessContext) -> list[bytes]:
                answers = []
                for i in range(20):
                    answer = await ctx.send_and_await_response(ECHO, b"%d" % i, timeout=10)
                    answers.append(answer.body)
                return answers

            with anyio.fail_after(30):
                answers = await run_as(alice, "client:app:dev.os", many, kv=False)
                await spy.flush()
            made = (transport_of(alice).sessions_made, transport_of(bob).sessions_made)
    finally:
        await spy.close()
    assert answers == [b"%d" % i for i in range(20)]
    assert made == (1, 1)
    assert wire.forms() == ["signed"] + ["mac"] * 20  # the HELLO, then the requests


async def test_replayed_hello_and_session_frames_are_refused(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    wire = Wire()
    got: list[bytes] = []

    async def counting_echo(ctx: ProcessContext) -> None:
        while True:
            message = await ctx.receive()
            if isinstance(message, Request):
                got.append(message.body)
                await ctx.respond(message, message.body)

    spy = await nats.connect(nats_server.url)
    try:
        await spy.subscribe("kvr.in.bob_os", cb=wire.capture)
        await spy.subscribe("spy.welcome", cb=wire.welcome)
        await spy.flush()
        async with (
            node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
            node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
        ):
            await bob.spawn("echo:app:dev.os", counting_echo, public=True)
            with anyio.fail_after(30):
                await ask(alice, b"pay 10")
                await spy.flush()
                hello, request = wire.frames[0][0], wire.frames[1][0]
                await spy.publish("kvr.in.bob_os", hello, reply="spy.welcome")
                await spy.publish("kvr.in.bob_os", request)
                await spy.publish("kvr.in.bob_os", request, reply="spy.welcome")
                await spy.flush()
                await ask(alice, b"pay 20")  # bob read the copies before this
            dropped = bob.network_dropped()
    finally:
        await spy.close()
    assert dropped == {"replay": 3}
    assert got == [b"pay 10", b"pay 20"]
    assert wire.welcomes == []


async def test_a_hello_signed_with_another_peers_key_is_not_believed(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    bob_peers = {"alice.os": homes["alice.os"], "carol.os": homes["carol.os"]}
    async with (
        node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob,
        # carol, a peer bob knows, claims to be alice, signing with carol's key
        node(homes["carol.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as carol,
    ):
        await bob.spawn("echo:app:dev.os", echo, public=True)
        with anyio.fail_after(20), pytest.raises(SendError) as caught:
            await ask(carol, b"I am alice", timeout=1)
        dropped = bob.network_dropped()
        made = transport_of(bob).sessions_made
    assert caught.value.kind is SendErrorKind.TIMEOUT  # dropped, never answered
    assert set(dropped) == {"bad signature"}  # its HELLO (and the HELLO sent again)
    assert made == 0


async def test_a_restarted_peer_agrees_a_new_session_and_the_request_is_served(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    bob_peers = {"alice.os": homes["alice.os"]}
    async with node(
        homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}
    ) as alice:
        async with node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob:
            await bob.spawn("echo:app:dev.os", echo, public=True)
            with anyio.fail_after(20):
                first = await ask(alice, b"before")
        async with node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob:
            await bob.spawn("echo:app:dev.os", echo, public=True)
            with anyio.fail_after(20):
                second = await ask(alice, b"after")  # on the old session: REKEY, then again
                third = await ask(alice, b"and on")
            dropped = bob.network_dropped()
        made = transport_of(alice).sessions_made
    assert [first.body, second.body, third.body] == [b"before", b"after", b"and on"]
    assert dropped == {"unknown session": 1}
    assert made == 2


async def test_a_hello_replayed_to_a_restarted_peer_gives_nothing_and_breaks_nothing(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    wire = Wire()
    bob_peers = {"alice.os": homes["alice.os"]}
    spy = await nats.connect(nats_server.url)
    try:
        await spy.subscribe("kvr.in.bob_os", cb=wire.capture)
        await spy.subscribe("spy.welcome", cb=wire.welcome)
        await spy.flush()
        async with node(
            homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}
        ) as alice:
            async with node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob:
                await bob.spawn("echo:app:dev.os", echo, public=True)
                with anyio.fail_after(20):
                    await ask(alice, b"before")
            await spy.flush()
            hello = wire.frames[0][0]
            async with node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob:
                await bob.spawn("echo:app:dev.os", echo, public=True)
                with anyio.fail_after(20):
                    # The new bob has not seen it: it answers, and holds a session
                    # under alice's sid whose keys nobody but bob has.
                    while not wire.welcomes:  # again if NATS lost one (UNREACHED_RETRY)
                        await spy.publish("kvr.in.bob_os", hello, reply="spy.welcome")
                        with anyio.move_on_after(1):
                            while not wire.welcomes:
                                await spy.flush()
                                await anyio.sleep(0.01)
                    after = await ask(alice, b"after")  # bad MAC there: REKEY, then again
                dropped = bob.network_dropped()
            made = transport_of(alice).sessions_made
    finally:
        await spy.close()
    assert after.body == b"after"
    assert dropped.get("bad mac") == 1
    assert set(dropped) <= {"bad mac", "replay"}  # replay: a copy that NATS did not lose
    assert made == 2


async def test_a_crashed_node_fails_the_requests_in_flight_at_once(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    alice_key = node_public_key(homes["alice.os"])
    bob_process = start_node(homes["bob.os"], "bob.os", nats_server, {"alice.os": alice_key})
    try:
        assert bob_process.stdout is not None
        with anyio.fail_after(30):
            line = await anyio.to_thread.run_sync(bob_process.stdout.readline)
        assert line == b"ready\n"
        async with node(
            homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}
        ) as alice:
            errors: list[SendError] = []

            async def held(ctx: ProcessContext) -> None:
                with pytest.raises(SendError) as caught:
                    await ctx.send_and_await_response(ECHO, b"hold", timeout=60)
                errors.append(caught.value)

            with anyio.fail_after(20):  # far below the request's 60 s
                handle = await alice.spawn("client:app:dev.os", held)
                line = await anyio.to_thread.run_sync(bob_process.stdout.readline)
                assert line == b"held\n"
                os.kill(bob_process.pid, signal.SIGKILL)  # no goodbye: it just vanishes
                await handle.wait()
    finally:
        if bob_process.poll() is None:
            bob_process.kill()
        bob_process.wait()
        assert bob_process.stdin is not None
        bob_process.stdin.close()
        assert bob_process.stdout is not None
        bob_process.stdout.close()
    assert [error.kind for error in errors] == [SendErrorKind.OFFLINE]
    assert "went away" in errors[0].detail


async def test_a_peer_that_reuses_another_nodes_session_id_cuts_nobody_off(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    wire = Wire()
    bob_peers = {"alice.os": homes["alice.os"], "carol.os": homes["carol.os"]}
    spy = await nats.connect(nats_server.url)
    try:
        await spy.subscribe("kvr.in.bob_os", cb=wire.capture)
        await spy.subscribe("spy.welcome", cb=wire.welcome)
        await spy.flush()
        async with (
            node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob,
            node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
        ):
            await bob.spawn("echo:app:dev.os", echo, public=True)
            with anyio.fail_after(30):
                await ask(alice, b"before")
                await spy.flush()
                alices_sid = unpack_frame(wire.frames[1][0])[1]  # her request's session
                # carol, a peer bob believes, opens a session under alice's sid
                carols = start_handshake("carol.os", "bob.os")
                hello = Envelope(
                    kind=Kind.HELLO,
                    from_node="carol.os",
                    to_node="bob.os",
                    seq=time.time_ns(),
                    sent_ms=time.time_ns() // 1_000_000,
                    payload=[alices_sid, carols.hello[1]],
                )
                frame = seal(hello, load_node_key(homes["carol.os"]))
                await spy.publish("kvr.in.bob_os", frame, reply="spy.welcome")
                await spy.flush()
                after = await ask(alice, b"after")
            dropped = bob.network_dropped()
    finally:
        await spy.close()
    assert after.body == b"after"
    assert dropped == {"bad handshake": 1}
    assert wire.welcomes == []


async def test_fire_and_forget_to_a_restarted_peer_rekeys_for_the_next(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    bob_peers = {"alice.os": homes["alice.os"]}
    sunk: list[bytes] = []
    arrived = anyio.Event()

    async def sink(ctx: ProcessContext) -> None:
        while True:
            message = await ctx.receive()
            sunk.append(message.body)
            arrived.set()

    async def fire(rt: Runtime, body: bytes) -> None:
        async def firing(ctx: ProcessContext) -> None:
            await ctx.send("bob.os@sink:app:dev.os", body)

        await run_as(rt, "client:app:dev.os", firing, kv=False)

    async with node(
        homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}
    ) as alice:
        async with node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob:
            await bob.spawn("sink:app:dev.os", sink, public=True)
            with anyio.fail_after(20):
                await fire(alice, b"first")
                await arrived.wait()
        link = transport_of(alice)._links["bob.os"]
        async with node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob:
            sunk.clear()
            arrived = anyio.Event()
            await bob.spawn("sink:app:dev.os", sink, public=True)
            with anyio.fail_after(20):
                while link.session is not None:  # alice forgets it on bob's REKEY
                    # On the session bob forgot: lost, and he says REKEY. (Again if
                    # NATS lost it: see nats_transport.UNREACHED_RETRY.)
                    await fire(alice, b"lost")
                    with anyio.move_on_after(1):
                        while link.session is not None:  # noqa: ASYNC110 (a field)
                            await anyio.sleep(0.01)
                await fire(alice, b"arrives")
                await arrived.wait()
            dropped = bob.network_dropped()
    assert sunk == [b"arrives"]
    assert set(dropped) == {"unknown session"}
