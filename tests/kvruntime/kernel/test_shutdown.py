"""Leaving the Runtime is bounded, even by a process that shields itself from cancellation."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import anyio
import pytest

from kvruntime import ProcessContext, ProcessKilled, Runtime, kv

pytestmark = pytest.mark.anyio

STUBBORN = "stubborn:app:pub.os"
#: The grace the test sets, and how long exit may take on a slow, shared machine.
GRACE = 0.2
BOUND = 5.0


async def test_exit_abandons_a_process_that_ignores_the_stop_after_the_grace(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shielded = anyio.Event()

    async def stubborn(ctx: ProcessContext) -> None:
        with anyio.CancelScope(shield=True):
            shielded.set()
            await anyio.sleep_forever()  # until the event loop closes

    async def polite(ctx: ProcessContext) -> None:
        await anyio.sleep_forever()

    caplog.set_level(logging.ERROR, logger="kvruntime.runtime")
    started = time.monotonic()
    async with Runtime(home=home, shutdown_grace=GRACE) as rt:
        handle = await rt.spawn(STUBBORN, stubborn, request_capabilities=["kv:distro:sys"])
        other = await rt.spawn("polite:app:pub.os", polite)

        async def write(ctx: ProcessContext) -> None:
            await (await kv.open(ctx, ctx.package_id, "db")).set(b"k", b"v")

        await (
            await rt.spawn("writer:app:pub.os", write, request_capabilities=["kv:distro:sys"])
        ).wait()
        await shielded.wait()
        entered = time.monotonic()
    elapsed = time.monotonic() - entered
    assert GRACE <= elapsed < BOUND, f"exit took {elapsed:.2f}s"
    assert [r.getMessage() for r in caplog.records] == [
        f"process {STUBBORN} did not stop within {GRACE:g}s of shutdown: abandoned"
    ]
    with pytest.raises(ProcessKilled, match="abandoned"):
        await handle.wait()
    with pytest.raises(ProcessKilled, match="was stopped"):
        await other.wait()
    assert time.monotonic() - started < BOUND + 2

    # The home is free again: the runtime closed its dbs and capability store.
    async with Runtime(home=home) as rt:

        async def read(ctx: ProcessContext) -> bytes:
            return await kv.handle(ctx, ctx.package_id, "db").get(b"k")

        result: list[bytes] = []

        async def main(ctx: ProcessContext) -> None:
            result.append(await read(ctx))

        await (await rt.spawn("writer:app:pub.os", main)).wait()
        assert result == [b"v"]


class Abort(BaseException):
    """Not an Exception: what a test's ``pytest.fail`` or a stray GeneratorExit is like."""


async def test_a_main_raising_a_base_exception_hands_it_to_its_handle_only(rt: Runtime) -> None:
    async def aborts(ctx: ProcessContext) -> None:
        raise Abort("gone")

    handle = await rt.spawn("aborts:app:pub.os", aborts)
    with pytest.raises(Abort, match="gone"):
        await handle.wait()

    async def write(ctx: ProcessContext) -> bytes:
        db = await kv.open(ctx, ctx.package_id, "db")
        await db.set(b"k", b"v")
        return await db.get(b"k")

    result: list[bytes] = []

    async def main(ctx: ProcessContext) -> None:
        result.append(await write(ctx))

    await (await rt.spawn("writer:app:pub.os", main, request_capabilities=["kv:distro:sys"])).wait()
    assert result == [b"v"]
