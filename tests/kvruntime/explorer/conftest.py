"""A real ``kvruntime serve`` on a free loopback port, and Debian's chromium driven by Playwright.

The server is the installed console script in a subprocess, stopped by its
PID (SIGTERM) when the test ends. Chromium is ``/usr/bin/chromium`` (``make
test`` installs it); without it the browser fixture fails with the reason.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.kvruntime.cli.conftest import KVRUNTIME, fill

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A free high port on 127.0.0.1 (asked of the kernel)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.frozen(kw_only=True)
class Explorer:
    """A running ``kvruntime serve`` (of ``APP``'s dbs): its URL, write token and home."""

    url: str
    token: str
    home: Path


def start_serve(home: Path) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``kvruntime serve`` on ``home`` and a free port, once it answers ``/``: the
    process, its URL and its first two lines (the second names the write token).
    The caller stops it (by its PID)."""
    port = free_port()
    proc = subprocess.Popen(
        [KVRUNTIME, "serve", "--home", str(home), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=2).close()
                return proc, url, lines
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"serve did not start: {lines} {proc.stderr}") from None
                time.sleep(0.1)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


@pytest.fixture
def explorer(tmp_path: Path) -> Iterator[Explorer]:
    home = tmp_path / "home"
    home.mkdir()
    hostile = b"<script>document.title='pwned'</script>"
    fill(home, "notes", [(b"hello", b"world"), (hostile, b"evil"), (b"blob", b"\x00\xff\x10\xc3")])
    fill(home, "many", [(f"user:{i:03d}".encode(), f"v{i}".encode()) for i in range(120)])
    proc, url, lines = start_serve(home)
    try:
        yield Explorer(url=url, token=lines[1].split()[2], home=home)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=20)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
        )
        try:
            yield context
        finally:
            context.close()
