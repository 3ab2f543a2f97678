"""A transaction's staging (issue 12): ``tx.set`` in C (``_cstaging.c``) and its Python twin.

Both paths, through the client on a real runtime, stage what the reference says
(TTL semantics, codecs, errors at the ``set`` that gave a bad key or value); the
twins give the same buffer and the same slow-path calls for any calls; the C
staging gives back every reference it takes; the fallback, with the extension
hidden, runs a transaction on its own.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.client import _staging
from kvruntime.client._transaction import Transaction
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

OWNER = "app:demo:alice.os"


def test_the_compiled_staging_is_built_and_transactions_use_it() -> None:
    # `pip install -e .` builds it here (gcc and Python.h are on this machine): a build
    # that silently failed would leave the Python staging alone, unnoticed.
    assert _staging.HAVE_C, "kvruntime.client._cstaging is not built"
    assert Transaction.__mro__[1].__module__ == "kvruntime.client._cstaging"
    assert Transaction.set is vars(_staging.Staging)["set"]
    # One documented method whichever path: the C method's docstring is the reference's.
    assert inspect.getdoc(Transaction.set) == inspect.getdoc(_staging.StagingPy.set)


@pytest.mark.usefixtures("staging_path")
async def test_sets_stage_as_the_reference_says_and_commit(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> dict[str, Any]:
        db: Any = await kv.open(ctx, ctx.package_id, "db")  # Any: bytes-likes and misuse
        await db.set(b"old", b"0", ttl=100.0)
        async with db.transaction() as tx:
            tx.set(b"a", b"1")
            tx.set(b"a", b"2")  # the last write wins
            tx.set(key=b"b", value=b"3")  # keyword forms
            tx.set(b"c", b"4", ttl=None)
            tx.set(b"t", b"5", ttl=50.0)
            tx.set(b"a", b"6")  # a TTL staged: the slow path, still the same result
            tx.set(b"t", b"7")  # a set without ttl clears the staged TTL
            tx.set(b"old", b"8")  # ... and the expiry the key had
            tx.set(bytearray(b"d"), memoryview(b"9"))  # bytes-likes: converted
            tx.set(b"e", b"x", ttl=30.0)
            tx.delete(b"c")
            with pytest.raises(TypeError, match=r"^key must be bytes"):
                tx.set("k", b"v")
            with pytest.raises(TypeError, match=r"^value must be bytes"):
                tx.set(b"k", "v")
            with pytest.raises(TypeError):
                tx.set(b"k")  # a bad call is the Python logic's TypeError
            with pytest.raises(TypeError):
                tx.set(b"k", b"v", b"w")
            with pytest.raises(TypeError):
                tx.set(b"k", b"v", tl=1.0)
            assert len(tx) == 7
            assert await tx.get(b"a") == b"6"
        with pytest.raises(RuntimeError, match="this transaction has ended"):
            tx.set(b"late", b"v")  # exact bytes after the block: not the fast path
        typed = await kv.open(ctx, ctx.package_id, "typed", key_codec=kv.JSON, value_codec=kv.BYTES)
        async with typed.transaction() as ttx:
            ttx.set({"k": 1}, b"j")  # a codec: never the fast path
        return {
            "entries": dict([i async for i in db.scan()]),
            "ttls": {k: await db.ttl(k) is not None for k in (b"a", b"t", b"old", b"e")},
            "typed": await typed.get({"k": 1}),
        }

    assert await run_as(rt, OWNER, body) == {
        "entries": {b"a": b"6", b"b": b"3", b"d": b"9", b"e": b"x", b"old": b"8", b"t": b"7"},
        "ttls": {b"a": False, b"t": False, b"old": False, b"e": True},
        "typed": b"j",
    }


# --- the twins, side by side -----------------------------------------------------------------


def _recording(base: type) -> type:
    """A ``base`` staging whose slow path records its call and stores like a raw set."""

    class Recording(base):  # type: ignore[misc]
        __slots__ = ("calls",)

        def __init__(self, raw_open: bool) -> None:
            super().__init__()
            self.calls: list[tuple[Any, ...]] = []
            self._raw_open = raw_open  # type: ignore[misc]  # the base's slot

        def _set(self, key: Any, value: Any, *, ttl: float | None = None) -> None:
            self.calls.append((bytes(key) if isinstance(key, memoryview) else key, value, ttl))
            if isinstance(key, str | int) or isinstance(value, str | int):
                raise TypeError("not bytes")
            raw = bytes(key)
            self._writes[raw] = bytes(value)
            if ttl is None:
                self._ttls.pop(raw, None)
            else:
                self._ttls[raw] = int(ttl * 1000)

    return Recording


def _c_recording() -> type:
    from kvruntime.client._cstaging import Staging

    return _recording(Staging)


_pieces = st.sampled_from([b"a", b"b", b"c", bytearray(b"a"), memoryview(b"b"), "a", 1])
_calls = st.lists(
    st.tuples(
        _pieces,
        _pieces,
        st.sampled_from(["none", "absent", "ttl", "keywords"]),
        st.sampled_from([None, "open", "closed"]),
    ),
    max_size=25,
)


@given(raw_open=st.booleans(), calls=_calls)
def test_the_twins_stage_alike_and_hand_the_same_calls_to_the_slow_path(
    raw_open: bool, calls: list[tuple[Any, Any, str, str | None]]
) -> None:
    stagings = [_c_recording()(raw_open), _recording(_staging.StagingPy)(raw_open)]
    for staging in stagings:
        for key, value, form, flag in calls:
            if flag is not None:
                staging._raw_open = flag == "open"
            with contextlib.suppress(TypeError):  # recorded by the slow path
                if form == "none":
                    staging.set(key, value, ttl=None)
                elif form == "absent":
                    staging.set(key, value)
                elif form == "ttl":
                    staging.set(key, value, ttl=2.5)
                else:
                    staging.set(value=value, key=key)
    c, py = stagings
    assert (c._writes, c._ttls, c._raw_open) == (py._writes, py._ttls, py._raw_open)
    assert c.calls == py.calls
    # The fast path only ever took exact bytes with nothing staged and the flag set.
    assert all(type(k) is bytes for k in c._writes)


def test_the_compiled_staging_holds_exact_dicts() -> None:
    staging = _c_recording()(True)
    assert staging._writes == {}
    assert staging._ttls == {}
    assert staging._raw_open is True
    with pytest.raises(TypeError, match="_writes must be a dict"):
        staging._writes = [(b"a", b"b")]
    with pytest.raises(TypeError, match="_ttls must be a dict"):
        del staging._ttls
    with pytest.raises(TypeError):
        del staging._raw_open


def test_many_transactions_hold_no_reference_and_no_object() -> None:
    # Keys and values stored by the fast path, by the slow path (bad values, TTLs),
    # dropped with the transaction or collected with a cycle through it: every
    # reference taken is given back.
    keys = [b"k%03d" % i for i in range(50)]
    value = b"v" * 100
    bad = "not bytes"
    holder: list[Any] = []

    def once(cycle: bool) -> None:
        tx = Transaction(
            None,  # type: ignore[arg-type]  # nothing is sent: the block is never left
            kv.BYTES,
            kv.BYTES,
            max_batch_items=1000,
            max_key_bytes=1024,
            max_value_bytes=1 << 20,
        )
        put = tx.set
        for key in keys:
            put(key, value)
        put(keys[0], value, ttl=1.0)
        put(keys[1], value)
        with contextlib.suppress(TypeError):
            put(bad, value)  # type: ignore[arg-type]
        if cycle:
            tx._call = lambda *args: (tx, holder)  # type: ignore[assignment]

    refs = [sys.getrefcount(x) for x in (*keys, value, bad, holder)]
    gc.collect()
    objects = len(gc.get_objects())
    for i in range(3000):
        once(cycle=i % 2 == 0)
    gc.collect()
    assert [sys.getrefcount(x) for x in (*keys, value, bad, holder)] == refs
    assert len(gc.get_objects()) - objects < 100  # a leak per transaction would be 1500+


def test_the_fallback_runs_a_transaction_when_the_extension_is_not_built(tmp_path: Path) -> None:
    # A fresh interpreter with _cstaging hidden, as on a machine without a compiler.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["kvruntime.client._cstaging"] = None  # the import fails
        import anyio
        from kvruntime import Runtime, kv
        from kvruntime.client import _staging
        from kvruntime.client._transaction import Transaction

        assert not _staging.HAVE_C and Transaction.__mro__[1] is _staging.StagingPy

        async def body(ctx):
            db = await kv.open(ctx, ctx.package_id, "db")
            async with db.transaction() as tx:
                for i in range(100):
                    tx.set(b"k%d" % i, b"v")
                tx.set(b"t", b"1", ttl=60.0)
                tx.set(b"t", b"2")
                tx.delete(b"k0")
                try:
                    tx.set("k", b"v")
                except TypeError as error:
                    assert str(error).startswith("key must be bytes"), error
                else:
                    raise AssertionError("no TypeError")
            return len([i async for i in db.scan()]), await db.get(b"t"), await db.ttl(b"t")

        async def main():
            result = []

            async def process(ctx):
                result.append(await body(ctx))

            async with Runtime(home=sys.argv[1]) as rt:
                caps = ["kv:distro:sys"]
                h = await rt.spawn("app:demo:alice.os", process, request_capabilities=caps)
                await h.wait()
            print(result[0])

        anyio.run(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(100, b'2', None)"
