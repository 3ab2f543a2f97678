"""``python -m benchmarks.network [--quick]``: remote requests beside raw nats-py, one run.

Two runtimes, ``alice.os`` and ``bob.os``, on one real nats-server (Debian's,
started here on a free loopback port and stopped by PID), in this process,
as raw nats-py's two sides are. Rows:

- ``echo``: alice's process asks bob's public ``echo`` process, which answers
  each request with its body: the transport alone (bus, envelope, NATS).
- ``get`` / ``set``: alice asks bob's public ``store`` process, which does the
  get or set on bob's own kv (kv serves its own node only) and answers.
- ``raw``: nats-py request/reply of the same bytes, a subscriber answering
  with ``msg.respond``, both connections on the same server.

Each is run sequentially (one request awaited at a time) and with 64 in flight
(64 tasks of one process, each awaiting its own). Rounds interleave every row
(round 0 is a warm-up, not counted); the table prints medians of ops/s and
each row's ratio to raw measured in the same rounds. Also: the cost of one
envelope sealed and opened, per authentication form, in µs (medians).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import nats
import nats.aio.client
import nats.aio.msg

from kvruntime import ProcessContext, Request, Runtime, kv, node_public_key

from .stats import median

__all__ = ["main"]

IN_FLIGHT = 64
_PACKAGE = "bench:bench.os"
_ECHO = f"bob.os@echo:{_PACKAGE}"
_STORE = f"bob.os@store:{_PACKAGE}"
_VALUE = b"v" * 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_nats(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(binary, os.X_OK):
        raise SystemExit("nats-server is not installed (make bench installs Debian's)")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-l", str(folder / "nats.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"nats://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"nats-server did not start: see {folder / 'nats.log'}") from None
            time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


async def _echo(ctx: ProcessContext) -> None:
    while True:
        message = await ctx.receive()
        if isinstance(message, Request):
            await ctx.respond(message, message.body)


async def _store(ctx: ProcessContext) -> None:
    """``s<key>`` sets key to a 100-byte value, ``g<key>`` answers its value; concurrently."""
    db = await kv.open(ctx, ctx.package_id, "remote")

    async def serve(request: Request) -> None:
        key = request.body[1:]
        if request.body[:1] == b"s":
            await db.set(key, _VALUE)
            await ctx.respond(request, b"ok")
        else:
            await ctx.respond(request, await db.get(key))

    async with anyio.create_task_group() as tg:
        while True:
            message = await ctx.receive()
            if isinstance(message, Request):
                tg.start_soon(serve, message)


Ask = Callable[[bytes], Awaitable[bytes]]


async def _timed(ask: Ask, bodies: list[bytes], in_flight: int) -> float:
    """Seconds to ask every body, ``in_flight`` at a time (each task its share in turn)."""
    shares = [bodies[i::in_flight] for i in range(in_flight)]

    async def one(share: list[bytes]) -> None:
        for body in share:
            await ask(body)

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for share in shares:
            tg.start_soon(one, share)
    return time.perf_counter() - t0


def _seal_costs(rounds: int = 2000) -> dict[str, tuple[float, float]]:
    """Median µs to seal and to open one request-sized envelope, per form."""
    import nacl.signing

    from kvruntime.kernel import envelope as env
    from kvruntime.kernel import session as ses

    key = nacl.signing.SigningKey(b"a" * 32)
    peers = {"alice.os": key.verify_key}
    payload = [7, "client:bench:bench.os", "echo:bench:bench.os", b"x" * 100, None, None, 10.0, []]

    def sample(seq: int) -> env.Envelope:
        return env.Envelope(
            kind=env.Kind.REQUEST,
            from_node="alice.os",
            to_node="bob.os",
            seq=seq,
            sent_ms=0,
            payload=payload,
        )

    hello = ses.start_handshake("alice.os", "bob.os")
    bobs, welcome = ses.accept_hello(
        env.Envelope(
            kind=env.Kind.HELLO,
            from_node="alice.os",
            to_node="bob.os",
            seq=0,
            sent_ms=0,
            payload=hello.hello,
        )
    )
    alices = ses.finish_handshake(
        hello,
        env.Envelope(
            kind=env.Kind.WELCOME,
            from_node="bob.os",
            to_node="alice.os",
            seq=0,
            sent_ms=0,
            payload=welcome,
        ),
    )
    sessions = {bobs.sid: bobs}
    forms: dict[str, tuple[Callable[[int], bytes], Callable[[bytes], object]]] = {
        "signed (Ed25519; handshake only)": (
            lambda seq: env.seal(sample(seq), key),
            lambda frame: env.open_envelope(frame, me="bob.os", peers=peers),
        ),
        "session (BLAKE2b MAC; every frame)": (
            lambda seq: ses.seal_in_session(sample(seq), alices),
            lambda frame: ses.open_session_frame(
                env.unpack_frame(frame), me="bob.os", sessions=sessions
            ),
        ),
    }
    costs: dict[str, tuple[float, float]] = {}
    for form, (seal, open_) in forms.items():
        seal_ns, open_ns = [], []
        for seq in range(rounds):
            t0 = time.perf_counter_ns()
            frame = seal(seq)
            t1 = time.perf_counter_ns()
            open_(frame)
            t2 = time.perf_counter_ns()
            seal_ns.append(t1 - t0)
            open_ns.append(t2 - t1)
        costs[form] = (median(seal_ns) / 1000, median(open_ns) / 1000)
    return costs


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.asynccontextmanager
async def two_nodes(folder: Path) -> AsyncIterator[tuple[Runtime, Runtime, Ask]]:
    """A nats-server under ``folder``, bob (serving echo and store) and alice on it,
    and raw nats-py request/reply on the same server: ``(alice, bob, raw)``. All
    stopped on exit (the server by its PID)."""
    server, url = _start_nats(folder)
    try:
        homes = {name: folder / name for name in ("alice.os", "bob.os")}
        keys = {name: node_public_key(home) for name, home in homes.items()}
        raw_server = await nats.connect(url)
        raw_client = await nats.connect(url)
        try:

            async def answer(msg: nats.aio.msg.Msg) -> None:
                await msg.respond(msg.data)

            await raw_server.subscribe("bench.raw", cb=answer)
            await raw_server.flush()

            async def raw(body: bytes) -> bytes:
                reply = await raw_client.request("bench.raw", body, timeout=10)
                data: bytes = reply.data
                return data

            async with (
                Runtime(
                    home=homes["bob.os"],
                    node="bob.os",
                    network=url,
                    peers={"alice.os": keys["alice.os"]},
                    storage="memory",
                ) as bob,
                Runtime(
                    home=homes["alice.os"],
                    node="alice.os",
                    network=url,
                    peers={"bob.os": keys["bob.os"]},
                    storage="memory",
                ) as alice,
            ):
                await bob.spawn(f"echo:{_PACKAGE}", _echo, public=True)
                await bob.spawn(
                    f"store:{_PACKAGE}",
                    _store,
                    public=True,
                    request_capabilities=["kv:distro:sys"],
                )
                yield alice, bob, raw
        finally:
            await raw_client.close()
            await raw_server.close()
    finally:
        _stop(server)


async def _run(rounds: int, count: int, folder: Path, loop: str) -> None:
    async with two_nodes(folder) as (alice, bob, raw):
        samples: dict[str, list[float]] = {}
        done = anyio.Event()
        work: list[tuple[str, Ask, list[bytes], int]] = []

        async def client(ctx: ProcessContext) -> None:
            async def ask(target: str) -> Ask:
                async def send(body: bytes) -> bytes:
                    return (await ctx.send_and_await_response(target, body, timeout=10)).body

                return send

            echo, store = await ask(_ECHO), await ask(_STORE)
            keys_ = [b"k%07d" % i for i in range(count)]
            echo_bodies = [b"x" * 100 for _ in range(count)]
            sets = [b"s" + key for key in keys_]
            gets = [b"g" + key for key in keys_]
            await _timed(store, sets, IN_FLIGHT)  # every get finds its key
            for depth, label in ((1, "sequential"), (IN_FLIGHT, f"{IN_FLIGHT} in flight")):
                work.extend(
                    [
                        (f"raw request/reply, {label}", raw, echo_bodies, depth),
                        (f"echo, {label}", echo, echo_bodies, depth),
                        (f"set, {label}", store, sets, depth),
                        (f"get, {label}", store, gets, depth),
                    ]
                )
            for round_ in range(rounds + 1):
                shift = round_ % len(work)
                for name, how, bodies, depth in work[shift:] + work[:shift]:
                    seconds = await _timed(how, bodies, depth)
                    if round_:
                        samples.setdefault(name, []).append(len(bodies) / seconds)
                label = "warm-up" if round_ == 0 else f"round {round_}/{rounds}"
                print(f"[{label}] done", file=sys.stderr, flush=True)
            done.set()

        await alice.spawn(f"client:{_PACKAGE}", client)
        await done.wait()
        dropped = {**alice.network_dropped(), **bob.network_dropped()}
    print(
        f"\n## Remote requests through two nodes on one nats-server"
        f" (medians of {rounds} rounds of {count}; event loop: {loop})\n"
    )
    print(f"{'row':<34} {'ops/s':>10} {'x raw':>7}")
    for label in ("sequential", f"{IN_FLIGHT} in flight"):
        reference = median(samples[f"raw request/reply, {label}"])
        for what in ("raw request/reply", "echo", "set", "get"):
            rate = median(samples[f"{what}, {label}"])
            print(f"{what + ', ' + label:<34} {rate:>10,.0f} {rate / reference:>7.2f}")
    print(f"\nframes dropped by either node: {dropped or 'none'}")
    print("\n## One request-sized envelope, µs (medians of 2000)\n")
    for form, (seal_us, open_us) in _seal_costs().items():
        print(f"{form:<34} seal {seal_us:>6.1f}  open {open_us:>6.1f}")


def main(argv: list[str] | None = None) -> int:
    """Run the network rows and print them."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.network", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if _has_uvloop() else "asyncio",
        help="event loop of both sides (default: uvloop when installed, as make bench)",
    )
    args = parser.parse_args(argv)
    rounds, count = (2, 256) if args.quick else (5, 2048)
    print(f"event loop: {args.loop}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="kvbench-net-") as tmp:
        anyio.run(
            _run,
            rounds,
            count,
            Path(tmp),
            args.loop,
            backend_options={"use_uvloop": args.loop == "uvloop"},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
