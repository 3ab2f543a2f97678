"""The progress bar of dump and load: drawn on a terminal, never on a stream that is not one.

The terminal tests run the real script on a pseudo-terminal; without one
the commands run in-process, their stderr a plain stream.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from kvruntime.cli._dumpformat import end_line, header_line, record_line

from .conftest import APP, KVRUNTIME, kvr, ok, read

#: Enough entries for several load chunks, small enough to stay fast.
ENTRIES = {b"k%05d" % i: b"value %05d" % i for i in range(3000)}
BAR = "━".encode()  # rich's bar is drawn with this character
ESC = b"\x1b["  # a terminal control sequence (cursor moves, colours)


def kvr_tty(*args: str, home: Path, stdin: Path | None, stdout: Path) -> tuple[int, bytes]:
    """Run ``kvruntime ARGS`` with stderr on a pseudo-terminal, and stdin from the file ``stdin``.

    With ``stdin`` None, stdin is the terminal too. stdout goes to the file
    ``stdout``. Returns the exit code and what the terminal received.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", KVRUNTIME_HOME=str(home))
    for name in (
        "COLUMNS",
        "LINES",
        "NO_COLOR",
        "FORCE_COLOR",
        "TTY_COMPATIBLE",
        "TTY_INTERACTIVE",
    ):
        env.pop(name, None)
    src = slave if stdin is None else os.open(stdin, os.O_RDONLY)
    with open(stdout, "wb") as out:
        proc = subprocess.Popen([KVRUNTIME, *args], stdin=src, stdout=out, stderr=slave, env=env)
    if src != slave:
        os.close(src)
    os.close(slave)
    received = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            received += data
    finally:
        os.close(master)
    return proc.wait(timeout=60), bytes(received)


def _dump_file(tmp_path: Path) -> Path:
    path = tmp_path / "entries.jsonl"
    lines = [header_line(APP, "src"), *(record_line(k, v) for k, v in ENTRIES.items())]
    path.write_bytes(b"".join(lines) + end_line(len(ENTRIES)))
    return path


def test_load_and_dump_draw_a_progress_bar_on_a_terminal(home: Path, tmp_path: Path) -> None:
    source = _dump_file(tmp_path)
    out = tmp_path / "load.out"
    code, tty = kvr_tty("load", APP, "dst", "--create", home=home, stdin=source, stdout=out)
    assert code == 0, tty.decode(errors="replace")
    assert f"load [{APP}, dst]".encode() in tty  # the bar's label, on the terminal
    assert BAR in tty
    assert b"kB" in tty  # bytes read of the file's size
    assert b"Traceback" not in tty
    assert out.read_bytes() == f"loaded 3000 entries into [{APP}, dst] in 3 chunks\n".encode()
    assert read(home, "dst", ENTRIES) == ENTRIES  # every key loaded

    dumped = tmp_path / "dump.out"
    code, tty = kvr_tty("dump", APP, "dst", home=home, stdin=source, stdout=dumped)
    assert code == 0, tty.decode(errors="replace")
    assert f"dump [{APP}, dst]".encode() in tty  # a spinner and a count (no total known)
    assert f"dumped 3000 entries of [{APP}, dst]".encode() in tty
    assert dumped.read_bytes().splitlines()[1:] == source.read_bytes().splitlines()[1:]


def test_without_a_terminal_there_is_no_bar(home: Path, tmp_path: Path) -> None:
    data = _dump_file(tmp_path).read_bytes()
    loaded = kvr("load", APP, "dst", "--create", home=home, stdin=data)
    assert ok(loaded) == f"loaded 3000 entries into [{APP}, dst] in 3 chunks\n"
    assert loaded.stderr == b""  # no bar, no control sequences
    dumped = kvr("dump", APP, "dst", home=home)
    assert dumped.stderr == f"dumped 3000 entries of [{APP}, dst]\n".encode()
    assert BAR not in dumped.stderr
    assert ESC not in dumped.stderr
    assert dumped.stdout.splitlines()[1:] == data.splitlines()[1:]


def test_load_with_a_terminal_on_stdin_says_to_give_a_file(home: Path, tmp_path: Path) -> None:
    code, tty = kvr_tty(
        "load", APP, "dst", "--create", home=home, stdin=None, stdout=tmp_path / "o"
    )
    assert code == 2
    assert b"stdin is a terminal: give the dump on stdin" in tty
    assert b"Traceback" not in tty
    assert not home.exists()  # refused before anything was created
