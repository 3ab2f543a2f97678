"""A node in its own OS process that asks once and exits: ``-m tests...alice_node``.

Arguments: HOME NODE NATS_URL PEER=KEY...  It asks ``<peer>@echo:app:dev.os``
to echo ``hello``, asks ``<peer>@kv:distro:sys`` for a key, prints one JSON
line ``{"echo": <text>, "kv": <the decoded answer's repr>}`` for the first
peer, and exits 0.
"""

from __future__ import annotations

import json
import sys

import anyio

from kvruntime import ProcessContext, Runtime
from protocol.codec import decode_response, encode_request
from protocol.ids import PackageId
from protocol.messages import Get, KvRequest


async def main(home: str, node: str, url: str, peers: dict[str, str]) -> None:
    peer = next(iter(peers))
    out: dict[str, str] = {}

    async def ask(ctx: ProcessContext) -> None:
        echoed = await ctx.send_and_await_response(f"{peer}@echo:app:dev.os", b"hello", timeout=20)
        get = KvRequest(package_id=PackageId.parse("app:dev.os"), db="db", action=Get(key=b"k"))
        kv = await ctx.send_and_await_response(
            f"{peer}@kv:distro:sys", encode_request(get), timeout=20
        )
        out.update(echo=echoed.body.decode(), kv=repr(decode_response(kv.body)))

    async with Runtime(home=home, node=node, network=url, peers=peers, storage="memory") as rt:
        handle = await rt.spawn("client:app:dev.os", ask)
        await handle.wait()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    home, node, url, *pairs = sys.argv[1:]
    anyio.run(main, home, node, url, dict(pair.split("=", 1) for pair in pairs))
