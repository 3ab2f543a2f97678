"""The ``kvruntime`` command line (console script ``kvruntime = kvruntime.cli:main``).

One module per group of commands: ``keys`` (get, set, del, scan),
``atomics`` (incr, cas), ``expiry`` (expire, persist, ttl, ttl-policy),
``access`` (share, revoke, rm-db), ``send``,
``dumpload`` (dump, load), ``admin`` (ls, caps, repair), ``host`` (run,
bench), ``serve`` (the explorer page), ``shell`` (commands at a prompt).
``_app`` holds the click group, shared options and exit codes; ``_session``
how a command reaches kv:distro:sys through a Runtime; ``_startup`` what
the console script does so that a command starts and ends quickly.
Importing this package imports click and ``_app`` only: a command's module
is imported when the command is looked up (``_app.COMMAND_MODULES``), and
each command imports the runtime, rich or msgpack when it runs.
"""

from __future__ import annotations

from ._app import CliError, cli
from ._startup import run_once

__all__ = ["CliError", "cli", "main"]


def main() -> None:
    """Entry point of the ``kvruntime`` console script: one command, then the
    process ends (``_startup``: the collector skips the start-up heap)."""
    run_once(lambda: cli(prog_name="kvruntime"))
