"""Who may import whom: the package's layers, read from the code's own imports.

Every import counts, type-only ones (under ``TYPE_CHECKING``) and ones inside
functions included, since a cycle of type-only imports is still a cycle a
reader has to untangle.

- ``kvruntime.kernel`` (what every process needs) knows nothing of kv: it
  imports neither the kv service, nor the client, the CLI or the runtime that
  assembles them. It may use the storage seam (the capability store does).
- ``kvruntime.storage`` (the engines) imports only the protocol's errors and
  its scan page format (``blobs.py``: an engine builds the page).
- ``kvruntime.client`` speaks the protocol over the kernel: it imports neither
  the kv service nor storage nor the runtime.
- ``kvruntime.kvservice`` imports neither the client, the CLI nor the runtime.
- ``kvruntime.explorer`` (the web page) works through the client and the
  kernel, never the CLI, the kv service, storage or the runtime
  (``kvruntime serve`` in the CLI assembles it: the arrow goes one way).
- ``protocol`` imports nothing of kvruntime (``tests/protocol/test_purity.py``
  checks the rest of its purity).
- No module imports itself through others.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvruntime
import protocol

ROOTS = {"kvruntime": Path(kvruntime.__file__).parent, "protocol": Path(protocol.__file__).parent}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, root in ROOTS.items():
        # A compiled module counts as a module (its .pyi stands for it), not as its package.
        stubs = [p for p in root.rglob("*.pyi") if not p.with_suffix(".py").exists()]
        for path in [*root.rglob("*.py"), *stubs]:
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str) -> Iterator[str]:
    """Every module of ours that ``module`` imports, resolved to its full name."""
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(module).split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import mod` imports the module pkg.mod itself.
            targets = [source] + [
                f"{source}.{alias.name}"
                for alias in node.names
                if f"{source}.{alias.name}" in MODULES
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module:
                yield target


GRAPH = {module: set(_imports(module)) for module in MODULES}


def _within(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


FORBIDDEN = [
    (
        "kvruntime.kernel",
        ["kvruntime.kvservice", "kvruntime.client", "kvruntime.cli", "kvruntime.runtime"],
    ),
    (
        "kvruntime.storage",
        [
            "kvruntime.kernel",
            "kvruntime.kvservice",
            "kvruntime.client",
            "kvruntime.cli",
            "kvruntime.runtime",
        ],
    ),
    ("kvruntime.client", ["kvruntime.kvservice", "kvruntime.storage", "kvruntime.runtime"]),
    ("kvruntime.kvservice", ["kvruntime.client", "kvruntime.cli", "kvruntime.runtime"]),
    (
        "kvruntime.explorer",
        ["kvruntime.kvservice", "kvruntime.storage", "kvruntime.runtime", "kvruntime.cli"],
    ),
    ("kvruntime.readable", ["kvruntime"]),  # pure: the showing rules alone
    ("protocol", ["kvruntime"]),
]


@pytest.mark.parametrize(("layer", "forbidden"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_layers_import_only_what_they_may(layer: str, forbidden: list[str]) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _within(module, layer)
        for target in targets
        if any(_within(target, f) for f in forbidden)
    )
    assert wrong == []


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(GRAPH[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    assert _cycles() == []


def test_the_checks_see_what_they_check() -> None:
    # The graph is read, not assumed: a few edges the layers are built on.
    assert "kvruntime.kernel.message" in GRAPH["kvruntime.kernel.bus"]
    assert "kvruntime.storage.store" in GRAPH["kvruntime.kernel.capabilities"]
    assert "protocol.ids" in GRAPH["kvruntime.client._exchange"]
    assert "kvruntime.kvservice.loop" in GRAPH["kvruntime.runtime"]
    # and the cycle finder finds a cycle when there is one
    GRAPH["kvruntime.kernel.message"].add("kvruntime.kernel.bus")
    try:
        assert any(
            {"kvruntime.kernel.bus", "kvruntime.kernel.message"} <= set(c) for c in _cycles()
        )
    finally:
        GRAPH["kvruntime.kernel.message"].discard("kvruntime.kernel.bus")
