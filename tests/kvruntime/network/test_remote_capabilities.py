"""Capabilities between nodes, with the other node in its own OS process on a NATS cluster.

A capability means something on the node that issued it: a non-public
process takes another node's request only from an address granted its
messaging capability there (``share_capabilities`` to another node's
process, or a capability attached to a message to it), and a capability
attached by another node is believed only when that node issued it (its
signed envelope vouches) or this node's store says the sender holds it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from kvruntime import (
    Address,
    Capability,
    CapabilityNotHeld,
    ProcessContext,
    Request,
    Runtime,
    SendError,
    SendErrorKind,
    node_public_key,
)
from kvruntime.kernel.bus import messaging_capability
from tests.conftest import run_as
from tests.internals import caps_of

from .conftest import NatsCluster

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[3]
VAULT = "bob.os@vault:app:dev.os"
KEEPER = "bob.os@keeper:app:dev.os"
CALLER = "bob.os@caller:app:dev.os"
DIARY = "alice.os@diary:app:dev.os"


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, Path]:
    return {name: tmp_path / name for name in ("alice.os", "bob.os")}


@pytest.fixture
def bob(nats_cluster: NatsCluster, homes: dict[str, Path]) -> Iterator[None]:
    """``caps_node.py`` as bob.os in its own OS process, on the cluster's last server."""
    alice_key = node_public_key(homes["alice.os"])
    command = [sys.executable, "-m", "tests.kvruntime.network.caps_node", str(homes["bob.os"])]
    process = subprocess.Popen(
        [*command, "bob.os", nats_cluster.servers[2].url, f"alice.os={alice_key}"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == b"ready\n"
        yield
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
    assert process.returncode == 0


def alice(cluster: NatsCluster, homes: dict[str, Path]) -> Runtime:
    """alice.os in this process, on the cluster's first server (bob is on another)."""
    return Runtime(
        home=homes["alice.os"],
        node="alice.os",
        network=cluster.servers[0].url,
        peers={"bob.os": node_public_key(homes["bob.os"])},
        storage="memory",
    )


async def ask(ctx: ProcessContext, target: str, body: bytes, **kwargs: object) -> bytes | str:
    """The answer's body, or the kind of the SendError."""
    try:
        answer = await ctx.send_and_await_response(target, body, timeout=10, **kwargs)  # type: ignore[arg-type]
    except SendError as exc:
        return exc.kind.value
    return answer.body


async def test_a_private_process_takes_another_nodes_request_only_from_a_granted_address(
    nats_cluster: NatsCluster, homes: dict[str, Path], bob: None
) -> None:
    async with alice(nats_cluster, homes) as rt:

        async def client(ctx: ProcessContext) -> list[bytes | str]:
            return [
                await ask(ctx, VAULT, b"let me in"),
                await ask(ctx, KEEPER, b"grant"),  # public: any verified node's request
                await ask(ctx, VAULT, b"now?"),
            ]

        async def other(ctx: ProcessContext) -> bytes | str:
            return await ask(ctx, VAULT, b"and me?")

        with anyio.fail_after(60):
            asked = await run_as(rt, "client:app:dev.os", client, kv=False)
            stranger = await run_as(rt, "other:app:dev.os", other, kv=False)
    assert asked == [SendErrorKind.FORBIDDEN.value, b"done", b"vault: now?"]
    assert stranger == SendErrorKind.FORBIDDEN.value  # granted to client's address only


async def test_a_capability_attached_by_its_issuing_node_can_be_saved_and_used_there(
    nats_cluster: NatsCluster, homes: dict[str, Path], bob: None
) -> None:
    async with alice(nats_cluster, homes) as rt:
        used: list[bytes | str] = []
        done = anyio.Event()

        async def inbox(ctx: ProcessContext) -> None:
            try:
                gift = await ctx.receive()
                assert isinstance(gift, Request)
                used.append(await ask(ctx, VAULT, b"before saving"))
                ctx.save_capabilities(gift.capabilities)
                used.append(str(gift.capabilities[0].issuer))
                used.append(await ask(ctx, VAULT, b"from the inbox"))
            finally:
                done.set()

        await rt.spawn("inbox:app:dev.os", inbox, public=True)

        async def client(ctx: ProcessContext) -> bytes | str:
            return await ask(ctx, KEEPER, b"gift")

        with anyio.fail_after(60):
            asked = await run_as(rt, "client:app:dev.os", client, kv=False)
            await done.wait()
    assert asked == b"done"
    # Bob's kernel granted the vault to alice's inbox when the keeper sent it:
    # it may call before saving; saving makes it its own here, to pass on.
    assert used == [b"vault: before saving", VAULT, b"vault: from the inbox"]


async def test_a_capability_this_node_issued_is_granted_to_the_remote_process_it_is_sent_to(
    nats_cluster: NatsCluster, homes: dict[str, Path], bob: None
) -> None:
    async with alice(nats_cluster, homes) as rt:

        async def diary(ctx: ProcessContext) -> None:
            while True:
                message = await ctx.receive()
                if isinstance(message, Request):
                    await ctx.respond(message, b"diary: " + message.body)

        await rt.spawn("diary:app:dev.os", diary)  # not public

        async def owner(ctx: ProcessContext) -> list[bytes | str]:
            (cap,) = ctx.capabilities()  # the diary's messaging capability
            assert str(cap.issuer) == DIARY
            return [
                await ask(ctx, CALLER, DIARY.encode()),  # bob's caller holds nothing here
                await ask(ctx, CALLER, DIARY.encode(), capabilities=[cap]),
            ]

        result: list[list[bytes | str]] = []

        async def main(ctx: ProcessContext) -> None:
            result.append(await owner(ctx))

        with anyio.fail_after(60):
            handle = await rt.spawn(
                "owner:app:dev.os", main, request_capabilities=["diary:app:dev.os"]
            )
            await handle.wait()
    # bob's caller is refused until the owner's request carried the diary's
    # capability: alice granted it to the caller's address when it was sent.
    assert result == [[b"refused: forbidden", b"diary: from bob"]]


async def test_another_nodes_claim_is_believed_for_its_own_capabilities_or_a_grant_here(
    rt: Runtime,
) -> None:
    sender = Address.parse("bob.os@gifts:app:dev.os")
    own = Capability(issuer=Address.parse(VAULT), params='"messaging"')
    third = Capability(issuer=Address.parse("carol.os@vault:app:dev.os"), params='"messaging"')
    local = messaging_capability(Address.parse(f"{rt.node}@private:app:dev.os"))
    outcomes: list[str] = []
    once, twice = anyio.Event(), anyio.Event()

    async def inbox(ctx: ProcessContext) -> None:
        for _ in range(2):
            message = await ctx.receive()
            for cap in message.capabilities:
                try:
                    ctx.save_capabilities([cap])
                    outcomes.append(f"saved {cap.issuer}")
                except CapabilityNotHeld:
                    outcomes.append(f"not offered {cap.issuer}")
            once.set()
        try:
            ctx.share_capabilities("carol.os@x:app:dev.os", [own])
        except CapabilityNotHeld as exc:
            outcomes.append(str(exc))
        twice.set()

    await rt.spawn("inbox:app:dev.os", inbox, public=True)
    inbox_address = Address.parse(f"{rt.node}@inbox:app:dev.os")

    def gift(caps: tuple[Capability, ...]) -> Request:
        return Request(id=1, source=sender, target=inbox_address, body=b"", capabilities=caps)

    await rt.deliver_from_network(gift((own, third, local)))
    with anyio.fail_after(10):
        await once.wait()
    caps_of(rt).grant(sender, [local])  # e.g. shared with bob's gifts by a process here
    await rt.deliver_from_network(gift((local,)))
    with anyio.fail_after(10):
        await twice.wait()
    assert outcomes == [
        f"saved {VAULT}",  # bob's own: its signed envelope vouches for it
        "not offered carol.os@vault:app:dev.os",  # bob cannot speak for carol
        f"not offered {local.issuer}",  # this node's, and bob's gifts held none of it
        f"saved {local.issuer}",  # granted here
        f"{VAULT} \"messaging\" was issued by node 'bob.os': only it can grant it to "
        "carol.os@x:app:dev.os",
    ]
