"""A real nats-server (Debian's), started per session on a free loopback port, stopped by PID.

A missing ``nats-server`` is a failure with the reason (``make test``
installs it with apt-get), never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
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


def start_nats_server(folder: Path, *options: str) -> tuple[subprocess.Popen[bytes], NatsServer]:
    """Start nats-server on a free loopback port with its files under ``folder``."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(binary, os.X_OK):
        pytest.fail("nats-server is not installed (make test installs Debian's nats-server)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-l", str(folder / "server.log"), *options],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Ready when *its* log says so: under pytest-xdist another worker's server
    # could answer on a port this one failed to bind (then this one exits).
    log, ready = folder / "server.log", f"[{process.pid}] "
    deadline = time.monotonic() + 10
    while not _says_ready(log, ready, port):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            process.wait()
            pytest.fail(f"nats-server did not start on port {port}: see {log}")
        time.sleep(0.02)
    return process, NatsServer(pid=process.pid, port=port)


def _says_ready(log: Path, prefix: str, port: int) -> bool:
    """Whether ``log`` has the server with log prefix ``prefix`` ready on ``port``."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return False
    mine = [line for line in lines if line.startswith(prefix)]
    listening = f"Listening for client connections on 127.0.0.1:{port}"
    return any(listening in line for line in mine) and any(
        "Server is ready" in line for line in mine
    )


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


def _routes(monitor_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/routez", timeout=1) as answer:
        routes: int = json.load(answer)["num_routes"]
        return routes


@attrs.frozen
class NatsCluster:
    """Three clustered nats-servers; ``kill`` stops one by its PID (SIGKILL)."""

    servers: list[NatsServer]
    processes: list[subprocess.Popen[bytes]]

    @property
    def urls(self) -> str:
        return ",".join(server.url for server in self.servers)

    def kill(self, port: int) -> None:
        for server, process in zip(self.servers, self.processes, strict=True):
            if server.port == port:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return
        raise ValueError(f"no server of this cluster on port {port}")


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A 3-server NATS cluster on free loopback ports, stopped by PID afterwards."""
    cluster_ports = [free_port() for _ in range(3)]
    monitor_ports = [free_port() for _ in range(3)]
    started: list[tuple[subprocess.Popen[bytes], NatsServer]] = []
    try:
        for i in range(3):
            routes = ",".join(
                f"nats://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i
            )
            started.append(
                start_nats_server(
                    tmp_path / f"nats{i}",
                    "--cluster_name",
                    "kvr",
                    "--cluster",
                    f"nats://127.0.0.1:{cluster_ports[i]}",
                    "--routes",
                    routes,
                    "-m",
                    str(monitor_ports[i]),
                )
            )
        deadline = time.monotonic() + 15
        while not all(_routes(port) >= 2 for port in monitor_ports):
            if time.monotonic() > deadline:
                pytest.fail("the NATS cluster did not form its routes within 15 s")
            time.sleep(0.05)
        yield NatsCluster(
            servers=[server for _, server in started], processes=[p for p, _ in started]
        )
    finally:
        for process, _ in started:
            stop_by_pid(process)


#: The NATS users of the secured server: one per node, and a spy.
SECURED_USERS = ("alice.os", "bob.os", "spy")


@attrs.frozen
class SecuredNats:
    """A nats-server whose users may subscribe only to their own node's inbox."""

    port: int

    def url(self, user: str) -> str:
        name = user.replace(".", "_")
        return f"nats://{name}:pw-{name}@127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredNats]:
    """nats-server with subject permissions: each node's user publishes to any
    ``kvr.in.>`` inbox, and subscribes only to ``kvr.in.<itself>`` and its replies."""
    folder = tmp_path_factory.mktemp("nats-secured")
    users = []
    for user in SECURED_USERS:
        name = user.replace(".", "_")
        inbox = f"kvr.in.{name}"
        users.append(
            f'{{user: "{name}", password: "pw-{name}", permissions: {{'
            f'publish: "kvr.in.>", subscribe: ["{inbox}", "{inbox}.r.>"]}}}}'
        )
    config = folder / "nats.conf"
    config.write_text("authorization {\n  users = [\n    " + "\n    ".join(users) + "\n  ]\n}\n")
    process, server = start_nats_server(folder, "-c", str(config))
    try:
        yield SecuredNats(port=server.port)
    finally:
        stop_by_pid(process)
