"""Ctrl-C (SIGINT) during ``kvruntime load`` from a pipe, sent to the real script's process.

Exit 130 with a message that says what was loaded; the db holds exactly the
chunks kv acknowledged before the interrupt (each chunk is atomic), and an
interrupt while the dump is still being read writes nothing at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kvruntime.cli._dumpformat import end_line, header_line, record_line
from kvruntime.cli.dumpload import CHUNK_ENTRIES

from .conftest import APP, KVRUNTIME, fill, kvr, ok, read

#: Seconds any one step may take.
BOUND = 60
#: Entries in the dump interrupted while it is written: many chunks of CHUNK_ENTRIES.
ENTRIES = 100 * CHUNK_ENTRIES


def _key(index: int) -> bytes:
    return b"key-%08d" % index


def _default_sigint() -> None:
    """In the load's child before exec: SIGINT at its default, as a shell leaves it for
    the job in the terminal's foreground. A test run started in the background (``&``
    in a script: a shell then ignores SIGINT for it) passes SIGINT ignored down to every
    child, and a Python that starts with SIGINT ignored keeps it ignored: Ctrl-C would
    not reach the load at all (its runtime phase installs a handler of its own)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _load(home: Path, db: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TERM="dumb", KVRUNTIME_HOME=str(home))
    return subprocess.Popen(
        [KVRUNTIME, "load", APP, db, "--create"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=_default_sigint,
    )


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.01)


def _log_bytes(db_dir: Path) -> int:
    """The bytes in the LevelDB write-ahead logs of ``db_dir`` (0 before it exists)."""
    total = 0
    for log in db_dir.glob("*.log") if db_dir.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):  # LevelDB rotates its log
            total += log.stat().st_size
    return total


def _reading_stdin(pid: int) -> bool:
    """Whether ``pid`` is blocked in read(0, ...) (Linux: /proc/PID/syscall; 0 is read)."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return fields[:2] == ["0", "0x0"]


def _signal_state(pid: int) -> str:
    """How ``pid`` treats signals and how many threads it runs (for a failure's message:
    a full suite under load once saw a load go on reading after its SIGINT)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError as exc:
        return f"(no /proc state: {exc})"
    wanted = ("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    return " ".join([*(line for line in status if line.startswith(wanted)), f"threads {threads}"])


def test_ctrl_c_while_the_dump_is_written_keeps_exactly_the_acknowledged_chunks(
    home: Path,
) -> None:
    fill(home, "other", [(b"k", b"v")])  # the home exists; the target db does not yet
    dump = header_line(APP, "copy") + b"".join(
        record_line(_key(i), b"value-%d" % i) for i in range(ENTRIES)
    )
    dump += end_line(ENTRIES)
    db_dir = home / "kv" / APP / "copy"
    with _load(home, "copy") as load:
        assert load.stdin is not None

        def feed() -> None:
            assert load.stdin is not None
            load.stdin.write(dump)
            load.stdin.close()

        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            # LevelDB's log grows with the first chunk's write: the load is under way
            _wait_for(lambda: _log_bytes(db_dir) > 0, "the first chunk's write")
            load.send_signal(signal.SIGINT)
            load.wait(timeout=BOUND)
        finally:
            load.kill()
            feeder.join(BOUND)
        assert load.stderr is not None
        err = load.stderr.read()
    message = err.decode()
    assert load.returncode == 130, message
    assert "Traceback" not in message
    found = re.search(
        r"interrupted: loaded (\d+) entries? into \[.*, copy\] in (\d+) chunks?", message
    )
    assert found is not None, message
    assert "the rest of the dump was not loaded" in message
    loaded, chunks = int(found[1]), int(found[2])
    assert 0 < loaded < ENTRIES, "the load ended before the interrupt: make the dump bigger"
    assert loaded == chunks * CHUNK_ENTRIES
    count = ok(kvr("scan", APP, "copy", "--count", home=home))
    assert count.strip() == str(loaded)  # nothing beyond what kv acknowledged
    last, missing = _key(loaded - 1), _key(loaded)
    got = read(home, "copy", [last, missing])
    assert got == {last: b"value-%d" % (loaded - 1), missing: None}


def test_ctrl_c_while_the_dump_is_still_coming_writes_and_creates_nothing(home: Path) -> None:
    fill(home, "other", [(b"k", b"v")])
    with _load(home, "copy") as load:
        assert load.stdin is not None
        try:
            load.stdin.write(header_line(APP, "copy") + record_line(b"a", b"1"))
            load.stdin.flush()  # and the pipe stays open: the dump is still coming
            _wait_for(lambda: _reading_stdin(load.pid), "the read of stdin")
            state = _signal_state(load.pid)
            load.send_signal(signal.SIGINT)
            # Not communicate(): it closes stdin at once, and a dump that ends there
            # races the SIGINT (the load may read the end first and exit 2). The pipe
            # stays open until the load has exited.
            try:
                load.wait(timeout=BOUND / 3)  # well before pytest's timeout: say what it was
            except subprocess.TimeoutExpired:
                after = _signal_state(load.pid)
                raise AssertionError(
                    f"the load went on after its SIGINT; before: {state}; after: {after}"
                ) from None
            assert load.stderr is not None
            err = load.stderr.read()
        finally:
            load.kill()
    message = err.decode()
    assert load.returncode == 130, f"{message}\nbefore the SIGINT: {state}"
    assert "interrupted while reading the dump: nothing was loaded" in message
    assert "Traceback" not in message
    assert not (home / "kv" / APP / "copy").exists()
