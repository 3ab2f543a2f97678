"""A real nats-server (Debian's), started per session on a free loopback port, stopped by PID.

A missing ``nats-server`` is a failure with the reason (``make test``
installs it with apt-get), never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.frozen
class NatsServer:
    """One running nats-server."""

    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


def start_nats_server(folder: Path) -> tuple[subprocess.Popen[bytes], NatsServer]:
    """Start nats-server on a free loopback port with its files under ``folder``."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(binary, os.X_OK):
        pytest.fail("nats-server is not installed (make test installs Debian's nats-server)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-l", str(folder / "server.log")],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"nats-server did not start: see {folder / 'server.log'}")
            time.sleep(0.02)
    return process, NatsServer(pid=process.pid, port=port)


def stop_by_pid(process: subprocess.Popen[bytes]) -> None:
    """Stop a server we started, by its PID."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server for the whole session."""
    process, server = start_nats_server(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        stop_by_pid(process)
