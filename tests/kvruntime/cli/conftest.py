"""Helpers for the command-line tests: the CLI in-process (click's runner) or the real script.

``kvr`` runs a command in this process with click's ``CliRunner`` (what
almost every test uses: no interpreter start-up per command); ``script``
runs the installed console script in a subprocess (the smoke tests of
``test_script.py``, and what depends on a process of its own: the current
directory, a terminal, another runtime holding the home). Both answer a
``Run``: the exit code, and stdout and stderr as bytes.

In-process runs share the interpreter, so ``kvr`` puts back what a command
changes globally: click's runner restores the streams and the environment,
and ``kvr`` the root logger, which every command reconfigures for its
``-v``. A command that raises instead of exiting shows its traceback on
``stderr``, as the real script would, so ``fail`` sees it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

import anyio
import attrs
from click.testing import CliRunner

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.cli import cli

#: The installed console script of this environment.
KVRUNTIME = str(
    shutil.which("kvruntime", path=str(Path(sys.executable).parent))
    or Path(sys.executable).parent / "kvruntime"
)
APP = "app:cli-test.os"
#: Every command of the ``kvruntime`` group.
COMMANDS = [
    "run",
    "ls",
    "get",
    "set",
    "del",
    "scan",
    "send",
    "dump",
    "load",
    "caps",
    "repair",
    "bench",
    "incr",
    "cas",
    "share",
    "revoke",
    "rm-db",
    "serve",
    "shell",
    "expire",
    "persist",
    "ttl",
    "ttl-policy",
    "watch",
]


@attrs.frozen(kw_only=True)
class Run:
    """What a command did: its exit code and its output."""

    returncode: int
    stdout: bytes
    stderr: bytes


def kvr(*args: str, home: Path | None, stdin: bytes | None = None) -> Run:
    """Run ``kvruntime ARGS`` in-process with KVRUNTIME_HOME=home (unset if None)."""
    env = {
        "KVRUNTIME_HOME": None if home is None else str(home),
        "COLUMNS": "200",
        "TERM": "dumb",
    }
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        result = CliRunner().invoke(
            cli, list(args), input=stdin or b"", env=env, prog_name="kvruntime"
        )
    finally:  # each command calls logging.basicConfig(force=True) for its -v
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    stderr = result.stderr_bytes
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        stderr += "".join(traceback.format_exception(*result.exc_info)).encode()
    return Run(returncode=result.exit_code, stdout=result.stdout_bytes, stderr=stderr)


def script(
    *args: str,
    home: Path | None,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run the real ``kvruntime ARGS`` in a subprocess with KVRUNTIME_HOME=home."""
    env = dict(os.environ, COLUMNS="200", TERM="dumb")
    env.pop("KVRUNTIME_HOME", None)
    if home is not None:
        env["KVRUNTIME_HOME"] = str(home)
    done = subprocess.run(
        [KVRUNTIME, *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    return Run(returncode=done.returncode, stdout=done.stdout, stderr=done.stderr)


def fail(result: Run, code: int, message: str) -> None:
    """Assert an expected failure: exit ``code``, ``message`` on stderr, no traceback."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert message in err, err
    assert "Traceback" not in err, err


def ok(result: Run) -> str:
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
