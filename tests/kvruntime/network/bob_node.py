"""A node in its own OS process: ``python -m tests.kvruntime.network.bob_node``.

Arguments: HOME NODE NATS_URL PEER=KEY...  It runs the public process
``echo:app:dev.os`` (answers each request with its body, but prints ``held``
and never answers the body ``hold``; a fire-and-forget request is sent back to
its source's ``sink:app:dev.os`` with ``expects_response`` unset), prints
``ready`` once connected, and stops when stdin closes.
"""

from __future__ import annotations

import sys

import anyio

from kvruntime import Address, ProcessContext, ProcessId, Request, Runtime


async def echo(ctx: ProcessContext) -> None:
    while True:
        message = await ctx.receive()
        if not isinstance(message, Request):
            continue
        if message.body == b"hold":
            print("held", flush=True)
        elif message.expects_response is not None:
            await ctx.respond(message, message.body)
        else:
            sink = Address(node=message.source.node, process=ProcessId.parse("sink:app:dev.os"))
            await ctx.send(sink, b"got " + message.body)


async def main(home: str, node: str, url: str, peers: dict[str, str]) -> None:
    async with Runtime(home=home, node=node, network=url, peers=peers, storage="memory") as rt:
        await rt.spawn("echo:app:dev.os", echo, public=True)
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    home, node, url, *pairs = sys.argv[1:]
    anyio.run(main, home, node, url, dict(pair.split("=", 1) for pair in pairs))
