"""Nodes reach a nats-server over TLS (``tls://`` URLs), its certificate from a CA the test makes.

The CA and the server's certificate are made here with openssl; each node
runs in its own OS process and trusts the CA through ``SSL_CERT_FILE`` (as
a host would through its trust store). A node that does not trust the
server's CA does not connect at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from kvruntime import node_public_key

from .conftest import start_nats_server, stop_by_pid

REPO = Path(__file__).resolve().parents[3]


def _openssl(folder: Path, *argv: str) -> None:
    done = subprocess.run(
        ["openssl", *argv], cwd=folder, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"openssl {' '.join(argv[:2])} failed: {done.stderr[-500:]}")


def make_ca(folder: Path, name: str) -> None:
    """``{name}.pem`` and ``{name}.key``: a self-signed CA, for a day."""
    _openssl(
        folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1",
        "-subj", f"/CN={name}",
    )  # fmt: skip


@attrs.frozen
class TlsNats:
    """A nats-server that requires TLS; ``ca`` signed its certificate, ``other_ca`` did not."""

    url: str
    ca: Path
    other_ca: Path


@pytest.fixture
def tls_nats(tmp_path: Path) -> Iterator[TlsNats]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing (make test installs it with nats-server)")
    folder = tmp_path / "pki"
    folder.mkdir()
    make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    _openssl(
        folder, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        folder, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext",
    )  # fmt: skip
    process, server = start_nats_server(
        tmp_path / "nats",
        "--tls",
        "--tlscert",
        str(folder / "server.pem"),
        "--tlskey",
        str(folder / "server.key"),
    )
    try:
        yield TlsNats(
            url=f"tls://127.0.0.1:{server.port}",
            ca=folder / "ca.pem",
            other_ca=folder / "other-ca.pem",
        )
    finally:
        stop_by_pid(process)


def _node(module: str, home: Path, name: str, url: str, peer: str, key: str) -> list[str]:
    """The command of a node (``bob_node`` or ``alice_node``) in its own process."""
    script = f"tests.kvruntime.network.{module}"
    return [sys.executable, "-m", script, str(home), name, url, f"{peer}={key}"]


def test_nodes_talk_over_tls_and_a_node_that_does_not_trust_the_ca_cannot_connect(
    tls_nats: TlsNats, tmp_path: Path
) -> None:
    homes = {name: tmp_path / name for name in ("alice.os", "bob.os")}
    keys = {name: node_public_key(home) for name, home in homes.items()}
    trusting = {**os.environ, "SSL_CERT_FILE": str(tls_nats.ca)}
    distrusting = {**os.environ, "SSL_CERT_FILE": str(tls_nats.other_ca)}
    bob_argv = _node(
        "bob_node", homes["bob.os"], "bob.os", tls_nats.url, "alice.os", keys["alice.os"]
    )
    bob = subprocess.Popen(
        bob_argv, cwd=REPO, env=trusting, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert bob.stdout is not None
        assert bob.stdout.readline() == b"ready\n"
        alice_argv = _node(
            "alice_node", homes["alice.os"], "alice.os", tls_nats.url, "bob.os", keys["bob.os"]
        )
        alice = subprocess.run(
            alice_argv, cwd=REPO, env=trusting, capture_output=True, timeout=60, check=False
        )
        # A certificate that does not verify ends the try at once: well before
        # the connect's budget for unreachable servers (8.5 s), which it waited
        # out before (nats-py hangs after a failed handshake).
        refused = subprocess.run(
            alice_argv, cwd=REPO, env=distrusting, capture_output=True, timeout=6, check=False
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
    assert refused.returncode != 0
    assert b"CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert bob.returncode == 0
