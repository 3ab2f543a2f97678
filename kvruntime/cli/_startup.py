"""What the console script does so that one command starts and ends quickly.

A ``kvruntime get`` is one process: its start-up imports a few hundred
modules (click, asyncio, anyio, attrs, the protocol's message classes, the
runtime) whose objects live until the process ends, and its end tears them
down. Python's cyclic garbage collector scans every tracked object on each
full collection: the imports trigger several (the heap grows by a quarter
each time), and the interpreter's exit runs more over the whole heap again.
None finds garbage among the imported modules and classes; together they
were about a fifth of a ``get``'s time.

Invariants:

1. Only ``main`` (the console script: a process that ends with its command)
   changes the collector. The CLI run in-process (click's test runner, the
   tests) never does: ``start_up`` is a plain block there.
2. In that process, ``start_up`` (around the import of the command's
   module in ``_app``, and around the runtime's imports and start in
   ``_session.run_in_home``) pauses collections until the block calls the
   ``started`` it yields (once the runtime is up) or ends, whichever comes
   first; then it freezes what exists (``gc.freeze``: the collector
   ignores those objects from then on) and collects again as before. Once
   the runtime is up the start-up is over: the command's own work (a
   ``serve`` or a ``shell``, whose commands import their modules as they
   come, may run for hours) has the collector it always had, minus the
   scans of the start-up heap.
3. When the command is over, ``run_once`` freezes the heap before the
   interpreter's exit, whose collections then scan nothing. Objects still
   reachable at that point are freed by reference counting as before; only
   garbage cycles are left to the operating system, which reclaims the
   whole process a moment later. Everything that must be released (the
   runtime, its databases and the capability store, click's files, stdout)
   is closed explicitly before.
4. ``end`` (the console script's last call) ends the process with
   ``os._exit`` once the command is over, without the interpreter's
   finalization (the teardown of every module, a few ms of a ``get``):
   stdout and stderr are flushed first and the ``atexit`` functions run
   (``logging``'s flush of its handlers among them). It falls back to the
   interpreter's own exit when a flush fails (a closed pipe: Python's
   exit reports it, with code 120, as before) or when a thread other than
   the main one is still alive (its work may matter). The exit code is
   Python's for the same ``SystemExit``: 0 for None, the int, or 1 after
   printing anything else to stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import NoReturn

__all__ = ["end", "run_once", "start_up"]


class _StartUp:
    """The start-up of the process ``run_once`` runs: ``over`` once its runtime is up."""

    __slots__ = ("over",)

    def __init__(self) -> None:
        self.over = False


#: Set while ``run_once`` runs the command of a process that ends with it.
_PROCESS: ContextVar[_StartUp | None] = ContextVar("kvruntime_start_up", default=None)


def _nothing() -> None:
    pass


@contextlib.contextmanager
def start_up(*, ends: bool = False) -> Iterator[Callable[[], None]]:
    """No collections until the block calls what this yields, or ends; then the
    objects made so far are frozen (invariant 2). With ``ends``, calling it also
    ends the process's start-up (its runtime is up): later blocks are plain, as
    every block is outside ``run_once``."""
    process = _PROCESS.get()
    if process is None or process.over or not gc.isenabled():
        yield _nothing
        return
    paused = [True]

    def resume() -> None:
        if paused:
            paused.clear()
            gc.freeze()
            gc.enable()

    def started() -> None:
        resume()
        if ends:
            process.over = True

    gc.disable()
    try:
        yield started
    finally:
        resume()  # also when the block failed before ``started``


def run_once(command: Callable[[], object]) -> int:
    """Run ``command`` as the whole life of this process (invariants 1 and 3);
    its exit code (a ``SystemExit``'s, as ``end`` takes it; 0 if it returned)."""
    token = _PROCESS.set(_StartUp())
    try:
        command()
    except SystemExit as exc:
        return _code_of(exc.code)
    finally:
        _PROCESS.reset(token)
        gc.freeze()
    return 0


def _code_of(code: object) -> int:
    """What the interpreter exits with for ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def end(code: int) -> NoReturn:
    """End the process with ``code`` once its command is over (invariant 4)."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)  # the interpreter reports it, as it would have
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):  # what an atexit function wrote
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(code)
