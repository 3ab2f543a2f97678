"""The compiled helpers (setuptools builds them on ``pip install``; the metadata
is in pyproject.toml). Each is optional: where one cannot be built, its module
falls back to its pure-Python twin."""

from setuptools import Extension, setup

setup(
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
