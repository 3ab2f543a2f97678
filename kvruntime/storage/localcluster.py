"""A local Redis Cluster for tests, benchmarks and ``make run-cluster``.

``LocalCluster(folder).start()`` runs ``masters`` masters and ``replicas``
replicas of each (one by default) of Debian's ``redis-server`` on free high
loopback ports
(each with its cluster bus port, port + 10000, free too), in ``folder``,
joins them with ``redis-cli --cluster create`` and waits until the cluster
is ``ok`` and every replica has finished its first sync (a replica that
has not refuses to fail over). ``stop()`` ends each server by its PID.

Failures are ``ClusterStartError`` with the reason (a missing binary, a
server that exited, with the tail of its log): a test fails with it, never
skips. Nothing here is global: two clusters in two folders run side by side.

``python -m kvruntime.storage.localcluster FOLDER -- COMMAND...`` starts one,
runs COMMAND with ``KVRUNTIME_STORAGE`` set to its URL, then stops it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs

__all__ = ["ClusterStartError", "LocalCluster"]


class ClusterStartError(RuntimeError):
    """The local cluster could not start; the message says why."""


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """``count`` loopback ports ``p`` with ``p`` and ``p + 10000`` both free."""
    rng = rng or random.Random()
    chosen: list[int] = []
    for _ in range(2000):
        port = rng.randrange(20000, 55000)
        taken = {q for p in chosen for q in (p, p + 10000)}
        if port in taken or port + 10000 in taken:
            continue
        if _free(port) and _free(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise ClusterStartError(f"found no {count} free port pairs (p, p+10000) on 127.0.0.1")


@attrs.define(eq=False)
class LocalCluster:
    """A Redis Cluster of local ``redis-server`` processes (see the module docstring)."""

    folder: Path = attrs.field(converter=Path)
    masters: int = 3
    #: Replicas per master.
    replicas: int = 1
    #: ``cluster-node-timeout``: how long a node may not answer before it is
    #: failed (and its replica promoted). Fault tests choose a shorter one.
    node_timeout_ms: int = 2000
    #: Extra ``redis-server`` arguments, e.g. ``["--appendfsync", "always"]``.
    extra: list[str] = attrs.Factory(list)
    ports: list[int] = attrs.field(init=False, factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = attrs.field(init=False, factory=dict)

    @property
    def url(self) -> str:
        """The ``redis-cluster://`` storage URL naming every node."""
        return "redis-cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, timeout: float = 60.0) -> LocalCluster:
        """Start the servers, create the cluster, wait until it serves (see above)."""
        exe, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if exe is None or cli is None:
            raise ClusterStartError(
                "redis-server/redis-cli not on PATH (`make test` installs Debian's redis-server)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = free_ports((1 + self.replicas) * self.masters)
        try:
            for port in self.ports:
                self._spawn(exe, port)
            deadline = time.monotonic() + timeout
            for port in self.ports:
                self._wait(lambda p=port: self._cli(p, "PING") == "PONG", deadline, f"{port} ping")
            created = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in self.ports),
                    *("--cluster-replicas", str(self.replicas), "--cluster-yes"),
                ],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            if created.returncode != 0:
                raise ClusterStartError(
                    "redis-cli --cluster create failed: " + created.stdout.decode()[-2000:]
                )
            for port in self.ports:
                self._wait(lambda p=port: self.ready(p), deadline, f"{port} cluster ok")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, exe: str, port: int) -> None:
        folder = (self.folder / str(port)).resolve()
        folder.mkdir(exist_ok=True)
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "no"]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout", str(self.node_timeout_ms)]
        args += ["--cluster-replica-validity-factor", "0"]
        # A replica's sync starts at once (Redis waits 5 s by default for more
        # replicas to share one diskless transfer): start-up and a revived
        # node's return take seconds less, and so does stop (a master waits
        # for its replicas to catch up before it exits).
        args += ["--repl-diskless-sync-delay", "0"]
        args += ["--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction"]
        # With --dir a relative --logfile fails: Redis changes directory first.
        args += ["--dir", str(folder), "--logfile", str(folder / "redis.log"), *self.extra]
        self.processes[port] = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def _cli(self, port: int, *command: str) -> str:
        cli = shutil.which("redis-cli") or "redis-cli"
        done = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(port), *command],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.stdout.decode().strip()

    def info(self, port: int, section: str) -> dict[str, str]:
        """``INFO section`` (or ``CLUSTER INFO`` for "cluster") of one node, as a dict."""
        text = self._cli(
            port, *(("CLUSTER", "INFO") if section == "cluster" else ("INFO", section))
        )
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {k.strip(): v.strip() for k, v in pairs}

    def ready(self, port: int) -> bool:
        """Whether the node sees the cluster ok and, as a replica, has synced."""
        if self.info(port, "cluster").get("cluster_state") != "ok":
            return False
        repl = self.info(port, "replication")
        return repl.get("role") == "master" or repl.get("master_link_status") == "up"

    def _wait(self, check: object, deadline: float, what: str) -> None:
        assert callable(check)
        while time.monotonic() < deadline:
            for port, process in self.processes.items():
                if process.poll() is not None:
                    raise ClusterStartError(f"redis-server on {port} exited: {self.log_tail(port)}")
            if check():
                return
            time.sleep(0.05)
        raise ClusterStartError(f"timed out waiting for {what}")

    def log_tail(self, port: int) -> str:
        """The last lines of one server's log."""
        try:
            lines = (self.folder / str(port) / "redis.log").read_text().splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-15:])

    def master_of(self, port: int) -> bool:
        """Whether the node on ``port`` is a master now."""
        return self.info(port, "replication").get("role") == "master"

    def owner(self, key: bytes | str, via: int | None = None) -> int:
        """The port of the master serving ``key``'s slot now (as node ``via`` sees it)."""
        asked = via if via is not None else next(p for p in self.ports if p in self.processes)
        name = key.decode("latin-1") if isinstance(key, bytes) else key
        slot = int(self._cli(asked, "CLUSTER", "KEYSLOT", name))
        for line in self._cli(asked, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            flags = fields[2].split(",")
            if "master" not in flags or "fail" in flags or "fail?" in flags:
                continue
            for span in fields[8:]:
                if span.startswith("["):
                    continue
                low, _, high = span.partition("-")
                if int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
        raise ClusterStartError(f"no master serves slot {slot} now")

    def replicas_of(self, port: int) -> list[int]:
        """The ports of the replicas of the master on ``port`` (as a live node sees it)."""
        asked = next(p for p in self.ports if p in self.processes)
        lines = [line.split() for line in self._cli(asked, "CLUSTER", "NODES").splitlines()]
        ids = {int(f[1].split(":")[1].split("@")[0]): f[0] for f in lines}
        return sorted(p for p, i in ids.items() for f in lines if f[0] == i and f[3] == ids[port])

    def config_set(self, port: int, name: str, value: str) -> None:
        """``CONFIG SET name value`` on one node."""
        if (answer := self._cli(port, "CONFIG", "SET", name, value)) != "OK":
            raise ClusterStartError(f"CONFIG SET {name} {value} on {port}: {answer}")

    def revive(self, port: int) -> None:
        """Start the server on ``port`` again (after ``kill``): it rejoins the cluster."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise ClusterStartError("redis-server not on PATH")
        self._spawn(exe, port)

    def kill(self, port: int) -> None:
        """kill -9 the server on ``port`` (a fault test's lost shard)."""
        process = self.processes.pop(port)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every running node is ready (see ``ready``); ClusterStartError if not."""
        deadline = time.monotonic() + timeout
        for port in list(self.processes):
            self._wait(lambda p=port: self.ready(p), deadline, f"{port} cluster ok")

    def stop(self) -> None:
        """Stop every server by its PID (SIGTERM, then SIGKILL after 5 s)."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()


def main(argv: list[str]) -> int:
    """``FOLDER -- COMMAND...``: run COMMAND on a fresh local cluster, then stop it."""
    if len(argv) < 3 or argv[1] != "--":
        print(
            "usage: python -m kvruntime.storage.localcluster FOLDER -- COMMAND...", file=sys.stderr
        )
        return 2
    cluster = LocalCluster(Path(argv[0])).start()
    try:
        print(f"cluster up: {cluster.url}", file=sys.stderr)
        env = dict(os.environ, KVRUNTIME_STORAGE=cluster.url)
        return subprocess.run(argv[2:], env=env, check=False).returncode
    finally:
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
