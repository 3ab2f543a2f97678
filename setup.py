"""The compiled helpers (setuptools builds them on ``pip install``; the metadata
is in pyproject.toml). Each is optional: where one cannot be built, its module
falls back to its pure-Python twin.

The single-request hot path (issue 12) is also compiled with mypyc where mypyc
is importable (the dev install: ``make test`` builds it with the venv's mypy,
``--no-build-isolation``): the modules in ``HOT_PATH``, their ``.py`` files the
source and the fallback. The build is all or nothing: a module compiled apart
from the rest of its group could not import, so when mypyc is missing or any
part fails, no compiled hot-path module is left behind (a stale one would
shadow its edited source) and kvruntime runs them as Python.
"""

from __future__ import annotations

import sysconfig
import traceback
from collections.abc import Iterable
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: issue 12: the modules a request passes through, by the shared library each
#: group builds (one per top-level package: ``protocol`` imports nothing of
#: kvruntime, compiled or not). A module here may not be subclassed or
#: monkeypatched from an interpreted module (see benchmarks/README.md, stop 25).
HOT_PATH = {
    "protocol._hotpath": [
        "protocol/hot.py",
        "protocol/prefix.py",
    ],
    "kvruntime._hotpath": [
        "kvruntime/client/_exchange.py",
        "kvruntime/kernel/bus.py",
        "kvruntime/kernel/capabilities.py",
        "kvruntime/kernel/deadlines.py",
        "kvruntime/kernel/mailbox.py",
        "kvruntime/kvservice/loop.py",
        "kvruntime/kvservice/networked.py",
        "kvruntime/kvservice/reads.py",
    ],
}
_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


def _hot_path_files() -> list[Path]:
    """Every compiled hot-path module beside the sources, of this build or an earlier
    one (a module since taken out of ``HOT_PATH`` included): an extension module
    beside a ``.py`` of its name, and the groups' shared libraries. (The C helpers
    have no ``.py`` twin of their name.)"""
    found: list[Path] = []
    for package in ("kvruntime", "protocol"):
        for built in Path(package).rglob(f"*{_SUFFIX}"):
            twin = built.with_name(built.name.removesuffix(_SUFFIX) + ".py")
            if twin.exists() or built.name.endswith(f"__mypyc{_SUFFIX}"):
                found.append(built)
    return found


def _mypyc_extensions() -> list[Extension]:
    """The hot path's extensions, or none where mypyc is missing or cannot compile it."""
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    try:
        paths = [path for group in HOT_PATH.values() for path in group]
        separate = [(files, group) for group, files in HOT_PATH.items()]
        return mypycify(paths, separate=separate, opt_level="3")
    except (Exception, SystemExit):  # mypyc reports a type error by exiting
        traceback.print_exc()
        print("mypyc could not compile the hot path: it runs as Python")
        return []


class BuildExt(build_ext):
    """``build_ext`` with the hot path built all or nothing, after the C helpers."""

    def finalize_options(self) -> None:
        self.hot_path = _mypyc_extensions()
        for extension in self.hot_path:
            extension.optional = True  # a missing one is not copied in place
        self.distribution.ext_modules = [*(self.distribution.ext_modules or []), *self.hot_path]
        super().finalize_options()

    def run(self) -> None:
        _remove(_hot_path_files())  # nothing stale survives, built or not
        super().run()

    def build_extensions(self) -> None:
        hot = {id(extension) for extension in self.hot_path}
        self.extensions, hot_path = (
            [e for e in self.extensions if id(e) not in hot],
            [e for e in self.extensions if id(e) in hot],
        )
        super().build_extensions()
        self.extensions += hot_path
        try:
            for extension in hot_path:
                self.build_extension(extension)
        except Exception:  # the compiler's errors (CompileError, CCompilerError, ...)
            traceback.print_exc()
            print("the hot path did not compile: it runs as Python")
            _remove(Path(self.get_ext_fullpath(e.name)) for e in hot_path)


def _remove(files: Iterable[Path]) -> None:
    for file in files:
        if file.exists():
            file.unlink()


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        # issue 12: SetMany / WriteBatch blobs and scan pages read and written in C
        # (protocol/blobs.py)
        Extension("protocol._cblobs", ["protocol/_cblobs.c"], optional=True),
        # issue 12: a batch's ops handed to LevelDB's write batch in C (storage/leveldb.py)
        Extension("kvruntime.storage._cwrite", ["kvruntime/storage/_cwrite.c"], optional=True),
        # issue 12: a scan page built in C straight from the iterator (storage/store.py)
        Extension("kvruntime.storage._cpage", ["kvruntime/storage/_cpage.c"], optional=True),
        # issue 12: the per-entry scan's async iterator, no generator step per entry
        # (client/_entries.py)
        Extension("kvruntime.client._centries", ["kvruntime/client/_centries.c"], optional=True),
    ],
)
