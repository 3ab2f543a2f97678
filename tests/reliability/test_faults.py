"""Disk faults and shutdown under load.

- A full disk: ``{home}/kv`` on a tiny tmpfs (needs root and ``mount``; the
  test is skipped with the reason elsewhere). Writes fail with a typed
  ``IoError``/``LevelDbError`` naming the db, nothing acknowledged is lost,
  and service resumes when space returns.
- Shutdown under load: the runtime exits while senders have requests in
  flight; each is answered or fails clearly, and what was acknowledged is
  there after a restart.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, SendError, kv
from protocol.ids import PackageId
from tests.conftest import run_as
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("faults:test.os")
APP = "app:faults:test.os"


def _mount(cmd: list[str]) -> str | None:
    """Run a mount command; the reason it failed, or None."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return done.stderr.strip() or f"exit {done.returncode}" if done.returncode else None


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path``, or skip the test saying why."""
    path.mkdir(parents=True, exist_ok=True)
    why = _mount(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if why is not None:
        pytest.skip(f"cannot mount a tmpfs here to fill a disk: {why}")
    try:
        yield path
    finally:
        _mount(["umount", "-l", str(path)])


async def test_a_full_disk_answers_typed_errors_loses_nothing_and_recovers(
    home: Path, figures: Figures
) -> None:
    acked: dict[bytes, bytes] = {}
    errors: list[kv.KvError] = []
    with tiny_tmpfs(home / "kv", "1m") as kv_dir:
        async with Runtime(home=home, config=KvConfig()) as rt:

            async def fill(ctx: ProcessContext) -> None:
                db = await kv.open(ctx, PKG, "db")
                for i in range(2000):  # 2000 x 4 KiB is far more than 1 MiB
                    key, value = b"k%05d" % i, bytes([i % 251]) * 4096
                    try:
                        await db.set(key, value)
                    except (kv.IoError, kv.LevelDbError) as exc:
                        errors.append(exc)
                        if len(errors) >= 5:
                            return
                    else:
                        acked[key] = value

            await run_as(rt, APP, fill)
            assert errors, "the disk never filled up"
            assert all("[faults:test.os, db]" in str(e) for e in errors), errors
            assert str(kv_dir) not in " ".join(map(str, errors))
            assert len(acked) > 10

            # Space returns.
            assert _mount(["mount", "-o", "remount,size=64m", str(kv_dir)]) is None

            async def resume(ctx: ProcessContext) -> None:
                db = kv.handle(ctx, PKG, "db")
                await db.set(b"after", b"space came back")
                assert await db.get(b"after") == b"space came back"
                for key, value in acked.items():
                    assert await db.get(key) == value

            await run_as(rt, APP, resume)

        async with Runtime(home=home, config=KvConfig()) as rt:  # after a restart too

            async def check(ctx: ProcessContext) -> None:
                db = kv.handle(ctx, PKG, "db")
                lost = [key for key in [*acked, b"after"] if not await db.exists(key)]
                assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:3]}...{lost[-3:]}"
                for key, value in acked.items():
                    assert await db.get(key) == value

            await run_as(rt, APP, check)
    figures.add("faults: disk-full errors answered", len(errors))
    figures.add("faults: writes verified after a full disk", len(acked))


async def test_shutdown_under_load_answers_or_fails_clearly_and_keeps_acks(
    home: Path, figures: Figures
) -> None:
    acked: list[bytes] = []
    failed: list[BaseException] = []
    started = anyio.Event()

    async def writer(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        started.set()

        async def one(i: int) -> None:
            key = b"%s/%d" % (str(ctx.process_id).encode(), i)
            try:
                await db.set(key, key)
            except SendError as exc:
                failed.append(exc)
            else:
                acked.append(key)

        i = 0
        while True:
            async with anyio.create_task_group() as tg:
                for _ in range(32):
                    i += 1
                    tg.start_soon(one, i)

    async with Runtime(home=home) as rt:
        for n in range(4):
            await rt.spawn(f"w{n}:faults:test.os", writer, request_capabilities=["kv:distro:sys"])
        await started.wait()
        await anyio.sleep(0.3)
    # Leaving the runtime killed the writers mid-flight; kv answered its queue.
    assert len(acked) > 100
    async with Runtime(home=home) as rt:

        async def check(ctx: ProcessContext) -> None:
            db = kv.handle(ctx, PKG, "db")
            for key in acked:
                assert await db.get(key) == key

        await run_as(rt, "w0:faults:test.os", check)
    figures.add("faults: writes acknowledged before a shutdown, verified", len(acked))
