"""Nodes on a nats-server with per-user subject permissions, as a deployment would run them.

A node's NATS user may subscribe only to its own inbox (and its replies): the
nodes still talk, and another user cannot listen to a node's inbox.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import nats
import nats.aio.msg
import nats.errors
import pytest

from kvruntime import ProcessContext, Request, Response, Runtime, node_public_key
from tests.conftest import run_as

from .conftest import SecuredNats

pytestmark = pytest.mark.anyio


async def test_nodes_talk_under_subject_permissions_and_a_spy_cannot_listen(
    secured_nats: SecuredNats, tmp_path: Path
) -> None:
    homes = {name: tmp_path / name for name in ("alice.os", "bob.os")}
    keys = {name: node_public_key(home) for name, home in homes.items()}
    overheard: list[bytes] = []
    refused: list[Exception] = []

    async def echo(ctx: ProcessContext) -> None:
        while True:
            message = await ctx.receive()
            if isinstance(message, Request):
                await ctx.respond(message, message.body)

    async def listen(msg: nats.aio.msg.Msg) -> None:
        overheard.append(msg.data)

    async def on_error(exc: Exception) -> None:
        refused.append(exc)

    spy = await nats.connect(secured_nats.url("spy"), error_cb=on_error)
    try:
        await spy.subscribe("kvr.in.bob_os", cb=listen)  # not the spy's inbox
        with anyio.fail_after(10):
            while not refused:  # the server answers -ERR 'Permissions Violation'
                await spy.flush()
                await anyio.sleep(0.01)
        async with (
            Runtime(
                home=homes["bob.os"],
                node="bob.os",
                network=secured_nats.url("bob.os"),
                peers={"alice.os": keys["alice.os"]},
                storage="memory",
            ) as bob,
            Runtime(
                home=homes["alice.os"],
                node="alice.os",
                network=secured_nats.url("alice.os"),
                peers={"bob.os": keys["bob.os"]},
                storage="memory",
            ) as alice,
        ):
            await bob.spawn("echo:app:dev.os", echo, public=True)

            async def ask(ctx: ProcessContext) -> Response:
                return await ctx.send_and_await_response(
                    "bob.os@echo:app:dev.os", b"private", timeout=10
                )

            with anyio.fail_after(30):
                answer = await run_as(alice, "client:app:dev.os", ask, kv=False)
            await spy.flush()
    finally:
        await spy.close()
    assert answer.body == b"private"
    assert "permissions violation" in str(refused[0]).lower()
    assert overheard == []
