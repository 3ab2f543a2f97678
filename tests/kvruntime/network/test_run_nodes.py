"""``make run-nodes`` (``python -m examples.nodes``): two nodes in two processes talk over NATS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_run_nodes_pings_chats_and_is_refused_by_the_other_kv(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.nodes", "--home", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = set(done.stdout.splitlines())
    assert {
        "alice.os pinged bob.os: pong",
        "bob.os got from alice.os: hello bob",
        "alice.os got from bob.os: re: hello bob",
        "bob.os's kv refused alice.os: RemoteNotAllowed",
    } <= lines
    assert done.stderr == ""
    assert (tmp_path / "alice.os" / "kernel" / "node.key").stat().st_mode & 0o077 == 0
