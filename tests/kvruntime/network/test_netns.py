"""Two nodes in two network namespaces, the nats-server in a third, joined by veth pairs.

As on three hosts: each runtime sees only its own link to the server's
namespace (its own address, no loopback path to the others). The fixture
creates the namespaces and veth pairs (``ip netns``, root) and removes
them; a machine that does not allow it is a failure with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from kvruntime import node_public_key

from .conftest import stop_by_pid

REPO = Path(__file__).resolve().parents[3]


@attrs.frozen
class Hosts:
    """Namespaces server, a and b: a reaches the server at ``url_a``, b at ``url_b``."""

    server: str
    a: str
    b: str
    url_a: str
    url_b: str

    def command(self, namespace: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", namespace, *argv]


def _ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"ip {' '.join(argv)} failed (root and ip netns are needed): {done.stderr}")


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    """Three namespaces, two veth pairs, and a nats-server in the middle one; all removed after."""
    if shutil.which("ip") is None:
        pytest.fail("the ip command (iproute2) is missing")
    tag = f"kv{os.getpid() % 100_000}"
    names = Hosts(
        server=f"{tag}s",
        a=f"{tag}a",
        b=f"{tag}b",
        url_a="nats://10.77.1.1:4222",
        url_b="nats://10.77.2.1:4222",
    )
    made: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        for namespace in (names.server, names.a, names.b):
            _ip("netns", "add", namespace)
            made.append(namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        for side, subnet in ((names.a, 1), (names.b, 2)):
            inner, outer = f"{side}0", f"{side}1"
            _ip(
                "link",
                "add",
                inner,
                "netns",
                names.server,
                "type",
                "veth",
                "peer",
                outer,
                "netns",
                side,
            )
            _ip("-n", names.server, "addr", "add", f"10.77.{subnet}.1/24", "dev", inner)
            _ip("-n", side, "addr", "add", f"10.77.{subnet}.2/24", "dev", outer)
            _ip("-n", names.server, "link", "set", inner, "up")
            _ip("-n", side, "link", "set", outer, "up")
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not os.access(binary, os.X_OK):
            pytest.fail("nats-server is not installed (make test installs Debian's nats-server)")
        log = tmp_path / "nats.log"
        server = subprocess.Popen(
            names.command(names.server, binary, "-a", "0.0.0.0", "-p", "4222", "-l", str(log)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (log.exists() and "Server is ready" in log.read_text()):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nats-server did not start in its namespace: see {log}")
            time.sleep(0.02)
        yield names
    finally:
        if server is not None:
            stop_by_pid(server)
        for namespace in made:  # removing a namespace removes its end of each veth pair
            subprocess.run(["ip", "netns", "del", namespace], check=False)


def test_two_nodes_in_two_namespaces_talk_through_a_server_in_a_third(
    hosts: Hosts, tmp_path: Path
) -> None:
    homes = {name: tmp_path / name for name in ("alice.os", "bob.os")}
    keys = {name: node_public_key(home) for name, home in homes.items()}
    bob = subprocess.Popen(
        hosts.command(
            hosts.b,
            sys.executable,
            "-m",
            "tests.kvruntime.network.bob_node",
            str(homes["bob.os"]),
            "bob.os",
            hosts.url_b,
            f"alice.os={keys['alice.os']}",
        ),
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert bob.stdout is not None
        assert bob.stdout.readline() == b"ready\n"
        alice = subprocess.run(
            hosts.command(
                hosts.a,
                sys.executable,
                "-m",
                "tests.kvruntime.network.alice_node",
                str(homes["alice.os"]),
                "alice.os",
                hosts.url_a,
                f"bob.os={keys['bob.os']}",
            ),
            cwd=REPO,
            capture_output=True,
            timeout=60,
            check=False,
        )
        # And alice's namespace has no path to bob's but through the server's.
        reach = subprocess.run(
            hosts.command(hosts.a, "ip", "route", "get", "10.77.2.2"),
            capture_output=True,
            check=False,
        )
    finally:
        assert bob.stdin is not None
        bob.stdin.close()
        try:
            bob.wait(timeout=10)
        finally:
            if bob.poll() is None:
                bob.kill()
                bob.wait()
            assert bob.stdout is not None
            bob.stdout.close()
    assert alice.returncode == 0, alice.stderr.decode()[-2000:]
    answers = json.loads(alice.stdout.decode().strip().splitlines()[-1])
    assert answers == {"echo": "hello", "kv": "ErrResponse(error=RemoteNotAllowed())"}
    assert reach.returncode != 0  # "Network is unreachable": not a host route in disguise
    assert bob.returncode == 0
