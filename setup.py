"""The compiled helpers (setuptools builds them on ``pip install``; the metadata
is in pyproject.toml). Each is optional: where one cannot be built, its module
falls back to its pure-Python twin."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # issue 12: a scan page decoded in C on the client (protocol/blobs.py)
        Extension("protocol._cscan", ["protocol/_cscan.c"], optional=True),
        # issue 12: a scan page built in C straight from the iterator (storage/store.py)
        Extension("kvruntime.storage._cpage", ["kvruntime/storage/_cpage.c"], optional=True),
    ],
)
