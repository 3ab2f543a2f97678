"""A node whose processes hand out and use capabilities across nodes, in its own OS process.

``python -m tests.kvruntime.network.caps_node HOME NODE NATS_URLS PEER=KEY...``
prints ``ready`` once connected and stops when stdin closes. Its processes:

- ``vault:app:dev.os``, not public: answers ``vault: <body>``.
- ``keeper:app:dev.os``, public, holds the vault's messaging capability. The
  body ``grant`` shares it with the request's source (on the source's node,
  granted here); ``gift`` sends it attached to a request to the source node's
  ``inbox:app:dev.os``. Both are answered ``done``.
- ``caller:app:dev.os``, public: saves the capabilities a request carries
  (answering ``not saved: ...`` when it may not), then calls the address the
  body names and answers with that answer's body, or ``refused: <kind>``.
"""

from __future__ import annotations

import sys

import anyio

from kvruntime import (
    Address,
    CapabilityNotHeld,
    ProcessContext,
    ProcessId,
    Request,
    Runtime,
    SendError,
)


async def vault(ctx: ProcessContext) -> None:
    while True:
        message = await ctx.receive()
        if isinstance(message, Request):
            await ctx.respond(message, b"vault: " + message.body)


async def keeper(ctx: ProcessContext) -> None:
    vault_address = Address(node=ctx.our.node, process=ProcessId.parse("vault:app:dev.os"))
    (cap,) = [c for c in ctx.capabilities() if c.issuer == vault_address]
    while True:
        message = await ctx.receive()
        if not isinstance(message, Request):
            continue
        if message.body == b"grant":
            ctx.share_capabilities(message.source, [cap])
        elif message.body == b"gift":
            inbox = Address(node=message.source.node, process=ProcessId.parse("inbox:app:dev.os"))
            await ctx.send(inbox, b"gift", capabilities=[cap])
        await ctx.respond(message, b"done")


async def caller(ctx: ProcessContext) -> None:
    while True:
        message = await ctx.receive()
        if not isinstance(message, Request):
            continue
        try:
            ctx.save_capabilities(message.capabilities)
        except CapabilityNotHeld as exc:
            await ctx.respond(message, f"not saved: {exc}".encode())
            continue
        try:
            answer = await ctx.send_and_await_response(
                message.body.decode(), b"from bob", timeout=10
            )
        except SendError as exc:
            await ctx.respond(message, f"refused: {exc.kind.value}".encode())
        else:
            await ctx.respond(message, answer.body)


async def main(home: str, node: str, url: str, peers: dict[str, str]) -> None:
    async with Runtime(home=home, node=node, network=url, peers=peers, storage="memory") as rt:
        await rt.spawn("vault:app:dev.os", vault)
        await rt.spawn(
            "keeper:app:dev.os", keeper, public=True, request_capabilities=["vault:app:dev.os"]
        )
        await rt.spawn("caller:app:dev.os", caller, public=True)
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    home, node, url, *pairs = sys.argv[1:]
    anyio.run(main, home, node, url, dict(pair.split("=", 1) for pair in pairs))
