"""How a command reaches the store: a Runtime on the home, an administrative process in it.

Invariants:

1. Every command but ``repair`` runs its work inside ``run_in_home``: a real
   ``Runtime`` on the home, and, through ``as_admin``, a process
   ``kvruntime-cli:PACKAGE`` that talks to kv:distro:sys like any process of
   the package (the same checks, errors and capabilities).
2. Reading never creates: ``open_db(create=False)`` is
   ``kv.open(create=False)``, which asks kv whether the db exists before it
   sends ``Open`` (which would create it).
3. The command leaves no grant it needed only for itself. ``run_in_home``
   notes the capability table when the runtime starts; what was granted
   since to a process the command ran as (the messaging capability on kv
   that ``spawn`` gives, the read and write that ``Open`` gives) is revoked
   from the table itself as the runtime closes, once every process and
   kv:distro:sys have stopped and before the capability store closes
   (``Runtime._revoke_at_close``, internal: no runtime API revokes a
   messaging capability).
   Grants to other processes stay: they are what ``share`` is for. ``send``
   keeps the db capabilities its request earned (an ``Open`` grants read and
   write to the sender, as it would to an application), so a later ``send``
   of a ``Get`` behaves as it would for that application.
4. A failure is raised in the caller's thread after the runtime has shut
   down cleanly; expected ones become ``CliError`` with their exit code.
5. A home is created only where ``--create`` says so, and only in a folder
   that does not exist, is empty, or is a home already: a mistyped
   ``--home`` never turns a folder of other files into one.
6. Inside ``kvruntime shell`` (``shell.py``) the runtime is the shell's:
   ``run_in_home`` runs the command's work on the shell's event loop through
   the ``OpenHome`` it finds in ``OPEN_HOME`` (a context variable the shell
   sets in the worker thread that runs one command), and invariant 3 holds
   when the shell ends instead of after each command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ._app import EXIT_HOME, EXIT_INTERRUPTED, EXIT_KV, EXIT_USAGE, CliError, storage
from ._startup import start_up

if TYPE_CHECKING:
    import anyio

    from protocol.ids import Address, PackageId, ProcessId

    from .. import kv
    from ..kernel.message import Capability
    from ..kernel.process import ProcessContext
    from ..runtime import Runtime

__all__ = [
    "ADMIN_PROCESS_NAME",
    "OPEN_HOME",
    "TIMEOUT",
    "OpenHome",
    "Session",
    "admin_id",
    "as_admin",
    "caps_path",
    "check_home",
    "home_in_use",
    "is_home",
    "on_interrupt",
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


def is_home(home: Path) -> bool:
    """Whether ``home`` holds a runtime's capability table."""
    return (caps_path(home) / "CURRENT").is_file()


def home_in_use(home: Path) -> CliError:
    """The error for a home whose capability table another runtime holds open."""
    return CliError(f"home {home} is in use by another runtime (stop it first)", EXIT_HOME)


def check_home(home: Path, *, create: bool) -> None:
    """CliError (exit 3) unless ``home`` is a home, or may become one (``create``; invariant 5)."""
    if create:
        if home.exists() and not home.is_dir():
            raise CliError(f"home {home} is not a folder", EXIT_HOME)
        if home.is_dir() and not is_home(home) and any(home.iterdir()):
            raise CliError(
                f"{home} is not a kvruntime home and not empty: refusing to make it one"
                " (check --home)",
                EXIT_HOME,
            )
        return
    if not home.is_dir():
        raise CliError(f"home {home} does not exist (set --home or KVRUNTIME_HOME)", EXIT_HOME)
    if not is_home(home):
        raise CliError(f"{home} is not a kvruntime home (no kernel/capabilities)", EXIT_HOME)


class Session:
    """A command's runtime, and the processes the command ran as (whose grants it takes back).

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = ("__weakref__", "keep_db_grants", "kept", "ran_as", "rt")

    rt: Runtime
    keep_db_grants: bool
    ran_as: set[Address]
    #: Those of ``ran_as`` that keep their db grants anyway (a shell's ``send``).
    kept: set[Address]

    def __init__(self, *, rt: Runtime, keep_db_grants: bool = False) -> None:
        self.rt = rt
        self.keep_db_grants = keep_db_grants
        self.ran_as = set()
        self.kept = set()


class OpenHome:
    """The runtime ``kvruntime shell`` keeps open on ``home`` for its commands (invariant 6).

    (A plain slotted class, as ``Session``.)
    """

    __slots__ = ("__weakref__", "_running", "home", "session")

    home: Path
    #: The shell's own session: its ``ran_as`` gathers every command's processes.
    session: Session
    #: The scope of the command's work running now, if any (``interrupt`` cancels it).
    _running: anyio.CancelScope | None

    def __init__(self, *, home: Path, session: Session) -> None:
        self.home = home
        self.session = session
        self._running = None

    def interrupt(self) -> None:
        """Stop the command's work running now (Ctrl-C); on the event loop's thread."""
        if self._running is not None:
            self._running.cancel()

    def run(self, home: Path, work: Callable[[Session], Awaitable[T]], *, keep: bool) -> T:
        """``work`` on the shell's runtime, called from the worker thread running a command.

        CliError (exit 130) if ``interrupt`` stopped it.
        """
        import anyio.from_thread

        if home.resolve() != self.home.resolve():
            raise CliError(f"the shell runs on home {self.home}, not {home}", EXIT_USAGE)
        command = Session(rt=self.session.rt, keep_db_grants=keep)
        done: list[T] = []

        async def call() -> None:
            scope = self._running = anyio.CancelScope()
            try:
                with scope:
                    done.append(await work(command))
            finally:
                self._running = None

        try:
            anyio.from_thread.run(call)
            if not done:
                raise CliError("interrupted", EXIT_INTERRUPTED)
            return done[0]
        except Exception as exc:
            raise _translate(exc) from None
        finally:  # what the shell takes back when it ends: send's rule, per process
            self.session.ran_as |= command.ran_as
            if keep:
                self.session.kept |= command.ran_as


@contextlib.contextmanager
def on_interrupt(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on Ctrl-C (SIGINT) while the block runs, instead of a KeyboardInterrupt.

    Only on the thread running the event loop (the CLI runs on asyncio); the
    handler SIGINT had before (asyncio.Runner's) is put back at the end.
    """
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    before = signal.getsignal(signal.SIGINT)
    loop.add_signal_handler(signal.SIGINT, callback)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, before)


