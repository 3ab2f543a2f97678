"""The reliability summary is printed by a run as ``make test`` makes it.

``make test`` runs ``pytest -n`` on ``tests``: the xdist controller loads only
``tests/conftest.py`` and collects nothing, so the figures' hooks must be
found there (they were in ``tests/reliability/conftest.py``, and the summary
the README quotes was silently missing from every ``make test``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: One quick test that adds a figure (45 hostile db names tried).
QUICK = "test_db_names_never_leave_the_kv_root"


def _pytest(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _only_reliability() -> list[str]:
    """``tests`` as the argument (as ``make test`` gives), collecting only reliability/."""
    ignored = [p for p in sorted((ROOT / "tests").iterdir()) if p.name != "reliability"]
    return ["tests", *(f"--ignore={p.relative_to(ROOT)}" for p in ignored), "-k", QUICK]


def test_a_parallel_run_of_tests_prints_the_summed_figures() -> None:
    out = _pytest("-n", "2", *_only_reliability())
    assert "reliability summary" in out
    assert "attacks: hostile db names tried: 45" in out


def test_a_serial_run_prints_them_once() -> None:
    out = _pytest(*_only_reliability())
    assert out.count("reliability summary") == 1
    assert out.count("attacks: hostile db names tried: 45") == 1
