"""Runtimes on one real nats-server talk across nodes as processes do locally.

Every envelope is signed by its node's key; what does not verify, repeats,
or is not an envelope at all is counted and dropped. One node runs in its
own OS process (``bob_node.py``), as it would on another host.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import msgpack
import nacl.signing
import nats
import nats.aio.msg
import pytest

from kvruntime import (
    Address,
    ProcessContext,
    Request,
    Response,
    Runtime,
    SendError,
    SendErrorKind,
    node_public_key,
)
from kvruntime.kernel.envelope import VERSION, Envelope, Kind, seal
from protocol.codec import decode_response, encode_request
from protocol.ids import PackageId
from protocol.messages import ErrResponse, Get, KvRequest, RemoteNotAllowed
from tests.conftest import run_as

from .conftest import NatsServer

pytestmark = pytest.mark.anyio

ECHO = "bob.os@echo:app:dev.os"
PKG = PackageId.parse("app:dev.os")
REPO = Path(__file__).resolve().parents[3]


def kv_get() -> bytes:
    return encode_request(KvRequest(package_id=PKG, db="db", action=Get(key=b"k")))


@asynccontextmanager
async def node(
    home: Path, name: str, server: NatsServer, peers: dict[str, Path]
) -> AsyncIterator[Runtime]:
    """A runtime ``name`` on ``home`` whose peers are the nodes of those homes."""
    keys = {peer: node_public_key(peer_home) for peer, peer_home in peers.items()}
    async with Runtime(
        home=home, node=name, network=server.url, peers=keys, storage="memory"
    ) as rt:
        yield rt


async def echo(ctx: ProcessContext) -> None:
    """Answers each request with its body."""
    while True:
        message = await ctx.receive()
        if isinstance(message, Request):
            await ctx.respond(message, message.body)


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, Path]:
    return {name: tmp_path / name for name in ("alice.os", "bob.os", "carol.os", "mallory")}


async def test_request_and_response_between_two_runtimes(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    bob_peers = {"alice.os": homes["alice.os"]}
    async with (
        node(homes["bob.os"], "bob.os", nats_server, bob_peers) as bob,
        node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
    ):
        await bob.spawn("echo:app:dev.os", echo, public=True)

        async def ask(ctx: ProcessContext) -> list[Response]:
            by_text = await ctx.send_and_await_response(ECHO, b"hello", timeout=10)
            by_address = await ctx.send_and_await_response(
                Address.parse(ECHO), b"again", blob=b"\x00blob", metadata="m", timeout=10
            )
            return [by_text, by_address]

        with anyio.fail_after(30):
            first, second = await run_as(alice, "client:app:dev.os", ask, kv=False)
    assert (first.body, first.source, first.target.node) == (
        b"hello",
        Address.parse(ECHO),
        "alice.os",
    )
    assert (second.body, second.blob, second.metadata) == (b"again", None, None)


async def test_send_with_expects_response_and_fire_and_forget(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    async with (
        node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
        node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
    ):
        seen: list[bytes] = []
        arrived = anyio.Event()

        async def sink(ctx: ProcessContext) -> None:
            while True:
                message = await ctx.receive()
                seen.append(message.body)
                if len(seen) == 3:
                    arrived.set()

        await bob.spawn("sink:app:dev.os", sink, public=True)
        await bob.spawn("echo:app:dev.os", echo, public=True)

        async def talk(ctx: ProcessContext) -> Response:
            for body in (b"one", b"two", b"three"):
                await ctx.send("bob.os@sink:app:dev.os", body)
            await ctx.send(ECHO, b"later", expects_response=10)
            answer = await ctx.receive()
            assert isinstance(answer, Response)
            return answer

        with anyio.fail_after(30):
            answer = await run_as(alice, "client:app:dev.os", talk, kv=False)
            await arrived.wait()
    assert answer.body == b"later"
    assert seen == [b"one", b"two", b"three"]  # one sender's requests arrive in order


async def test_a_remote_kv_request_is_answered_remote_not_allowed(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    async with (
        node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}),
        node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
    ):

        async def ask(ctx: ProcessContext) -> Response:
            return await ctx.send_and_await_response("bob.os@kv:distro:sys", kv_get(), timeout=10)

        with anyio.fail_after(30):
            response = await run_as(alice, "client:app:dev.os", ask, kv=False)
    assert decode_response(response.body) == ErrResponse(error=RemoteNotAllowed())


async def test_a_private_remote_process_refuses_at_once_with_forbidden(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    async with (
        node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
        node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
    ):
        await bob.spawn("echo:app:dev.os", echo)  # not public; alice holds nothing of it

        async def ask(ctx: ProcessContext) -> SendError:
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response(ECHO, b"let me in", timeout=30)
            return caught.value

        with anyio.fail_after(20):
            error = await run_as(alice, "client:app:dev.os", ask, kv=False)
    assert error.kind is SendErrorKind.FORBIDDEN


async def test_unknown_and_unreachable_nodes_are_send_errors(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    peers = {"bob.os": homes["bob.os"], "carol.os": homes["carol.os"]}  # carol never runs
    async with node(homes["alice.os"], "alice.os", nats_server, peers) as alice:

        async def ask(ctx: ProcessContext) -> list[SendError]:
            errors = []
            for target in ("dave.os@echo:app:dev.os", "carol.os@echo:app:dev.os"):
                with pytest.raises(SendError) as caught:
                    await ctx.send_and_await_response(target, b"anyone?", timeout=30)
                errors.append(caught.value)
            with pytest.raises(SendError) as caught:
                await ctx.send("dave.os@echo:app:dev.os", b"fire")
            errors.append(caught.value)
            return errors

        with anyio.fail_after(20):  # no responders: well before the 30 s timeout
            unknown, unreachable, unknown_send = await run_as(
                alice, "client:app:dev.os", ask, kv=False
            )
    assert unknown.kind is SendErrorKind.OFFLINE
    assert "unknown node" in unknown.detail
    assert unknown_send.kind is SendErrorKind.OFFLINE
    assert "unknown node" in unknown_send.detail
    assert unreachable.kind is SendErrorKind.OFFLINE
    assert "not reachable" in unreachable.detail


async def test_without_network_another_node_is_offline(tmp_path: Path) -> None:
    async with Runtime(home=tmp_path / "solo", node="alice.os", storage="memory") as alice:

        async def ask(ctx: ProcessContext) -> SendError:
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response(ECHO, b"hi", timeout=5)
            return caught.value

        error = await run_as(alice, "client:app:dev.os", ask, kv=False)
    assert error.kind is SendErrorKind.OFFLINE


async def test_an_impostor_with_its_own_key_is_not_believed(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    got: list[bytes] = []

    async def counting_echo(ctx: ProcessContext) -> None:
        while True:
            message = await ctx.receive()
            if isinstance(message, Request):
                got.append(message.body)
                await ctx.respond(message, message.body)

    async with (
        node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
        # mallory claims alice's name, signing with mallory's own key
        node(homes["mallory"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as mallory,
    ):
        await bob.spawn("echo:app:dev.os", counting_echo, public=True)

        async def ask(ctx: ProcessContext) -> SendError:
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response(ECHO, b"I am alice", timeout=1)
            return caught.value

        with anyio.fail_after(20):
            error = await run_as(mallory, "client:app:dev.os", ask, kv=False)
        dropped = bob.network_dropped()
    assert error.kind is SendErrorKind.TIMEOUT  # dropped, not answered
    assert set(dropped) == {"bad signature"}  # its HELLO (and the HELLO sent again)
    assert got == []


async def test_a_replayed_envelope_and_garbage_are_dropped(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    """Replays, garbage, another version, a forged MAC and an unknown peer's
    signed HELLO, published by a NATS user: counted, dropped, and bob serves on."""
    got: list[bytes] = []

    async def sink(ctx: ProcessContext) -> None:
        while True:
            message = await ctx.receive()
            got.append(message.body)
            if isinstance(message, Request) and message.expects_response is not None:
                await ctx.respond(message, b"ok")

    captured: list[bytes] = []
    seen_on_the_wire = anyio.Event()

    async def capture(msg: nats.aio.msg.Msg) -> None:
        captured.append(msg.data)
        if len(captured) == 2:  # alice's signed HELLO, then her request in the session
            seen_on_the_wire.set()

    spy = await nats.connect(nats_server.url)  # any NATS user may listen and publish
    try:
        await spy.subscribe("kvr.in.bob_os", cb=capture)
        await spy.flush()
        async with (
            node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
            node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
        ):
            await bob.spawn("sink:app:dev.os", sink, public=True)

            async def pay(ctx: ProcessContext) -> Response:
                return await ctx.send_and_await_response(
                    "bob.os@sink:app:dev.os", b"pay 10", timeout=10
                )

            with anyio.fail_after(30):
                await run_as(alice, "client:app:dev.os", pay, kv=False)
                await seen_on_the_wire.wait()
                await spy.publish("kvr.in.bob_os", captured[0])  # the same frame again
                await spy.publish("kvr.in.bob_os", b"\x93\x01garbage")
                await spy.publish("kvr.in.bob_os", b"\xc1")
                await spy.publish("kvr.in.bob_os", b"")  # a liveness probe: ignored
                version, sid, body, tag = msgpack.unpackb(captured[1])
                await spy.publish("kvr.in.bob_os", msgpack.packb([version + 1, sid, body, tag]))
                forged = bytes([tag[0] ^ 1]) + tag[1:]
                await spy.publish("kvr.in.bob_os", msgpack.packb([version, sid, body, forged]))
                stranger = Envelope(
                    kind=Kind.HELLO, from_node="carol.os", to_node="bob.os", seq=1,
                    sent_ms=0, payload=[b"s" * 16, b"k" * 32],
                )  # fmt: skip
                key = nacl.signing.SigningKey.generate()
                await spy.publish("kvr.in.bob_os", seal(stranger, key))
                await spy.flush()
                # bob still serves alice after all that
                await run_as(alice, "client:app:dev.os", pay, kv=False)
                # and has counted the six it drops (its connection may read them after alice's
                # request: under load the order across two publishers is not fixed)
                while sum(bob.network_dropped().values()) < 6:  # noqa: ASYNC110 (a counter)
                    await anyio.sleep(0.01)
            dropped = bob.network_dropped()
    finally:
        await spy.close()
    assert version == VERSION
    assert dropped == {
        "replay": 1,
        "garbage": 2,
        "version": 1,
        "bad mac": 1,
        "unknown peer": 1,
    }
    assert got == [b"pay 10", b"pay 10"]  # the two real ones, not the copy


def start_node(
    home: Path, name: str, server: NatsServer, peers: dict[str, str]
) -> subprocess.Popen[bytes]:
    """``bob_node.py`` as a node ``name`` in its own OS process (it prints ``ready``)."""
    pairs = [f"{peer}={key}" for peer, key in peers.items()]
    command = [sys.executable, "-m", "tests.kvruntime.network.bob_node", str(home), name]
    return subprocess.Popen(
        [*command, server.url, *pairs], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )


async def test_a_node_in_another_os_process(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    bob_key = node_public_key(homes["bob.os"])
    alice_key = node_public_key(homes["alice.os"])
    bob_process = start_node(homes["bob.os"], "bob.os", nats_server, {"alice.os": alice_key})
    try:
        assert bob_process.stdout is not None
        with anyio.fail_after(30):
            line = await anyio.to_thread.run_sync(bob_process.stdout.readline)
        assert line == b"ready\n"
        async with Runtime(
            home=homes["alice.os"],
            node="alice.os",
            network=nats_server.url,
            peers={"bob.os": bob_key},
            storage="memory",
        ) as alice:
            back = anyio.Event()
            sunk: list[bytes] = []

            async def sink(ctx: ProcessContext) -> None:
                message = await ctx.receive()
                sunk.append(message.body)
                back.set()

            await alice.spawn("sink:app:dev.os", sink, public=True)

            async def talk(ctx: ProcessContext) -> list[Response]:
                echoed = await ctx.send_and_await_response(ECHO, b"over there", timeout=10)
                kv = await ctx.send_and_await_response("bob.os@kv:distro:sys", kv_get(), timeout=10)
                await ctx.send(ECHO, b"ping")  # bob answers with a request to our sink
                return [echoed, kv]

            with anyio.fail_after(30):
                echoed, kv = await run_as(alice, "client:app:dev.os", talk, kv=False)
                await back.wait()
    finally:
        assert bob_process.stdin is not None
        bob_process.stdin.close()
        try:
            bob_process.wait(timeout=10)
        finally:
            if bob_process.poll() is None:
                bob_process.kill()
                bob_process.wait()
            assert bob_process.stdout is not None
            bob_process.stdout.close()
    assert echoed.body == b"over there"
    assert decode_response(kv.body) == ErrResponse(error=RemoteNotAllowed())
    assert sunk == [b"got ping"]
    assert bob_process.returncode == 0


async def test_a_node_that_shuts_down_fails_the_requests_it_holds(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    holding = anyio.Event()

    async def hold(ctx: ProcessContext) -> None:
        await ctx.receive()  # and never answers
        holding.set()
        await anyio.sleep_forever()

    async with node(
        homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}
    ) as alice:
        errors: list[SendError] = []

        async def ask(ctx: ProcessContext) -> None:
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response("bob.os@hold:app:dev.os", b"x", timeout=60)
            errors.append(caught.value)

        with anyio.fail_after(20):  # far below the request's 60 s: failed, not timed out
            async with node(
                homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}
            ) as bob:
                await bob.spawn("hold:app:dev.os", hold, public=True)
                handle = await alice.spawn("client:app:dev.os", ask)
                await holding.wait()
            await handle.wait()
    assert [error.kind for error in errors] == [SendErrorKind.OFFLINE]
    assert "bob.os" in errors[0].detail


async def test_a_runtime_that_reaches_no_nats_server_fails_to_start_with_the_reason(
    tmp_path: Path,
) -> None:
    from .conftest import free_port

    url = f"nats://127.0.0.1:{free_port()}"  # nobody listens there
    refused = "could be reached: ConnectionRefused"
    with anyio.fail_after(20), pytest.raises(ConnectionError, match=refused):
        async with Runtime(home=tmp_path / "a", node="alice.os", network=url, storage="memory"):
            pass


async def test_one_senders_mixed_sends_arrive_in_the_order_sent(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    seen: list[bytes] = []

    async def log(ctx: ProcessContext) -> None:
        while True:
            message = await ctx.receive()
            if isinstance(message, Request):
                seen.append(message.body)
                if message.expects_response is not None:
                    await ctx.respond(message, b"ok")

    async with (
        node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
        node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
    ):
        await bob.spawn("log:app:dev.os", log, public=True)
        target = "bob.os@log:app:dev.os"
        sent: list[bytes] = []

        async def mixed(ctx: ProcessContext) -> None:
            for i in range(200):  # queued sends, and awaited ones that may go at once
                body = b"%d" % i
                sent.append(body)
                if i % 3 == 2:
                    await ctx.send_and_await_response(target, body, timeout=10)
                else:
                    await ctx.send(target, body)
            await ctx.send_and_await_response(target, b"end", timeout=10)

        with anyio.fail_after(30):
            await run_as(alice, "client:app:dev.os", mixed, kv=False)
    assert seen == [*sent, b"end"]
