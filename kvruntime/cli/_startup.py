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
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["run_once", "start_up"]


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


def run_once(command: Callable[[], object]) -> None:
    """Run ``command`` as the whole life of this process (invariants 1 and 3)."""
    token = _PROCESS.set(_StartUp())
    try:
        command()
    finally:
        _PROCESS.reset(token)
        gc.freeze()
