"""The examples as a newcomer meets them.

- ``make run`` (``python -m examples.host``) twice on one home, in a
  subprocess: every example says what it should, nothing goes to stderr,
  and the second run finds the data of the first;
- ``python -m examples.NAME --home DIR`` for each example alone;
- each example's ``main`` imported and run in a Runtime, then its data
  checked through the client by another process of the same package.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio
import msgpack
import pytest

from examples import (
    birthdays,
    host,
    process_lib_json,
    raw_wire,
    run_example,
    scans_counters,
    sharing,
    transactions,
    wasi_shapes,
    watch,
)
from kvruntime import Main, ProcessContext, Runtime, kv
from protocol.codec import DecodeError, decode_request, encode_request
from protocol.forms import Form, encode_request_in
from protocol.ids import PackageId
from protocol.messages import Get, KvRequest, Open, Set
from tests.conftest import run_as

REPO = Path(__file__).resolve().parents[1]

#: What each example must print (on every run), by example name.
SAYS: Mapping[str, tuple[str, ...]] = {
    "birthdays": (
        "Opened the db 'birthdays' of package birthday-book:examples.os.",
        "Get alice: 1990-04-01.",
        "Does bob exist? yes.",
        "Deleted bob. Does bob exist now? no.",
        "Get bob without a default raises KeyNotFound: key not found.",
        "Get bob with the default 'unknown': unknown.",
    ),
    "transactions": (
        "Before the commit, get order-1: nothing.",
        "Before the commit, get order-2: nothing.",
        "Before the commit, get order-3: nothing.",
        "After the commit, get order-1: two coffees.",
        "After the commit, get order-2: one croissant.",
        "After the commit, get order-3: three muffins.",
        "Committing the same transaction again is refused with NoTx: no transaction",
    ),
    "sharing": (
        "[owner]  Shared a read capability on 'recipes' with reader:guest-book:examples.os.",
        "[reader] Read pancakes: flour, milk, eggs, a pinch of salt.",
        "[reader] Tried to change the recipe and was refused with NoWriteCap: "
        "no write capability for requested DB.",
        "[owner]  The reader answered: read the recipe; my write was refused",
    ),
    "wasi_shapes": (
        "kv.get(ctx, 'colors', b'sky') reads the handle's write: blue.",
        "stores.colors.get(b'grass') reads the label's write: green.",
        "in the one db 'colors': sky=blue, grass=green, sun=yellow.",
    ),
    "scans_counters": (
        "Wrote 5 items in one atomic batch.",
        "First page of two: item:apple, item:bread; the cursor resumes after b'item:bread'.",
        "  apple: 12\n  bread: 3\n  cheese: 5\n  dates: 40\n  eggs: 24\n",
        "In reverse: item:eggs, item:dates, item:cheese, item:bread, item:apple.",
        "Counted 3 visits; get reads the counter as the ASCII text '3'.",
        "An increment past the signed 64-bit range is refused: "
        "increment or decrement would overflow.",
        "Sold one apple in 2 attempts: the first commit met a TransactionConflict.",
        "Apples left: 21 (the delivery was not lost).",
    ),
    "raw_wire": (
        "<- kv answered 'Ok'",
        "<- kv answered {'Get': b'greeting'}, with the blob b'hello, wire'",
        "<- kv answered {'Exists': False}",
        "<- kv answered {'Err': 'MalformedRequest'}",
    ),
    "process_lib_json": (
        "<- {\"Get\":[103,114,101,101,116,105,110,103]} + blob b'hello from Rust'",
        "   the answer's key reads back as b'greeting'",
        '<- {"Err":"KeyNotFound"}',
        '<- {"Err":{"RocksDBError":"KeyTooLarge: key of 70000 bytes exceeds the limit of 65536"}}',
        "   it arrives as the variant it has: RocksDBError",
    ),
    "watch": (
        "The cache starts from a snapshot: bread 3.10, bun 0.80.",
        "  seq +1: set price:cake\n  seq +2: set price:bread\n  seq +3: set price:tart\n"
        "  seq +4: set price:bun\n  seq +5: delete price:tart\n  seq +7: set price:~closed\n",
        "Applied 6 changes, in order, each once: bread 3.30, bun 0.90, cake 12.00.",
        "The cache equals the db: True.",
        # The presence list: renewals with expire put nothing in the feed.
        "Online (a snapshot): alice, bob, carol.\n  delete online:carol: carol left\n"
        "  expire online:bob: bob timed out\n"
        "Online now: alice (her renewals put nothing in the feed).\n",
    ),
}

#: What each example says on a first run only / on a later run only.
FIRST_RUN: Mapping[str, str] = {
    "birthdays": "No birthday stored for carol yet: this db starts empty.",
}
LATER_RUN: Mapping[str, str] = {
    "birthdays": "carol's birthday 2001-07-15 was found from the previous run",
    "transactions": "The orders committed by the previous run are still there: "
    "order-1, order-2, order-3.",
    "scans_counters": "Cleared 7 keys a previous run left, in one atomic range delete.",
}


def run_module(module: str, home: Path, storage: str | None = None) -> str:
    """Run ``python -m module --home home`` from the repo; return stdout, asserting a clean run."""
    env = dict(os.environ)
    env.pop("KVRUNTIME_STORAGE", None)
    if storage is not None:  # issue 13: as `make run-cluster` runs the host
        env["KVRUNTIME_STORAGE"] = storage
    result = subprocess.run(
        [sys.executable, "-m", module, "--home", str(home)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # no traceback, no log lines without -v
    return result.stdout


def sections(stdout: str) -> dict[str, str]:
    """The host's output cut at its ``=== N/M name: ...`` headers, by example name."""
    parts = re.split(r"^=== \d+/\d+ (\w+): .*$", stdout, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_make_run_twice_tells_each_example_and_shows_the_data_persisted(tmp_path: Path) -> None:
    home = tmp_path / "data"

    first = run_module("examples.host", home)
    assert "This is the first run on this home: every db starts empty." in first
    said = sections(first)
    assert list(said) == [example.name for example in host.EXAMPLES]
    for name, lines in SAYS.items():
        for line in lines:
            assert line in said[name], (name, line)
    assert FIRST_RUN["birthdays"] in said["birthdays"]
    assert "previous run" not in said["birthdays"] + said["transactions"]
    assert f"All {len(host.EXAMPLES)} examples ran" in first
    assert "    kv/birthday-book:examples.os/birthdays\n" in first
    assert "Run it again (make run)" in first

    second = run_module("examples.host", home)
    assert "This home holds the data of a previous run" in second
    said = sections(second)
    for name, lines in SAYS.items():
        for line in lines:
            assert line in said[name], (name, line)
    for name, line in LATER_RUN.items():
        assert line in said[name], (name, line)
    assert FIRST_RUN["birthdays"] not in said["birthdays"]
    assert (
        "Above, birthdays, transactions and scans_counters found what the previous run left."
        in second
    )


def test_make_run_cluster_runs_every_example_on_a_redis_cluster(
    tmp_path: Path, redis_storage: str
) -> None:
    out = run_module("examples.host", tmp_path / "data", storage=redis_storage)
    said = sections(out)
    assert list(said) == [example.name for example in host.EXAMPLES]
    for name, lines in SAYS.items():
        for line in lines:
            assert line in said[name], (name, line)
    assert "their dbs stay in the Redis Cluster" in out
    assert not (tmp_path / "data" / "kv").exists()


def test_raw_wire_prints_the_bytes_the_codec_would_send(tmp_path: Path) -> None:
    stdout = run_module("examples.raw_wire", tmp_path / "data")
    package = PackageId.parse("wire-demo:examples.os")
    # The bodies built by hand with msgpack.packb are the codec's canonical bytes.
    for action in (Open(), Set(key=b"greeting"), Get(key=b"greeting")):
        body = encode_request(KvRequest(package_id=package, db="wire", action=action))
        assert raw_wire.hexdump(body) in stdout, action
    # The malformed one really is malformed, and only in its key's type.
    malformed = msgpack.packb(
        {
            "package_id": {"package_name": "wire-demo", "publisher_node": "examples.os"},
            "db": "wire",
            "action": {"Get": "greeting"},
        },
        use_bin_type=True,
    )
    assert raw_wire.hexdump(malformed) in stdout
    with pytest.raises(DecodeError, match="Get: expected bin, got str"):
        decode_request(malformed)
    assert stdout.rstrip().endswith(
        "<- kv answered {'Get': b'greeting'}, with the blob b'hello, wire'"
    )


@pytest.mark.parametrize(
    "name",
    [
        "birthdays",
        "transactions",
        "sharing",
        "wasi_shapes",
        "scans_counters",
        "process_lib_json",
        "watch",
    ],
)
def test_each_example_runs_alone(tmp_path: Path, name: str) -> None:
    stdout = run_module(f"examples.{name}", tmp_path / "data")
    for line in SAYS[name]:
        assert line in stdout, line


def test_an_example_reports_an_unusable_home_in_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "examples.birthdays", "--home", str(not_a_folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: CapabilityStoreError: cannot create")
    assert "Not a directory" in result.stderr
    assert "Traceback" not in result.stderr


# --- each example's main, imported and run in a Runtime ---------------------------

Check = Callable[[ProcessContext], Awaitable[None]]


async def birthdays_kept(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ctx.package_id, "birthdays")
    assert await db.get(b"alice") == b"1990-04-01"
    assert await db.get(b"carol") == b"2001-07-15"
    assert not await db.exists(b"bob")


async def orders_committed(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ctx.package_id, "orders")
    for key, order in transactions.ORDERS.items():
        assert await db.get(key.encode()) == order.encode()


async def recipe_unchanged(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ctx.package_id, "recipes")
    assert await db.get(b"pancakes") == b"flour, milk, eggs, a pinch of salt"


async def colors_written(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ctx.package_id, "colors")
    assert [await db.get(key) for key in (b"sky", b"grass", b"sun")] == [
        b"blue",
        b"green",
        b"yellow",
    ]


async def shop_stocked(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ctx.package_id, "shop")
    assert await db.get(b"item:apple") == b"21"
    assert await db.get(b"count:visits") == b"3"
    assert [k async for k in db.keys(prefix=b"item:")] == [
        k.encode() for k in scans_counters.CATALOGUE
    ]


async def prices_cached(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ctx.package_id, "prices")
    prices = {k: v async for k, v in db.scan(prefix=b"price:")}
    assert prices == {b"price:bread": b"3.30", b"price:bun": b"0.90", b"price:cake": b"12.00"}
    assert [k async for k, _ in db.scan(prefix=b"online:")] == []  # alice left at the end


async def greeting_set(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ctx.package_id, "wire")
    assert await db.get(b"greeting") == b"hello, wire"


async def written_in_json(ctx: ProcessContext) -> None:
    # What the JSON sender wrote is what kvruntime's own client reads.
    db = await kv.open(ctx, ctx.package_id, "json")
    assert await db.get(b"greeting") == b"hello from Rust"
    assert await db.get_many([b"alice", b"bob"]) == [b"online", b"online"]
    assert not await db.exists(b"k" * 10)


def test_the_json_sender_sends_what_serde_json_writes(tmp_path: Path) -> None:
    stdout = run_module("examples.process_lib_json", tmp_path / "data")
    package = PackageId.parse("process-lib-demo:examples.os")
    for action in (Open(), Set(key=b"greeting"), Get(key=b"greeting")):
        body = encode_request_in(KvRequest(package_id=package, db="json", action=action), Form.JSON)
        assert f"   {body.decode()}\n" in stdout, action
    # every answer line is one JSON value
    for line in stdout.splitlines():
        if line.startswith("<- "):
            json.loads(line[3:].split(" + blob ")[0])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("process", "main", "siblings", "check"),
    [
        pytest.param(birthdays.PROCESS, birthdays.main, {}, birthdays_kept, id="birthdays"),
        pytest.param(
            transactions.PROCESS, transactions.main, {}, orders_committed, id="transactions"
        ),
        pytest.param(
            sharing.PROCESS,
            sharing.main,
            {sharing.READER: sharing.reader},
            recipe_unchanged,
            id="sharing",
        ),
        pytest.param(wasi_shapes.PROCESS, wasi_shapes.main, {}, colors_written, id="wasi_shapes"),
        pytest.param(raw_wire.PROCESS, raw_wire.main, {}, greeting_set, id="raw_wire"),
        pytest.param(
            process_lib_json.PROCESS,
            process_lib_json.main,
            {},
            written_in_json,
            id="process_lib_json",
        ),
        pytest.param(
            scans_counters.PROCESS, scans_counters.main, {}, shop_stocked, id="scans_counters"
        ),
        pytest.param(watch.PROCESS, watch.main, {}, prices_cached, id="watch"),
    ],
)
async def test_example_main_runs_in_a_runtime_and_leaves_its_data(
    rt: Runtime,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    process: str,
    main: Main,
    siblings: Mapping[str, Main],
    check: Check,
) -> None:
    with anyio.fail_after(10):
        await run_example(rt, process, main, siblings=siblings)
    stdout = capsys.readouterr().out
    for line in SAYS[request.node.callspec.id]:
        assert line in stdout, line
    # Another process of the example's package reads what the example left.
    package = process.split(":", 1)[1]
    await run_as(rt, f"checker:{package}", check)


@pytest.mark.anyio
async def test_sharing_gives_the_reader_read_but_not_write(rt: Runtime) -> None:
    await run_example(rt, sharing.PROCESS, sharing.main, siblings={sharing.READER: sharing.reader})

    async def as_reader(ctx: ProcessContext) -> None:
        recipes = kv.handle(ctx, "recipe-box:examples.os", "recipes")
        assert await recipes.get(b"pancakes") == b"flour, milk, eggs, a pinch of salt"
        with pytest.raises(kv.NoWriteCap):
            await recipes.delete(b"pancakes")
        with pytest.raises(kv.NoReadCap):  # only the shared db, not the package's others
            await kv.handle(ctx, "recipe-box:examples.os", "diary").get(b"x")

    await run_as(rt, sharing.READER, as_reader)


@pytest.mark.anyio
async def test_birthdays_finds_carol_after_a_restart(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        async with Runtime(home=home) as rt:
            await run_example(rt, birthdays.PROCESS, birthdays.main)
    first, second = capsys.readouterr().out.split("Opened the db 'birthdays'")[1:]
    assert FIRST_RUN["birthdays"] in first
    assert LATER_RUN["birthdays"] in second


@pytest.mark.anyio
async def test_the_host_reports_a_failing_example_and_runs_the_others(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(ctx: ProcessContext) -> None:
        raise RuntimeError("this example is broken on purpose")

    failing = host.Example(
        name="broken", shows="nothing", process="broken:demo:examples.os", main=broken
    )
    monkeypatch.setattr(host, "EXAMPLES", (failing, host.EXAMPLES[0]))

    assert await host.run_all(home) == 1
    stdout = capsys.readouterr().out
    assert (
        "!!! the broken example failed: RuntimeError: this example is broken on purpose" in stdout
    )
    assert "Get alice: 1990-04-01." in stdout  # birthdays still ran after it
    assert "1 of 2 examples failed: broken." in stdout
