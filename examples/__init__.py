"""Example programs: each one is a process a newcomer runs and reads top to bottom.

Every example module has ``PROCESS`` (its process id) and ``main(ctx)`` (its
code), and runs alone with ``python -m examples.NAME --home DIR``.
``python -m examples.host`` (what ``make run`` starts) runs them all in turn.

This module holds the few lines they share: spawning an example (and the
sibling processes it talks to) in a Runtime, and the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import anyio

from kvruntime import Main, Runtime

__all__ = [
    "KV",
    "configure_logging",
    "home_argument_parser",
    "run_alone",
    "run_example",
    "run_program",
    "silence_stdout",
]

#: The kv process. It is not public: a process must ask for it at spawn.
KV = "kv:distro:sys"


async def run_example(
    rt: Runtime, process: str, main: Main, *, siblings: Mapping[str, Main] | None = None
) -> None:
    """Spawn ``siblings`` first, then ``main`` as ``process``; return when all have finished.

    Every process may message kv:distro:sys; ``main`` may also message its
    siblings. Re-raises the first error of ``main`` or a sibling; when ``main``
    fails, the siblings are stopped.
    """
    siblings = siblings or {}
    handles = [
        await rt.spawn(pid, code, request_capabilities=[KV]) for pid, code in siblings.items()
    ]
    handle = await rt.spawn(process, main, request_capabilities=[KV, *siblings])
    try:
        await handle.wait()
        for sibling in handles:
            await sibling.wait()
    finally:  # a sibling still waiting for a message that will never come
        for sibling in handles:
            sibling.kill()


def home_argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The command line every example shares: ``--home DIR`` and ``-v``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=Path("./data"),
        help="the node's home folder: LevelDB files and capabilities live here (default ./data)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show the runtime's log on stderr"
    )
    return parser


def configure_logging(verbose: bool) -> None:
    """Show the runtime's log with ``-v``; otherwise keep the output to the example's own words."""
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
        )
    else:
        # A handler on the root logger stops Python's last-resort printing of warnings.
        logging.getLogger().addHandler(logging.NullHandler())


def run_program(program: Callable[[], Awaitable[int]]) -> int:
    """Run ``program`` on asyncio and return its exit code.

    An error becomes a one-line message on stderr and exit code 1 (130 for
    Ctrl-C), never a traceback: these programs are read by newcomers.
    """
    try:
        return anyio.run(program, backend="asyncio")
    except SystemExit:
        raise
    except BaseException as exc:  # the program's one boundary: report, do not crash
        errors = _leaves(exc)
        if any(isinstance(error, KeyboardInterrupt) for error in errors):
            print("interrupted", file=sys.stderr)
            return 130
        if any(isinstance(error, BrokenPipeError) for error in errors):
            silence_stdout()
            return 1
        for error in errors:
            print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def silence_stdout() -> None:
    """The reader of stdout went away (``| head``): drop the rest quietly."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, with task-group wrappers taken off."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def run_alone(
    process: str,
    main: Main,
    *,
    siblings: Mapping[str, Main] | None = None,
    description: str | None,
    argv: Sequence[str] | None = None,
) -> None:
    """The ``python -m examples.NAME --home DIR`` entry point: one example in its own Runtime."""
    args = home_argument_parser(description).parse_args(argv)
    configure_logging(args.verbose)

    async def program() -> int:
        async with Runtime(home=args.home) as rt:
            await run_example(rt, process, main, siblings=siblings)
        return 0

    sys.exit(run_program(program))
