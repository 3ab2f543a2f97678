"""protocol/ stays sans-IO: it imports only attrs, msgpack, the stdlib and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import protocol

PROTOCOL_DIR = Path(protocol.__file__).parent
THIRD_PARTY = frozenset({"attrs", "msgpack"})
# Standard-library modules that would mean the package waits, logs or does I/O
# of its own. (importlib.resources, used to read the golden vectors, is fine.)
FORBIDDEN_STDLIB = frozenset(
    {
        "asyncio",
        "logging",
        "multiprocessing",
        "os",
        "selectors",
        "socket",
        "subprocess",
        "threading",
    }
)


def foreign_imports(source: str, package: str = "protocol") -> list[str]:
    """Top-level module names imported by ``source`` that protocol/ may not use."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots = [alias.name.partition(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0:  # a sibling module of the package
                continue
            roots = [(node.module or "").partition(".")[0]]
        else:
            continue
        for root in roots:
            allowed = (
                root in THIRD_PARTY
                or root == package
                or (root in sys.stdlib_module_names and root not in FORBIDDEN_STDLIB)
            )
            if not allowed:
                found.append(root)
    return found


MODULES = sorted(PROTOCOL_DIR.glob("*.py"))


def test_the_package_has_modules() -> None:
    names = {path.name for path in MODULES}
    assert {"__init__.py", "ids.py", "messages.py", "codec.py", "golden.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_module_imports_only_attrs_msgpack_and_stdlib(path: Path) -> None:
    assert foreign_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        ("import anyio", "anyio"),
        ("import plyvel.db", "plyvel"),
        ("from kvruntime.bus import Bus", "kvruntime"),
        ("import logging", "logging"),
        ("def f():\n    import socket\n", "socket"),
        ("from asyncio import sleep", "asyncio"),
    ],
)
def test_checker_catches_foreign_imports(source: str, culprit: str) -> None:
    assert foreign_imports(source) == [culprit]


@pytest.mark.parametrize(
    "source",
    [
        "import attrs",
        "import msgpack",
        "from . import ids",
        "from .codec import DecodeError",
        "from protocol.ids import PackageId",
        "from __future__ import annotations",
        "import json, functools\nfrom importlib import resources",
    ],
)
def test_checker_allows_what_protocol_may_use(source: str) -> None:
    assert foreign_imports(source) == []
