"""One life of a crash driver: start it in its own process, let it work, SIGKILL it.

A driver (``crash_driver``, ``ttl_crash_driver``, ...) appends a ``READY`` line
to its journal once it is under load; the crash tests kill it a random while
after that, or now and then during its start-up.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _readies(journal: Path) -> int:
    return journal.read_text().count("READY") if journal.exists() else 0


def kill_one_life(
    driver: str,
    args: list[str],
    journal: Path,
    rng: random.Random,
    *,
    under_load: tuple[float, float],
    at_start: float = 0.0,
) -> None:
    """Run ``python -m tests.reliability.<driver> *args`` once and SIGKILL it.

    With probability ``at_start`` the kill comes during start-up (within 0.5 s
    of the spawn); otherwise it comes a uniform ``under_load`` seconds after the
    driver's next READY line. Fails if the driver never gets ready or ends by
    itself (a crash that was not ours), with its stderr.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", f"tests.reliability.{driver}", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if rng.random() < at_start:
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            ready = _readies(journal)
            deadline = time.monotonic() + 30
            while _readies(journal) == ready:
                assert proc.poll() is None, proc.communicate()[1].decode()
                assert time.monotonic() < deadline, "the driver never became ready"
                time.sleep(0.01)
            time.sleep(rng.uniform(*under_load))
        assert proc.poll() is None, f"the driver ended by itself: {proc.communicate()[1].decode()}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
