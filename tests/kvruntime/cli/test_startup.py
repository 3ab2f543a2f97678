"""What a ``kvruntime get`` loads, and how its process treats the collector (issue 15).

Structure, not timing: ``make bench-startup`` measures the time. A ``get``
run as the console script runs it (``kvruntime.cli.main`` in a fresh
interpreter) still starts a real Runtime on the home and reads through
kv:distro:sys; these tests pin that it loads none of what only other
commands use, that the process freezes its start-up heap from the collector
and collects again during the work (``cli/_startup.py``), and that the CLI
run in-process never touches the collector.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from kvruntime.cli._app import COMMAND_MODULES
from kvruntime.cli._startup import run_once, start_up

from .conftest import APP, fill, kvr, ok, read

#: ``kvruntime.cli.main`` on the arguments, then what the process loaded and
#: the collector's state, as JSON on stderr (stdout is the command's).
_PROBE = """
import gc, sys
from kvruntime.cli import main
sys.argv = ["kvruntime", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
loaded = sorted(sys.modules)
import json
sys.stdout.flush()
state = {"code": code, "modules": loaded, "frozen": gc.get_freeze_count(),
         "enabled": gc.isenabled()}
print(json.dumps(state), file=sys.stderr)
"""

#: What a ``get`` does not use: the other commands, the explorer and the
#: shell with their libraries, the other storage engines and the network.
NOT_FOR_A_GET = [
    *sorted({f"kvruntime.cli.{m}" for m in COMMAND_MODULES.values()} - {"kvruntime.cli.keys"}),
    "kvruntime.explorer",
    "starlette",
    "uvicorn",
    "jinja2",
    "prometheus_client",
    "prompt_toolkit",
    "rich",
    "kvruntime.storage.memory",
    "kvruntime.storage.redis_cluster",
    "redis",
    "kvruntime.kvservice.networked",
    "kvruntime.kernel.nats_transport",
    "nats",
    "nacl",
    # the standard library's heavier corners: secrets (hmac, hashlib), shutil
    "secrets",
    "hmac",
    "shutil",
]


class Probe(NamedTuple):
    """What ``_PROBE`` saw: the command's stdout and exit code, the modules
    loaded, and the collector's state at the end."""

    stdout: bytes
    code: int
    modules: set[str]
    frozen: int
    enabled: bool


def _probe(*args: str) -> Probe:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, check=True, timeout=60
    )
    *_, last = done.stderr.decode().splitlines()
    state = json.loads(last)
    return Probe(
        stdout=done.stdout,
        code=state["code"],
        modules=set(state["modules"]),
        frozen=state["frozen"],
        enabled=state["enabled"],
    )


@pytest.fixture
def filled(home: Path) -> Path:
    fill(home, "notes", [(b"k", b"value")])
    return home


def test_a_get_loads_a_runtime_and_nothing_only_other_commands_use(filled: Path) -> None:
    caps = ok(kvr("caps", "--json", home=filled))
    run = _probe("get", APP, "notes", "k", "--home", str(filled))
    assert run.code == 0
    assert run.stdout == b"value"  # a pipe: the raw bytes
    loaded = run.modules
    # a real runtime on LevelDB, the kv process, the client and the codec
    for needed in ("kvruntime.runtime", "kvruntime.kvservice.loop", "plyvel", "protocol.codec"):
        assert needed in loaded
    assert sorted(loaded & set(NOT_FOR_A_GET)) == []
    # and the command left no grant behind (``_session`` invariant 3)
    assert ok(kvr("caps", "--json", home=filled)) == caps


def test_the_console_script_freezes_its_start_up_heap_and_collects_during_the_work(
    filled: Path,
) -> None:
    run = _probe("get", APP, "notes", "k", "--home", str(filled))
    assert run.code == 0
    assert run.frozen > 0
    assert run.enabled is True


def test_a_failing_command_of_the_console_script_collects_again(home: Path) -> None:
    run = _probe("get", APP, "notes", "k", "--home", str(home / "missing"))
    assert run.code == 3
    assert run.enabled is True


def test_the_cli_in_process_leaves_the_collector_alone(filled: Path) -> None:
    before = gc.get_freeze_count()
    assert ok(kvr("get", APP, "notes", "k", "--text", home=filled)) == "value\n"
    assert read(filled, "notes", [b"k"]) == {b"k": b"value"}
    assert gc.get_freeze_count() == before
    assert gc.isenabled()


def test_start_up_pauses_the_collector_until_started_then_freezes() -> None:
    seen: list[object] = []

    def command() -> None:
        before = gc.get_freeze_count()
        with start_up() as imported:  # the command's module
            seen.append(gc.isenabled())
        seen.append(gc.isenabled())
        with pytest.raises(RuntimeError), start_up():  # a failed block collects again
            raise RuntimeError("boom")
        seen.append(gc.isenabled())
        with start_up(ends=True) as started:  # the runtime's imports and start
            seen.append(gc.isenabled())
            started()
            seen.append(gc.isenabled())
            frozen = gc.get_freeze_count()
            started()  # once only: nothing more frozen
            seen.append(before < gc.get_freeze_count() <= frozen)
        with start_up() as later:  # the start-up is over: a plain block
            seen.append(gc.isenabled())
            later()
        imported()  # a stale one does nothing
        seen.append(gc.isenabled())

    try:
        run_once(command)
        assert seen == [False, True, True, False, True, True, True, True]
        assert gc.get_freeze_count() > 0  # run_once froze the heap for the exit
    finally:
        gc.unfreeze()  # this test process collects its objects as before
    assert gc.isenabled()


def test_start_up_is_a_plain_block_outside_the_console_script() -> None:
    before = gc.get_freeze_count()
    with start_up(ends=True) as started:
        assert gc.isenabled()
        started()
    assert gc.get_freeze_count() == before
