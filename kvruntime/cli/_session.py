"""How a command reaches the store: a Runtime on the home, an administrative process in it.

Invariants:

1. Every command but ``repair`` runs its work inside ``run_in_home``: a real
   ``Runtime`` on the home, and, through ``as_admin``, a process
   ``kvruntime-cli:PACKAGE`` that talks to kv:distro:sys like any process of
   the package (the same checks, errors and capabilities).
2. Reading never creates: ``open_db(create=False)`` first asks kv with an
   ``Exists`` probe, which answers ``NoDb`` to the owning package for a
   missing db, and only then sends ``Open`` (which would create it).
3. The administrative process gains capabilities as any process of the
   package does (``Open`` grants read and write) and keeps them like any
   grant, so ``send`` of an ``Open`` and later of a ``Get`` behave as they
   would for an application; ``kvruntime caps`` lists it like the others.
4. A failure is raised in the caller's thread after the runtime has shut
   down cleanly; expected ones become ``CliError`` with their exit code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio

from protocol.ids import PackageId, ProcessId
from protocol.messages import Exists, IoError, LevelDbError

from .. import kv
from ..client._exchange import request
from ..kernel.capabilities import CapabilityStoreError, HomeInUse
from ..kernel.errors import SendError
from ..kernel.process import ProcessContext
from ..runtime import Runtime
from ._app import EXIT_HOME, EXIT_KV, EXIT_USAGE, CliError

__all__ = [
    "ADMIN_PROCESS_NAME",
    "TIMEOUT",
    "admin_id",
    "as_admin",
    "caps_path",
    "check_home",
    "home_in_use",
    "open_db",
    "page_ask",
    "run_in_home",
]

T = TypeVar("T")

#: The process name of the administrative process inside the target package.
ADMIN_PROCESS_NAME = "kvruntime-cli"
#: Seconds to wait for each answer of kv:distro:sys (values may be large).
TIMEOUT = 120.0
#: The largest ``limit`` a Scan carries on the wire (a u64).
_MAX_WIRE_LIMIT = 2**64 - 1


def caps_path(home: Path) -> Path:
    """Where the runtime keeps its capability table (whose LevelDB LOCK marks a running home)."""
    return home / "kernel" / "capabilities"


def home_in_use(home: Path) -> CliError:
    """The error for a home whose capability table another runtime holds open."""
    return CliError(f"home {home} is in use by another runtime (stop it first)", EXIT_HOME)


def check_home(home: Path, *, create: bool) -> None:
    if create:
        return
    if not home.is_dir():
        raise CliError(f"home {home} does not exist (set --home or KVRUNTIME_HOME)", EXIT_HOME)
    if not (caps_path(home) / "CURRENT").is_file():
        raise CliError(f"{home} is not a kvruntime home (no kernel/capabilities)", EXIT_HOME)


def run_in_home(
    home: Path, work: Callable[[Runtime], Awaitable[T]], *, create_home: bool = False
) -> T:
    """Run ``work(rt)`` on a Runtime over ``home`` and return its result.

    Raises CliError for a missing home (unless ``create_home``), a home in
    use, and every error kv:distro:sys answered.
    """
    check_home(home, create=create_home)

    async def go() -> tuple[T | None, Exception | None]:
        try:
            runtime = await Runtime(home=home).__aenter__()
        except HomeInUse:
            raise home_in_use(home) from None
        except CapabilityStoreError as exc:
            raise CliError(f"cannot open home {home}: {exc}", EXIT_HOME) from None
        try:
            return await work(runtime), None
        except Exception as exc:  # re-raised below, once the runtime is down
            return None, exc
        finally:
            await runtime.__aexit__(None, None, None)

    result, error = anyio.run(go, backend="asyncio")
    if error is not None:
        raise _translate(error)
    return result  # type: ignore[return-value]  # None only when work returned None


_REPAIR_HINT = (
    "\n(if the db's files are damaged, `kvruntime repair PACKAGE DB` may recover it;"
    " read its warning first)"
)


def _translate(error: Exception) -> Exception:
    if isinstance(error, CliError):
        return error
    if isinstance(error, kv.NoDb):
        return CliError(str(error), EXIT_KV)
    if isinstance(error, kv.KvError) and isinstance(error.error, LevelDbError | IoError):
        detail = error.error.message  # "[package, db] what LevelDB said"
        return CliError(f"kv:distro:sys answered {error.error.TAG}: {detail}{_REPAIR_HINT}")
    if isinstance(error, kv.KvError):
        return CliError(f"kv:distro:sys answered: {error}", EXIT_KV)
    if isinstance(error, SendError):
        return CliError(f"cannot reach kv:distro:sys: {error}", EXIT_KV)
    return error  # a bug: let its traceback show


def page_ask(left: int | None) -> int | None:
    """The ``limit`` of the next Scan page when ``left`` entries are still wanted.

    Any count is a fine ``--limit``: kv:distro:sys bounds each page anyway,
    so a count beyond what the wire carries asks for as much as it can.
    """
    return None if left is None else min(left, _MAX_WIRE_LIMIT)


def admin_id(package: PackageId) -> ProcessId:
    """The administrative process of ``package``: ``kvruntime-cli:PACKAGE``."""
    return ProcessId(
        process_name=ADMIN_PROCESS_NAME,
        package_name=package.package_name,
        publisher_node=package.publisher_node,
    )


async def as_admin(
    rt: Runtime,
    package: PackageId,
    body: Callable[[ProcessContext], Awaitable[T]],
    *,
    process: ProcessId | None = None,
) -> T:
    """Run ``body(ctx)`` as ``process`` (default the admin process of ``package``)."""
    pid = process or admin_id(package)
    if rt.is_running(pid):  # a process of the runtime itself, such as kv:distro:sys
        raise CliError(f"process {pid} is already running in the runtime: pick another", EXIT_USAGE)
    outcome: list[T] = []
    failure: list[Exception] = []

    async def main(ctx: ProcessContext) -> None:
        try:
            outcome.append(await body(ctx))
        except Exception as exc:  # handed to the caller, not logged as a crash
            failure.append(exc)

    handle = await rt.spawn(pid, main, request_capabilities=["kv:distro:sys"])
    await handle.wait()
    if failure:
        raise failure[0]
    return outcome[0]


async def open_db(
    ctx: ProcessContext, package: PackageId, db: str, *, create: bool
) -> kv.Kv[bytes, bytes]:
    """A handle on ``db``, opened through kv (``Open``), creating it only if ``create``.

    Raises ``kv.NoDb`` for a missing db when not ``create``.
    """
    if not create:
        # NoDb if missing; NoReadCap means it exists (NoDb comes first) and Open grants it.
        with contextlib.suppress(kv.NoReadCap):
            await request(ctx, package, db, Exists(key=b""), timeout=TIMEOUT)
    return await kv.open(ctx, package, db, timeout=TIMEOUT)
