"""``kvruntime shell`` as the CLI tests drive it: on pipes, or on a pseudo-terminal.

Every wait is bounded (``BOUND`` seconds), so a shell that fails to end or to
answer fails its test instead of hanging the suite; every shell is killed and
reaped when its test ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

from .conftest import APP, KVRUNTIME

#: Seconds any one wait on a shell may take.
BOUND = 30


@contextlib.contextmanager
def piped(home: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``kvruntime shell`` on ``home`` with its stdin, stdout and stderr on pipes."""
    env = dict(os.environ, TERM="dumb", KVRUNTIME_HOME=str(home))
    pipe = subprocess.PIPE
    with subprocess.Popen(
        [KVRUNTIME, "shell"], stdin=pipe, stdout=pipe, stderr=pipe, env=env
    ) as shell:
        try:
            yield shell
        finally:
            shell.kill()


def read_until(fd: int, wanted: bytes, seen: bytearray, *, after: int = 0) -> None:
    """Read the terminal into ``seen`` until ``wanted`` appears past ``after``."""
    deadline = time.monotonic() + BOUND
    while wanted not in seen[after:]:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} never came; the terminal's end: {bytes(seen[-600:])!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the shell closed the terminal
                break


@contextlib.contextmanager
def on_a_terminal(home: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, bytearray]]:
    """``kvruntime shell`` with a new pseudo-terminal as its controlling terminal
    (Ctrl-C is SIGINT): the process, the terminal's controlling side, and what
    the terminal has shown (``read_until`` adds to it)."""
    controller, terminal = pty.openpty()
    env = dict(os.environ, TERM="xterm", KVRUNTIME_HOME=str(home), PROMPT_TOOLKIT_NO_CPR="1")
    shell = subprocess.Popen(
        [KVRUNTIME, "shell"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,  # then the terminal becomes the new session's
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(terminal)
    try:
        yield shell, controller, bytearray()
    finally:
        shell.kill()
        shell.wait()
        os.close(controller)


def interrupt_and_go_on(shell: subprocess.Popen[bytes], controller: int, seen: bytearray) -> None:
    """Ctrl-C the command running on the terminal; then the error and the prompt
    come, the runtime still serves (``get`` of APP's ``notes`` ``k``, which must
    hold ``still-here``), and Ctrl-D at the prompt ends the shell with 0."""
    os.write(controller, b"\x03")  # Ctrl-C: the terminal sends SIGINT
    read_until(controller, b"Error: interrupted", seen)
    after = seen.index(b"Error: interrupted")  # the prompt may be in the same read
    read_until(controller, b"kvruntime>", seen, after=after)
    os.write(controller, f"get {APP} notes k\r".encode())
    read_until(controller, b"still-here", seen, after=after)
    read_until(controller, b"kvruntime>", seen, after=seen.index(b"still-here", after))
    os.write(controller, b"\x04")  # at the prompt (a Ctrl-D typed before is the tty's)
    assert shell.wait(timeout=BOUND) == 0, bytes(seen[-600:])
