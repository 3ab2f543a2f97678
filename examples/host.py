"""The demo host behind ``make run``: one node, every example as a sibling process.

It starts a Runtime on the home folder (``./data`` by default): the kernel
(bus and capability store) and the kv process ``kv:distro:sys``, which keeps
each package's dbs in LevelDB under ``{home}/kv``. Then it spawns each
example in turn, as a process of its own package that talks to kv by
messages, and the examples say what they do.

Run it twice: the second run finds what the first one wrote.

    python -m examples.host --home ./data
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs

from examples import (
    birthdays,
    configure_logging,
    home_argument_parser,
    process_lib_json,
    raw_wire,
    run_example,
    run_program,
    scans_counters,
    sharing,
    silence_stdout,
    transactions,
    wasi_shapes,
)
from examples import watch as watch_example  # change feeds (issue 14)
from kvruntime import Main, Runtime


@attrs.frozen(kw_only=True)
class Example:
    """One example: its module name, what it shows, and the processes it runs."""

    name: str
    shows: str
    process: str
    main: Main
    siblings: Mapping[str, Main] = attrs.field(factory=dict)


EXAMPLES = (
    Example(
        name="birthdays",
        shows="open a db; set, get, exists, delete, get with a default",
        process=birthdays.PROCESS,
        main=birthdays.main,
    ),
    Example(
        name="transactions",
        shows="staged writes stay invisible until one commit applies them all",
        process=transactions.PROCESS,
        main=transactions.main,
    ),
    Example(
        name="sharing",
        shows="an owner shares read access with a process of another package",
        process=sharing.PROCESS,
        main=sharing.main,
        siblings={sharing.READER: sharing.reader},
    ),
    Example(
        name="wasi_shapes",
        shows="one db reached three ways: a handle, a label per call, attributes",
        process=wasi_shapes.PROCESS,
        main=wasi_shapes.main,
    ),
    Example(
        name="scans_counters",
        shows="batches, paged scans, an atomic counter and a retried transaction",
        process=scans_counters.PROCESS,
        main=scans_counters.main,
    ),
    Example(
        name="raw_wire",
        shows="msgpack bodies built by hand, the bytes any language sends",
        process=raw_wire.PROCESS,
        main=raw_wire.main,
    ),
    Example(
        name="process_lib_json",
        shows="JSON bodies as a Hyperware process's process_lib sends them, answered in JSON",
        process=process_lib_json.PROCESS,
        main=process_lib_json.main,
    ),
    Example(
        name="watch",
        shows="a cache kept in sync by a change feed, and a presence list with TTL",
        process=watch_example.PROCESS,
        main=watch_example.main,
    ),
)


def introduce(home: Path, *, first_run: bool) -> None:
    """Say what is about to happen."""
    print(f"kvruntime demo: a node whose home folder is {home}")
    print("The kv process kv:distro:sys keeps each package's dbs in LevelDB under its kv/")
    print("folder. The examples below are sibling processes that send kv messages.")
    if first_run:
        print("This is the first run on this home: every db starts empty.")
    else:
        print("This home holds the data of a previous run: watch the examples find it.")


async def run_all(home: Path) -> int:
    """Run every example on a node at ``home``, in turn; return the exit code."""
    failed: list[str] = []
    # $KVRUNTIME_STORAGE (issue 13; `make run-cluster` sets it): a Redis Cluster instead.
    async with Runtime(home=home, storage=os.environ.get("KVRUNTIME_STORAGE") or None) as rt:
        for number, example in enumerate(EXAMPLES, start=1):
            print()
            print(f"=== {number}/{len(EXAMPLES)} {example.name}: {example.shows}")
            print(f"    (process {example.process}; alone: python -m examples.{example.name})")
            try:
                await run_example(rt, example.process, example.main, siblings=example.siblings)
            except Exception as error:  # one failing example must not hide the others
                print(f"!!! the {example.name} example failed: {type(error).__name__}: {error}")
                failed.append(example.name)
    print()
    if failed:
        print(f"{len(failed)} of {len(EXAMPLES)} examples failed: {', '.join(failed)}.")
        return 1
    return 0


def conclude(home: Path, *, first_run: bool) -> None:
    """Show what stays on disk, and what a second run shows."""
    if os.environ.get("KVRUNTIME_STORAGE"):
        print(f"All {len(EXAMPLES)} examples ran; their dbs stay in the Redis Cluster.")
        return
    print(
        f"All {len(EXAMPLES)} examples ran and the runtime stopped. Its LevelDB dbs stay on disk:"
    )
    for db in sorted(path for path in (home / "kv").glob("*/*") if path.is_dir()):
        print(f"    {db.relative_to(home)}")
    if first_run:
        print("Run it again (make run): the examples will find what this run left.")
    else:
        print("Above, birthdays, transactions and scans_counters found what the previous run left.")


def cli() -> None:
    """``python -m examples.host --home DIR [-v]``."""
    args = home_argument_parser(__doc__).parse_args()
    configure_logging(args.verbose)
    home: Path = args.home.resolve()
    first_run = not (home / "kv").exists()
    try:
        introduce(home, first_run=first_run)
        code = run_program(lambda: run_all(home))
        if code == 0:
            conclude(home, first_run=first_run)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    cli()
