"""Helpers for the command-line tests: the real console script, in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import anyio
import pytest

from kvruntime import ProcessContext, Runtime, kv

#: The installed console script of this environment.
KVRUNTIME = str(
    shutil.which("kvruntime", path=str(Path(sys.executable).parent))
    or Path(sys.executable).parent / "kvruntime"
)
APP = "app:cli-test.os"


def kvr(
    *args: str,
    home: Path | None,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``kvruntime ARGS`` with KVRUNTIME_HOME=home; capture stdout and stderr as bytes."""
    env = dict(os.environ, COLUMNS="200", TERM="dumb")
    env.pop("KVRUNTIME_HOME", None)
    if home is not None:
        env["KVRUNTIME_HOME"] = str(home)
    return subprocess.run(
        [KVRUNTIME, *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def fail(result: subprocess.CompletedProcess[bytes], code: int, message: str) -> None:
    """Assert an expected failure: exit ``code``, ``message`` on stderr, no traceback."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert message in err, err
    assert "Traceback" not in err, err


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    """Assert success and return stdout as text."""
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def fill(home: Path, db: str, items: Iterable[tuple[bytes, bytes]], *, process: str = "") -> None:
    """Write ``items`` into ``db`` of APP with an in-process runtime (as an application would)."""
    entries = list(items)

    async def main(ctx: ProcessContext) -> None:
        handle = await kv.open(ctx, ctx.package_id, db)
        for key, value in entries:
            await handle.set(key, value)

    async def go() -> None:
        async with Runtime(home=home) as rt:
            name = process or f"writer:{APP}"
            handle = await rt.spawn(name, main, request_capabilities=["kv:distro:sys"])
            await handle.wait()

    anyio.run(go, backend="asyncio")


def read(home: Path, db: str, keys: Iterable[bytes]) -> dict[bytes, bytes | None]:
    """The values of ``keys`` in ``db`` of APP (None when missing), read in-process."""
    wanted = list(keys)
    found: dict[bytes, bytes | None] = {}

    async def main(ctx: ProcessContext) -> None:
        handle = await kv.open(ctx, ctx.package_id, db)
        for key in wanted:
            found[key] = await handle.get(key, None)

    async def go() -> None:
        async with Runtime(home=home) as rt:
            handle = await rt.spawn(f"reader:{APP}", main, request_capabilities=["kv:distro:sys"])
            await handle.wait()

    anyio.run(go, backend="asyncio")
    return found


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh home (not created yet)."""
    return tmp_path / "home"
