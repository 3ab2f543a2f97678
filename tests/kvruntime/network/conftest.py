"""Real nats-servers (Debian's) on loopback, started and stopped by PID.

One 3-server cluster per session (per pytest-xdist worker: each worker
starts its own) serves every test that leaves its servers alone
(``nats_server``, ``nats_cluster``, ``secured_nats``). Tests share its
servers but not their subjects: each test gets a NATS account of its own
(a user ``t<n>`` with password ``pw-t<n>`` in its URLs), and NATS keeps
accounts' subjects apart, so two tests' ``kvr.in.bob_os`` never meet and the
node names in the tests stay plain ``alice.os`` and ``bob.os``. The users
with subject permissions (``secured_nats``) are one more account of the
same cluster. A test that kills a server (``own_nats_cluster``) starts a
cluster of its own.

Every server binds the ports the kernel gives it (``-1``: client, route and
monitor ports alike) and the fixture reads them from the server's own log
lines, so no port is picked before its server binds it and no other
process can take it in between. A missing ``nats-server``, or one that does
not start, is a failure with the reason and its log, never a skip
(``make test`` installs it with apt-get).
"""

from __future__ import annotations

import json
import os
import re
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

#: A clustered server is ready once it listens for clients and for routes.
_LISTENING = re.compile(
    r"(?:Listening for (client|route) connections|Starting http (monitor)) on 127\.0\.0\.1:(\d+)"
)

#: The fixtures that hand a test an account of the session cluster.
_ACCOUNT_FIXTURES = ("nats_server", "nats_cluster")

#: Accounts beyond one per test using those fixtures, for tests that take
#: more themselves (``SessionCluster.account``).
SPARE_ACCOUNTS = 4


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (for a URL nothing answers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.frozen(kw_only=True)
class NatsServer:
    """One running nats-server, seen as ``user`` (no user: the server's default)."""

    pid: int
    port: int
    user: str = ""

    @property
    def url(self) -> str:
        login = f"{self.user}:pw-{self.user}@" if self.user else ""
        return f"nats://{login}127.0.0.1:{self.port}"


@attrs.frozen(kw_only=True)
class Started:
    """A nats-server this session started, and the ports its log says it bound (0: none)."""

    process: subprocess.Popen[bytes]
    port: int
    route_port: int = 0
    monitor_port: int = 0

    @property
    def server(self) -> NatsServer:
        return NatsServer(pid=self.process.pid, port=self.port)


def launch_nats_server(folder: Path, *options: str) -> Started:
    """Start nats-server on loopback ports of the kernel's choosing, its files under ``folder``.

    Returns once *its* log (lines prefixed with its PID) says it is ready and
    lists every port asked for (``--cluster ...:-1``, ``-m -1``); fails the
    test with the log's tail when it exits or is not ready within 10 s.
    """
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(binary, os.X_OK):
        pytest.fail("nats-server is not installed (make test installs Debian's nats-server)")
    folder.mkdir(parents=True, exist_ok=True)
    log, out = folder / "server.log", folder / "server.out"
    with out.open("wb") as output:  # what it says before its log is open (a bad option)
        process = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", "-1", "-l", str(log), *options],
            cwd=folder,
            stdout=output,
            stderr=output,
        )
    wanted = {"client"}
    if "--cluster" in options:
        wanted.add("route")
    if "-m" in options:
        wanted.add("monitor")
    deadline = time.monotonic() + 10
    while (ports := _ready_ports(log, process.pid)) is None or not wanted <= ports.keys():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            process.wait()
            pytest.fail(
                f"nats-server {' '.join(options)} did not start:\n{_tail(log)}\n{_tail(out)}"
            )
        time.sleep(0.02)
    return Started(
        process=process,
        port=ports["client"],
        route_port=ports.get("route", 0),
        monitor_port=ports.get("monitor", 0),
    )


def start_nats_server(folder: Path, *options: str) -> tuple[subprocess.Popen[bytes], NatsServer]:
    """A standalone nats-server (see ``launch_nats_server``), and how to reach it."""
    started = launch_nats_server(folder, *options)
    return started.process, started.server


def _ready_ports(log: Path, pid: int) -> dict[str, int] | None:
    """The ports server ``pid`` logged it listens on, once it logged it is ready; else None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    mine = [line for line in lines if line.startswith(f"[{pid}] ")]
    if not any("Server is ready" in line for line in mine):
        return None
    return {
        match[1] or match[2]: int(match[3])
        for line in mine
        if (match := _LISTENING.search(line)) is not None
    }


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {log})"


def stop_by_pid(process: subprocess.Popen[bytes]) -> None:
    """Stop a server we started, by its PID."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def _routes(monitor_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/routez", timeout=1) as answer:
        routes: int = json.load(answer)["num_routes"]
        return routes


