"""The figures the reliability tests report, and the hooks that print them.

Each test adds what it tried to its ``figures`` fixture (kills survived,
writes verified, requests fuzzed, attacks tried, peak RSS under flood...);
the session prints the totals at the end of the run, after pytest's own
summary, so ``make test`` and ``make soak`` both show them.

The hooks are registered by ``tests/conftest.py``, not by this package's
conftest: under pytest-xdist (``make test`` runs ``-n``) the controller
loads only the conftest files of its arguments (``tests``) and collects
nothing, so hooks in ``tests/reliability/conftest.py`` never ran there and
the summary was lost.
"""

from __future__ import annotations

from collections import Counter

import pytest

__all__ = [
    "Figures",
    "figures_of",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_testnodedown",
]


class Figures:
    """Counters and maxima gathered over one pytest session."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.peaks: dict[str, float] = {}

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        self.counts[name] += amount

    def peak(self, name: str, value: float) -> None:
        """Keep the largest ``value`` seen under ``name``."""
        self.peaks[name] = max(value, self.peaks.get(name, value))

    def lines(self) -> list[str]:
        """The summary, one figure a line."""
        out = [f"{name}: {count}" for name, count in sorted(self.counts.items())]
        out += [f"{name}: {value:g}" for name, value in sorted(self.peaks.items())]
        return out


_KEY = pytest.StashKey[Figures]()


def figures_of(config: pytest.Config) -> Figures:
    """The session's figures (made at first use)."""
    if _KEY not in config.stash:
        config.stash[_KEY] = Figures()
    return config.stash[_KEY]


# Under pytest-xdist (`make test` runs ``-n``) each worker gathers its own
# figures and hands them to the controller when it ends, which prints the sum.
_WORKER_KEY = "kvruntime_figures"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In an xdist worker: hand this worker's figures to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        mine = figures_of(session.config)
        workeroutput[_WORKER_KEY] = {"counts": dict(mine.counts), "peaks": mine.peaks}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """In the xdist controller: add a finished worker's figures to the session's."""
    output = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    config = getattr(node, "config", None)
    if output is None or config is None:
        return
    figures = figures_of(config)
    figures.counts.update(output["counts"])
    for name, value in output["peaks"].items():
        figures.peak(name, value)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the reliability figures of this run, if any test gathered some."""
    lines = figures_of(config).lines()
    if lines:
        terminalreporter.section("reliability summary")
        for line in lines:
            terminalreporter.write_line(line)