#: The OpenHome of the shell whose command runs in this context, if any.
OPEN_HOME: ContextVar[OpenHome | None] = ContextVar("kvruntime_open_home", default=None)


def run_in_home(
    home: Path,
    work: Callable[[Session], Awaitable[T]],
    *,
    create_home: bool = False,
    keep_db_grants: bool = False,
) -> T:
    """Run ``work(session)`` on a Runtime over ``home`` and return its result.

    Raises CliError for a missing home (unless ``create_home``), a home in
    use, and every error kv:distro:sys answered. Grants are taken back as
    invariant 3 says (``keep_db_grants``: ``send``'s rule).
    """
    if (shell := OPEN_HOME.get()) is not None:  # invariant 6
        return shell.run(home, work, keep=keep_db_grants)
    check_home(home, create=create_home)
    with start_up(ends=True) as started:  # a one-shot process's start-up (``_startup``)
        import anyio

        from ..kernel.capabilities import CapabilityStoreError, HomeInUse
        from ..runtime import Runtime
        from ..storage.engine import StorageUnavailable

        try:  # --storage / $KVRUNTIME_STORAGE (issue 13)
            made = Runtime(home=home, storage=storage())
        except ValueError as exc:
            raise CliError(f"bad --storage: {exc}", EXIT_USAGE) from None

        async def go() -> tuple[T | None, Exception | None, list[tuple[Address, Capability]]]:
            try:
                runtime = await made.__aenter__()
            except HomeInUse:
                raise home_in_use(home) from None
            except CapabilityStoreError as exc:
                raise CliError(f"cannot open home {home}: {exc}", EXIT_HOME) from None
            except StorageUnavailable as exc:
                raise CliError(f"storage unavailable: {exc}", EXIT_HOME) from None
            started()
            session = Session(rt=runtime, keep_db_grants=keep_db_grants)
            before = {(holder, cap.key) for holder, cap in runtime.capability_holders()}
            try:
                return await work(session), None, []
            except Exception as exc:  # re-raised below, once the runtime is down
                return None, exc, []
            finally:
                runtime._revoke_at_close(_granted_to_cli(session, before))  # invariant 3
                try:
                    await runtime.__aexit__(None, None, None)
                except CapabilityStoreError as exc:  # the revoking write failed
                    click.echo(
                        f"warning: could not take back the command's capabilities: {exc}", err=True
                    )

        result, error, _ = anyio.run(go, backend="asyncio")
    if error is not None:
        raise _translate(error)
    return result  # type: ignore[return-value]  # None only when work returned None


def _granted_to_cli(
    session: Session, before: set[tuple[Address, str]]
) -> list[tuple[Address, Capability]]:
    """What was granted since ``before`` to the processes the command ran as (invariant 3)."""
    from ..kernel.bus import messaging_capability

    messaging = messaging_capability(session.rt.kv_address)
    extra = []
    for holder, cap in session.rt.capability_holders():
        if holder not in session.ran_as or (holder, cap.key) in before:
            continue
        if cap == messaging or not (session.keep_db_grants or holder in session.kept):
            extra.append((holder, cap))
    return extra


_REPAIR_HINT = (
    "\n(if the db's files are damaged, `kvruntime repair PACKAGE DB` may recover it;"
    " read its warning first)"
)


def _translate(error: Exception) -> Exception:
    from protocol.messages import IoError, LevelDbError

    from .. import kv
    from ..kernel.errors import SendError

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
    from protocol.ids import ProcessId

    return ProcessId(
        process_name=ADMIN_PROCESS_NAME,
        package_name=package.package_name,
        publisher_node=package.publisher_node,
    )


async def as_admin(
    session: Session,
    package: PackageId,
    body: Callable[[ProcessContext], Awaitable[T]],
    *,
    process: ProcessId | None = None,
) -> T:
    """Run ``body(ctx)`` as ``process`` (default the admin process of ``package``)."""
    import anyio

    from protocol.ids import Address

    rt = session.rt
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

    session.ran_as.add(Address(node=rt.node, process=pid))
    handle = await rt.spawn(pid, main, request_capabilities=["kv:distro:sys"])
    try:
        await handle.wait()
    except anyio.get_cancelled_exc_class():  # the command was stopped: so is its process
        handle.kill()
        raise
    if failure:
        raise failure[0]
    return outcome[0]


async def open_db(
    ctx: ProcessContext, package: PackageId, db: str, *, create: bool
) -> kv.Kv[bytes, bytes]:
    """A handle on ``db``, opened through kv with the CLI's timeout; ``kv.NoDb``
    for a missing db unless ``create`` (invariant 2)."""
    from .. import kv

    return await kv.open(ctx, package, db, create=create, timeout=TIMEOUT)