def start_nats_cluster(folder: Path, *options: str) -> list[Started]:
    """Three clustered nats-servers, returned once each has routes to the other two.

    Each server is told the route ports of those started before it (route
    connections go both ways, so every pair is joined), which lets each one
    bind a port of the kernel's choosing. On failure, those started are stopped.
    """
    started: list[Started] = []
    try:
        for i in range(3):
            routes = ",".join(f"nats://127.0.0.1:{s.route_port}" for s in started)
            started.append(
                launch_nats_server(
                    folder / f"nats{i}",
                    "--cluster_name",
                    "kvr",
                    "--cluster",
                    "nats://127.0.0.1:-1",
                    *(("--routes", routes) if routes else ()),
                    "-m",
                    "-1",
                    *options,
                )
            )
        deadline = time.monotonic() + 15
        while not all(_routes(s.monitor_port) >= 2 for s in started):
            if time.monotonic() > deadline:
                logs = "\n".join(_tail(folder / f"nats{i}" / "server.log") for i in range(3))
                pytest.fail(f"the NATS cluster did not form its routes within 15 s:\n{logs}")
            time.sleep(0.05)
    except BaseException:
        for server in started:
            stop_by_pid(server.process)
        raise
    return started


@attrs.frozen(kw_only=True)
class NatsCluster:
    """Three clustered nats-servers, seen from one account."""

    servers: list[NatsServer]

    @property
    def urls(self) -> str:
        return ",".join(server.url for server in self.servers)


@attrs.frozen(kw_only=True)
class OwnNatsCluster(NatsCluster):
    """A test's own cluster: ``kill`` stops one of its servers by its PID (SIGKILL)."""

    processes: list[subprocess.Popen[bytes]]

    def kill(self, port: int) -> None:
        for server, process in zip(self.servers, self.processes, strict=True):
            if server.port == port:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return
        raise ValueError(f"no server of this cluster on port {port}")


#: The NATS users of the secured account: one per node, and a spy.
SECURED_USERS = ("alice.os", "bob.os", "spy")


def _secured_user(user: str) -> str:
    """``user``'s entry: it publishes to any ``kvr.in.>`` inbox and subscribes
    only to ``kvr.in.<itself>`` and its replies."""
    name = user.replace(".", "_")
    inbox = f"kvr.in.{name}"
    return (
        f'{{user: "{name}", password: "pw-{name}", permissions: {{'
        f'publish: "kvr.in.>", subscribe: ["{inbox}", "{inbox}.r.>"]}}}}'
    )


def accounts_config(accounts: int) -> str:
    """nats-server accounts: ``t0`` .. ``t<accounts - 1>`` (one user each, no limits), and
    ``secured`` with the users of ``SECURED_USERS``."""
    lines = [f'  t{n}: {{users: [{{user: "t{n}", password: "pw-t{n}"}}]}}' for n in range(accounts)]
    secured = ", ".join(_secured_user(user) for user in SECURED_USERS)
    lines.append(f"  secured: {{users: [{secured}]}}")
    return "accounts {\n" + "\n".join(lines) + "\n}\n"


@attrs.define(eq=False)
class SessionCluster:
    """This session's cluster; ``account`` hands out each of its test accounts once."""

    servers: list[NatsServer]
    accounts: int
    taken: int = 0

    def account(self) -> str:
        if self.taken >= self.accounts:
            pytest.fail(
                f"the session's NATS cluster has {self.accounts} test accounts, all taken "
                "(one per collected test that uses nats_server or nats_cluster, and SPARE_ACCOUNTS)"
            )
        self.taken += 1
        return f"t{self.taken - 1}"


@pytest.fixture(scope="session")
def session_nats_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SessionCluster]:
    """The session's 3-server cluster, with one account for each test that will want one."""
    accounts = SPARE_ACCOUNTS + sum(
        any(name in getattr(item, "fixturenames", ()) for name in _ACCOUNT_FIXTURES)
        for item in request.session.items
    )
    folder = tmp_path_factory.mktemp("nats-cluster")
    config = folder / "accounts.conf"
    config.write_text(accounts_config(accounts))
    started = start_nats_cluster(folder, "-c", str(config))
    try:
        yield SessionCluster(servers=[s.server for s in started], accounts=accounts)
    finally:
        for server in started:
            stop_by_pid(server.process)


@pytest.fixture
def nats_cluster(session_nats_cluster: SessionCluster) -> NatsCluster:
    """The session's cluster, seen from an account of this test's own."""
    user = session_nats_cluster.account()
    return NatsCluster(
        servers=[attrs.evolve(server, user=user) for server in session_nats_cluster.servers]
    )


@pytest.fixture
def nats_server(nats_cluster: NatsCluster) -> NatsServer:
    """A server of the session's cluster, seen from an account of this test's own."""
    return nats_cluster.servers[0]


@pytest.fixture
def own_nats_cluster(tmp_path: Path) -> Iterator[OwnNatsCluster]:
    """A 3-server cluster of this test's own, for a test that kills its servers."""
    started = start_nats_cluster(tmp_path / "nats")
    try:
        yield OwnNatsCluster(
            servers=[s.server for s in started], processes=[s.process for s in started]
        )
    finally:
        for server in started:
            stop_by_pid(server.process)


@attrs.frozen
class SecuredNats:
    """A nats-server whose users may subscribe only to their own node's inbox."""

    port: int

    def url(self, user: str) -> str:
        name = user.replace(".", "_")
        return f"nats://{name}:pw-{name}@127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def secured_nats(session_nats_cluster: SessionCluster) -> SecuredNats:
    """The session cluster's account with subject permissions: each node's user publishes
    to any ``kvr.in.>`` inbox, and subscribes only to ``kvr.in.<itself>`` and its replies."""
    return SecuredNats(port=session_nats_cluster.servers[0].port)
