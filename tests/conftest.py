"""Shared fixtures: a real runtime on a real LevelDB in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import hypothesis
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime

# No per-example deadline: a property test checks what is true, not how fast
# (speed lives in `make bench`); under a loaded xdist run examples took 0.4 s.
hypothesis.settings.register_profile("kvruntime", deadline=None)
hypothesis.settings.load_profile("kvruntime")


@pytest.fixture
def anyio_backend() -> str:
    """kvruntime runs on asyncio (its mailbox is built on asyncio futures)."""
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh runtime home."""
    return tmp_path / "home"


@pytest.fixture
def config() -> KvConfig:
    """The kv configuration for the test (override in a module for other limits)."""
    return KvConfig()


@pytest.fixture
async def rt(home: Path, config: KvConfig) -> AsyncIterator[Runtime]:
    """A running runtime on ``home``."""
    async with Runtime(home=home, config=config) as runtime:
        yield runtime


Body = Callable[[ProcessContext], Awaitable[Any]]


async def run_as(rt: Runtime, process: str, body: Body, *, kv: bool = True) -> Any:
    """Run ``body(ctx)`` as ``process`` (with the kv messaging capability) and return its result."""
    result: list[Any] = []

    async def main(ctx: ProcessContext) -> None:
        result.append(await body(ctx))

    handle = await rt.spawn(process, main, request_capabilities=["kv:distro:sys"] if kv else [])
    await handle.wait()
    return result[0]


@attrs.define
class FakeClock:
    """Monotonic seconds that move only when a test says so (inject it as a ``clock``)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
