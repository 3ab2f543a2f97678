"""``python -m benchmarks.loop_floor``: the event loop's own cost of one round trip.

Two tasks and two futures, nothing else: a server task waits on a future,
the client sets it and awaits its own, which the server sets. Any request
between two tasks (a sender and kv:distro:sys) pays at least this. Run it
under callgrind with N and 3N trips and divide the difference by 2N, as
``benchmarks.callgrind`` does (issue 12, stop 24, in benchmarks/README.md):

    valgrind --tool=callgrind python -m benchmarks.loop_floor asyncio 2000
"""

from __future__ import annotations

import asyncio
import sys


async def _trips(count: int) -> None:
    loop = asyncio.get_running_loop()
    replies: list[asyncio.Future[None]] = []
    wake: list[asyncio.Future[None]] = []

    async def server() -> None:
        while True:
            woken: asyncio.Future[None] = asyncio.Future(loop=loop)
            wake.append(woken)
            await woken
            replies.pop().set_result(None)

    task = loop.create_task(server())
    await asyncio.sleep(0)
    for _ in range(count):
        reply: asyncio.Future[None] = asyncio.Future(loop=loop)
        replies.append(reply)
        wake.pop().set_result(None)
        await reply
    task.cancel()


def main(argv: list[str] | None = None) -> int:
    """``loop_floor {uvloop,asyncio} TRIPS``."""
    loop, count = (argv if argv is not None else sys.argv[1:]) or ["asyncio", "1000"]
    if loop == "uvloop":
        import uvloop

        uvloop.run(_trips(int(count)))
    else:
        asyncio.run(_trips(int(count)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
