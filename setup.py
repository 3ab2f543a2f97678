"""The compiled helpers (setuptools builds them on ``pip install``; the metadata
is in pyproject.toml). Each is optional: where one cannot be built, its module
falls back to its pure-Python twin."""

from setuptools import Extension, setup

#: The msgpack reader both blob decoders include.
READER = "protocol/_cmsgpack.h"

setup(
    ext_modules=[
        # issue 12: SetMany / WriteBatch blobs read and written in C (protocol/blobs.py)
        Extension("protocol._cblobs", ["protocol/_cblobs.c"], depends=[READER], optional=True),
        # issue 12: a batch's ops handed to LevelDB's write batch in C (storage/leveldb.py)
        Extension("kvruntime.storage._cwrite", ["kvruntime/storage/_cwrite.c"], optional=True),
        # issue 12: a scan page decoded in C on the client (protocol/blobs.py)
        Extension("protocol._cscan", ["protocol/_cscan.c"], depends=[READER], optional=True),
        # issue 12: a scan page built in C straight from the iterator (storage/store.py)
        Extension("kvruntime.storage._cpage", ["kvruntime/storage/_cpage.c"], optional=True),
    ],
)
