"""Two nodes in two OS processes on a local NATS server: ``make run-nodes``.

``python -m examples.nodes [--home DIR]`` starts Debian's ``nats-server`` on a
free loopback port, gives each node a home under DIR (a temporary folder by
default) and hands each the other's node public key, then runs ``bob.os``
and ``alice.os`` as two processes of their own, as on two hosts:

- alice pings bob's public ``chat:nodes:examples.os`` and bob answers ``pong``;
- alice sends bob a chat line without waiting, and bob's chat answers it with
  a line of its own, sent to alice's chat as a new request (shared nothing:
  the only link between the two is NATS and the two public keys);
- alice asks bob's ``kv:distro:sys`` for a key, and bob's kv refuses her:
  ``RemoteNotAllowed`` (kv serves its own node only).

The host stops bob and then the NATS server by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from kvruntime import Address, ProcessContext, Request, Runtime, node_public_key
from protocol.codec import decode_response, encode_request
from protocol.ids import PackageId
from protocol.messages import ErrResponse, Get, KvRequest

CHAT = "chat:nodes:examples.os"
PKG = PackageId.parse("nodes:examples.os")


async def chat(ctx: ProcessContext) -> None:
    """Answers a ping with ``pong``, a chat line with a line of its own; ends on an answer."""
    while True:
        message = await ctx.receive()
        if not isinstance(message, Request):
            continue
        if message.expects_response is not None:
            await ctx.respond(message, b"pong")
            continue
        line = message.body.decode(errors="replace")
        print(f"{ctx.our.node} got from {message.source.node}: {line}", flush=True)
        if line.startswith("re:"):
            return  # the conversation is over
        other = Address(node=message.source.node, process=ctx.process_id)
        await ctx.send(other, f"re: {line}".encode())


async def alice(ctx: ProcessContext) -> None:
    bob_chat = f"bob.os@{CHAT}"
    pong = await ctx.send_and_await_response(bob_chat, b"ping", timeout=10)
    print(f"alice.os pinged bob.os: {pong.body.decode()}", flush=True)
    await ctx.send(bob_chat, b"hello bob")
    request = encode_request(KvRequest(package_id=PKG, db="notes", action=Get(key=b"k")))
    answer = await ctx.send_and_await_response("bob.os@kv:distro:sys", request, timeout=10)
    refusal = decode_response(answer.body)
    if isinstance(refusal, ErrResponse):
        print(f"bob.os's kv refused alice.os: {type(refusal.error).__name__}", flush=True)
    else:
        print(f"bob.os's kv answered alice.os: {refusal!r}", flush=True)


async def run_node(home: str, name: str, url: str, peers: dict[str, str]) -> None:
    async with Runtime(home=home, node=name, network=url, peers=peers) as rt:
        chatting = await rt.spawn(CHAT, chat, public=True)
        if name == "alice.os":
            talk = await rt.spawn("talk:nodes:examples.os", alice)
            await talk.wait()
            with anyio.fail_after(10):
                await chatting.wait()  # until bob's answer to the chat line
        else:
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def host(folder: Path) -> int:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(binary, os.X_OK):
        print("nats-server is not installed (make run-nodes installs it)", file=sys.stderr)
        return 1
    port = _free_port()
    url = f"nats://127.0.0.1:{port}"
    nats = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        homes = {name: folder / name for name in ("alice.os", "bob.os")}
        keys = {name: node_public_key(home) for name, home in homes.items()}
        print(f"NATS at {url}; node keys: bob.os {keys['bob.os'][:16]}..., ", end="")
        print(f"alice.os {keys['alice.os'][:16]}...")
        me = [sys.executable, "-m", "examples.nodes", "--node"]
        bob = subprocess.Popen(
            [*me, "bob.os", str(homes["bob.os"]), url, f"alice.os={keys['alice.os']}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert bob.stdin is not None
        assert bob.stdout is not None
        if bob.stdout.readline() != "ready\n":
            print("bob.os did not start", file=sys.stderr)
            return 1
        alice_rc = subprocess.call(
            [*me, "alice.os", str(homes["alice.os"]), url, f"bob.os={keys['bob.os']}"]
        )
        bob.stdin.close()
        print(bob.stdout.read(), end="", flush=True)
        bob.stdout.close()
        return alice_rc or bob.wait(timeout=10)
    finally:
        os.kill(nats.pid, signal.SIGTERM)
        nats.wait()


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, help="where the two homes go (default: a temp dir)")
    parser.add_argument("--node", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.node:
        name, home, url, *pairs = args.node
        anyio.run(run_node, home, name, url, dict(pair.split("=", 1) for pair in pairs))
        return 0
    if args.home is not None:
        return host(args.home)
    with tempfile.TemporaryDirectory() as folder:
        return host(Path(folder))


if __name__ == "__main__":
    sys.exit(main())
