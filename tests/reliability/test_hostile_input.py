"""Hostile and malformed input sent to the running kv process.

Hypothesis generates request bodies and blobs: random bytes, truncated
valid bodies, over-deep msgpack, valid shapes with a leaf of the wrong type,
headers claiming huge lengths, and wrong blobs (missing, empty, oversized).
A hostile process sends each to kv:distro:sys while a well-behaved process
of another package writes and reads back its own keys alongside. Checked:

- every request is answered, with a body that decodes: ``MalformedRequest``
  when the codec refuses the body (or a Set lacks its blob), else a typed
  response;
- the kv process never dies (it is the same one from first to last example);
- the well-behaved sender sees every one of its writes.
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from protocol.codec import DecodeError
from protocol.forms import decode_request_in_any_form, decode_response_in_any_form
from protocol.golden import load_golden_vectors
from protocol.messages import ErrResponse, MalformedRequest, Set
from tests.conftest import run_as
from tests.internals import bus_of, kv_of
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.anyio

KV = "kv:distro:sys"
MAX_VALUE = 4096

_GOLDEN = load_golden_vectors()
VALID = [v.data for v in (*_GOLDEN.canonical, *_GOLDEN.accepted) if v.kind == "request"]
MALFORMED = [v.data for v in _GOLDEN.malformed if v.kind == "request"]


@pytest.fixture
def config() -> KvConfig:
    """Small limits, so that oversized blobs stay cheap to send."""
    return KvConfig(max_value_bytes=MAX_VALUE, max_key_bytes=512)


# --- strategies ----------------------------------------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
msgpack_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 5), inner, max_size=4)
    ),
    max_leaves=10,
)


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += _paths(value, (*prefix, index))
    return found


def _replace(tree: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in tree.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(tree)]


@st.composite
def wrong_types(draw: st.DrawFn) -> bytes:
    """A valid request with one node replaced by an arbitrary msgpack value."""
    tree = msgpack.unpackb(draw(st.sampled_from(VALID)), raw=False)
    path = draw(st.sampled_from(_paths(tree)))
    return bytes(msgpack.packb(_replace(tree, path, draw(msgpack_values)), use_bin_type=True))


truncated = st.sampled_from(VALID).flatmap(
    lambda body: st.integers(0, len(body) - 1).map(lambda n: body[:n])
)
over_deep = st.integers(1, 200_000).flatmap(
    lambda depth: st.sampled_from(
        [b"\x91" * depth + b"\xc0", b"\x81\xa1a" * depth + b"\xc0", b"\x81\xa4Open" * depth]
    )
)
huge_lengths = st.sampled_from(
    [
        b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
        b"\xdb\xff\xff\xff\xffabc",  # str32
        b"\xdd\xff\xff\xff\xff\xc0",  # array32
        b"\xdf\xff\xff\xff\xff",  # map32
        b"\x81\xaapackage_id\xc6\x7f\xff\xff\xff",
    ]
) | st.binary(max_size=8).map(lambda tail: b"\xc5\xff\xff" + tail)
bodies = st.one_of(
    st.binary(max_size=64),
    truncated,
    over_deep,
    huge_lengths,
    wrong_types(),
    st.sampled_from(MALFORMED),
    st.sampled_from(VALID),
)
blobs = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=32),
    st.integers(MAX_VALUE - 1, MAX_VALUE + 2).map(lambda n: b"v" * n),
)
requests = st.lists(st.tuples(bodies, blobs), min_size=1, max_size=8)


# --- the test ------------------------------------------------------------------


def _expected_malformed(body: bytes, blob: bytes | None) -> bool:
    # kv serves every form of protocol/forms.py (a byte field may be an array
    # of ints 0-255), so its verdict is the any-form decoder's.
    try:
        request, _ = decode_request_in_any_form(body)
    except DecodeError:
        return True
    return isinstance(request.action, Set) and blob is None


async def _hostile(ctx: ProcessContext, batch: list[tuple[bytes, bytes | None]]) -> list[str]:
    problems: list[str] = []

    async def one(body: bytes, blob: bytes | None) -> None:
        response = await ctx.send_and_await_response(KV, body, blob=blob, timeout=10)
        try:
            # An answer takes its request's form: a body that starts as JSON is
            # answered in JSON (protocol/forms.py), anything else in msgpack.
            decoded, _ = decode_response_in_any_form(response.body)
        except DecodeError as exc:
            problems.append(f"undecodable answer to {body[:40]!r}: {exc}")
            return
        if _expected_malformed(body, blob) and decoded != ErrResponse(error=MalformedRequest()):
            problems.append(f"{body[:40]!r} got {decoded!r}, not MalformedRequest")

    async with anyio.create_task_group() as tg:
        for body, blob in batch:
            tg.start_soon(one, body, blob)
    return problems


_ids = itertools.count()


async def _fuzz_examples(rt: Runtime, batch: list[tuple[bytes, bytes | None]]) -> None:
    n = next(_ids)
    kv_process = kv_of(rt)
    problems: list[str] = []

    async def good(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "good")
        keys = [f"{n}/{i}".encode() for i in range(10)]
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(db.set, key, key * 3)
        for key in keys:
            assert await db.get(key) == key * 3, "the well-behaved sender lost a write"

    async def hostile(ctx: ProcessContext) -> None:
        problems.extend(await _hostile(ctx, batch))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_as, rt, f"good{n}:good:test.os", good)
        tg.start_soon(run_as, rt, f"fuzz{n}:fuzz:test.os", hostile)
    assert not problems, problems
    assert kv_of(rt) is kv_process, "the kv process was replaced"
    assert bus_of(rt).slot(kv_process.slot.address.process) is kv_process.slot, "kv died"


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@_settings(300)
@given(batch=requests)
async def test_kv_answers_every_hostile_request_and_survives(
    rt: Runtime, figures: Figures, batch: list[tuple[bytes, bytes | None]]
) -> None:
    await _fuzz_examples(rt, batch)
    figures.add("fuzz: hostile requests answered", len(batch))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@_settings(5000)
@given(batch=requests)
async def test_kv_hostile_soak(
    rt: Runtime, figures: Figures, batch: list[tuple[bytes, bytes | None]]
) -> None:
    await _fuzz_examples(rt, batch)
    figures.add("fuzz: hostile requests answered", len(batch))


async def test_oversized_body_is_malformed_and_kv_survives(rt: Runtime, figures: Figures) -> None:
    body = b"\xc6" + (2**20).to_bytes(4, "big") + b"x" * 2**20  # a 1 MiB bin: over the bound

    async def body_fn(ctx: ProcessContext) -> list[str]:
        return await _hostile(ctx, [(body, None), (b"\x91" * 2**20 + b"\xc0", b"x")])

    assert await run_as(rt, "big:fuzz:test.os", body_fn) == []
    figures.add("fuzz: hostile requests answered", 2)

    async def after(ctx: ProcessContext) -> bool:
        db = await kv.open(ctx, ctx.package_id, "after")
        await db.set(b"k", b"v")
        return await db.get(b"k") == b"v"

    assert await run_as(rt, "after:fuzz:test.os", after)
