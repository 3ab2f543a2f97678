"""The single-request hot path compiled with mypyc (setup.py's ``HOT_PATH``, issue 12).

The dev install (``make test``) builds it: a hot-path module running as Python
there is a failure, as is a compiled one older than its source (it would
shadow the edited ``.py``). The rest of the suite runs on the compiled modules;
these tests hold what mypyc needs of their sources.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sysconfig
from pathlib import Path

import pytest

import kvruntime
import protocol
from kvruntime.kernel.errors import caused

ROOT = Path(__file__).parent.parent
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


def _hot_path() -> dict[str, list[str]]:
    """setup.py's ``HOT_PATH`` (read, not run: running setup.py builds)."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "HOT_PATH":
            groups: dict[str, list[str]] = ast.literal_eval(node.value)
            return groups
    raise AssertionError("setup.py has no HOT_PATH")


HOT_PATH = _hot_path()
SOURCES = [ROOT / path for paths in HOT_PATH.values() for path in paths]


def _module(source: Path) -> str:
    return ".".join(source.relative_to(ROOT).with_suffix("").parts)


def test_the_hot_path_names_existing_modules_each_in_its_packages_group() -> None:
    assert SOURCES
    for group, paths in HOT_PATH.items():
        for path in paths:
            assert (ROOT / path).is_file(), path
            assert path.split("/")[0] == group.split(".")[0], (group, path)


@pytest.mark.parametrize("source", SOURCES, ids=_module)
def test_the_hot_path_is_compiled_and_current(source: Path) -> None:
    """`pip install -e .` with mypy at hand (make test) builds it: its absence is a failure."""
    module = importlib.import_module(_module(source))
    # (mypyc may set a module's ``__file__`` to a path that is not there: its name
    # tells what was loaded, the build's own path where it is.)
    assert module.__file__ is not None
    assert module.__file__.endswith(SUFFIX), f"{_module(source)} is not compiled: runs as Python"
    built = source.with_suffix(SUFFIX)
    assert built.stat().st_mtime >= source.stat().st_mtime, (
        f"{built.name} is older than {source.name}: rebuild it (make test)"
    )


def test_no_module_outside_the_hot_path_is_compiled() -> None:
    """A module taken out of ``HOT_PATH`` leaves no build of it behind (setup.py
    removes them): it would shadow its source, or fail to import."""
    compiled = {
        built.with_name(built.name.removesuffix(SUFFIX) + ".py")
        for package in ("kvruntime", "protocol")
        for built in (ROOT / package).rglob(f"*{SUFFIX}")
    }
    assert {source for source in compiled if source.exists()} == set(SOURCES)


@pytest.mark.parametrize("source", SOURCES, ids=_module)
def test_no_hot_path_module_raises_from(source: Path) -> None:
    """mypyc drops a raise's ``from`` (the cause and ``from None`` alike): the hot
    path spells it out (``kernel.errors.caused``)."""
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Raise):
            assert node.cause is None, f"{source.name}:{node.lineno}: raise ... from"


def _raised_in_handler(cause: BaseException | None) -> ValueError:
    """The ValueError ``caused`` raises while a KeyError is handled."""
    try:
        try:
            raise KeyError("handled")
        except KeyError:
            raise caused(ValueError("raised"), cause)  # noqa: B904 (caused sets the cause)
    except ValueError as exc:
        return exc


def test_caused_is_raise_from() -> None:
    cause = OSError("cause")
    shown = _raised_in_handler(cause)
    assert shown.__cause__ is cause
    assert shown.__suppress_context__  # the traceback shows the cause, not the KeyError
    hidden = _raised_in_handler(None)  # `raise ... from None`
    assert hidden.__cause__ is None
    assert hidden.__suppress_context__
    assert isinstance(hidden.__context__, KeyError)


def test_every_module_imports_beside_the_compiled_ones() -> None:
    """An interpreted class may not subclass a compiled one: every module imports."""
    for package in (kvruntime, protocol):
        for found in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(found.name)
