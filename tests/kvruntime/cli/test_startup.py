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
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from kvruntime.cli._app import COMMAND_MODULES
from kvruntime.cli._startup import run_once, start_up

from .conftest import APP, fail, fill, kvr, ok, read, script

#: ``kvruntime.cli.main`` on the arguments, then what the process loaded and
#: the collector's state, as JSON on stderr (stdout is the command's).
_PROBE = """
import gc, sys
from kvruntime.cli import cli
from kvruntime.cli._startup import run_once
sys.argv = ["kvruntime", *sys.argv[1:]]
code = run_once(lambda: cli(prog_name="kvruntime"))  # main() without its end()
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
    # kv's optimistic conflict check: with the first transaction
    "kvruntime.kvservice.conflicts",
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


# The console script's exit (``_startup`` invariant 4): nothing written is
# lost, and the exit codes are the interpreter's.

#: A value larger than any pipe's buffer.
_BIG = bytes(range(256)) * 12_000


def test_the_console_script_delivers_all_its_output_through_a_pipe(home: Path) -> None:
    fill(home, "notes", [(b"big", _BIG), *((b"k%05d" % i, b"v%d" % i) for i in range(3000))])
    got = script("get", APP, "notes", "big", home=home)
    assert (got.returncode, got.stdout) == (0, _BIG)
    scanned = script("scan", APP, "notes", "--prefix", "k", "--keys-only", home=home)
    assert scanned.returncode == 0
    assert scanned.stdout.decode().split() == [f"k{i:05d}" for i in range(3000)]


def test_the_console_script_keeps_its_exit_codes_and_error_output(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    fail(script("get", APP, "notes", "k", home=home / "missing"), 3, "")
    missing = script("get", APP, "nodb", "k", "--json", home=home)
    assert missing.returncode != 0
    doc = json.loads(missing.stdout or missing.stderr)
    assert doc["error"]["exit_code"] == missing.returncode
    usage = script("get", home=home)
    assert usage.returncode == 2
    assert b"Missing argument" in usage.stderr


def _end(body: str) -> subprocess.CompletedProcess[bytes]:
    """``body`` then ``_startup.end(7)`` in a fresh interpreter, its output piped."""
    code = f"import sys\nfrom kvruntime.cli._startup import end\n{body}\nend(7)\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)


def test_end_flushes_stdout_and_stderr_and_runs_the_atexit_functions() -> None:
    done = _end(
        "import atexit\n"
        "atexit.register(lambda: print('from atexit'))\n"
        "sys.stdout.write('x' * 300_000)\n"
        "sys.stdout.buffer.write(b'|raw|')\n"
        "sys.stderr.write('unflushed error')"
    )
    assert done.returncode == 7
    assert done.stdout == b"x" * 300_000 + b"|raw|from atexit\n"
    assert done.stderr == b"unflushed error"


def test_end_leaves_the_exit_to_the_interpreter_while_another_thread_runs() -> None:
    done = _end(
        "import threading, time\n"
        "def late():\n"
        "    time.sleep(0.2)\n"
        "    print('the thread finished', flush=True)\n"
        "threading.Thread(target=late).start()"
    )
    assert done.returncode == 7
    assert done.stdout == b"the thread finished\n"


def test_run_once_gives_the_exit_code_the_interpreter_would() -> None:
    def exits(code: object) -> Callable[[], None]:
        def command() -> None:
            raise SystemExit(code)

        return command

    try:
        assert run_once(lambda: None) == 0
        assert run_once(exits(None)) == 0
        assert run_once(exits(3)) == 3
        assert run_once(exits(130)) == 130
    finally:
        gc.unfreeze()


def test_run_once_prints_a_non_integer_exit_code_and_gives_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        assert run_once(lambda: sys.exit("the home is gone")) == 1
    finally:
        gc.unfreeze()
    assert capsys.readouterr().err == "the home is gone\n"


def test_the_identity_objects_a_get_builds_keep_objects_default_repr() -> None:
    # One object each (eq=False: compared by identity), shown by identity;
    # attrs generates and compiles no __repr__ for them at every start.
    import attrs

    from kvruntime.cli._session import OpenHome, Session
    from kvruntime.kernel.bus import Bus, Slot
    from kvruntime.kernel.capabilities import CapabilityStore
    from kvruntime.kernel.process import ProcessContext, ProcessHandle
    from kvruntime.kvservice.changelog import DbLog, Feeds, WatchState
    from kvruntime.kvservice.conflicts import ReadSet, WriteLog
    from kvruntime.kvservice.expiry import DbExpiry, Expiries
    from kvruntime.kvservice.loop import KvProcess
    from kvruntime.kvservice.metrics import KvMetrics
    from kvruntime.kvservice.transactions import Transaction, Transactions
    from kvruntime.runtime import Runtime
    from kvruntime.storage.databases import Databases
    from kvruntime.storage.leveldb import LevelDbStore

    identity = [
        OpenHome, Session, CapabilityStore, ProcessContext, ProcessHandle, DbLog, Feeds,
        WatchState, ReadSet, WriteLog, DbExpiry, Expiries, Transaction, Transactions,
        Runtime, Databases, LevelDbStore, Bus, Slot, KvProcess, KvMetrics,
    ]  # fmt: skip
    assert [c.__name__ for c in identity if {"__repr__", "__eq__"} & set(vars(c))] == []
    assert repr(ReadSet()).startswith("<kvruntime.kvservice.conflicts.ReadSet object at 0x")
    # Plain slotted classes but for three (issue 15, ``ATTRS_BUILT_FOR_A_GET``):
    # no attrs builder at start, no instance __dict__, weak references as before.
    assert [c.__name__ for c in identity if attrs.has(c)] == ["ReadSet", "WriteLog", "Runtime"]
    for cls in identity:
        assert "__dict__" not in vars(cls), cls
        assert "__weakref__" in vars(cls) or attrs.has(cls), cls
    session = Session(rt=Runtime(home=Path("unused")))
    with pytest.raises(AttributeError):
        session.other = 1  # type: ignore[attr-defined]
    assert session != Session(rt=session.rt)
    assert weakref.ref(session)() is session


#: The classes of kvruntime and protocol that attrs' class builder still makes
#: at every start of a ``get`` (issue 15): the ids (hashed on every send, with
#: attrs' cached hash), the kernel's messages and capability (built and compared
#: on every send) and ``Runtime`` (public, with a converter and validators that
#: attrs also runs on assignment). Every other class a ``get`` loads is a plain
#: slotted class or built by ``@variant`` (``protocol/variant.py``): a new
#: attrs class on a get's path fails here, to be weighed (~2-5 M instructions
#: of attrs' builder each, ``benchmarks/README.md``) before it joins the list.
ATTRS_BUILT_FOR_A_GET = [
    "kvruntime.kernel.message.Capability",
    "kvruntime.kernel.message.Request",
    "kvruntime.kernel.message.Response",
    "kvruntime.runtime.Runtime",
    "protocol.ids.Address",
    "protocol.ids.PackageId",
    "protocol.ids.ProcessId",
]


def test_the_classes_a_get_loads_skip_attrs_class_builder_but_for_a_few(filled: Path) -> None:
    # ``protocol/variant.py``: the ~80 message, error and wire-shape classes
    # and kvruntime's value types (``KvConfig``, the action rules, ``Page``...)
    # are built by ``@variant``; kvruntime's identity objects (the bus, the kv
    # process and its parts, the stores, the CLI's session) are plain classes.
    import importlib

    import attrs

    run = _probe("get", APP, "notes", "k", "--home", str(filled))
    assert run.code == 0
    ours = [
        name
        for name in run.modules
        if name.split(".")[0] in ("kvruntime", "protocol") and "._c" not in name
    ]
    assert len(ours) > 60  # the probe saw the whole get
    classes = [
        value
        for name in ours
        for value in vars(importlib.import_module(name)).values()
        if isinstance(value, type) and value.__module__ == name
    ]
    built_by_attrs = sorted(
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if attrs.has(c) and "__attrs_props__" in vars(c)
    )
    assert built_by_attrs == ATTRS_BUILT_FOR_A_GET
    # the others with attrs' fields are the @variant ones (some eighty)
    assert sum(1 for c in classes if attrs.has(c) and "__attrs_props__" not in vars(c)) > 80
