"""Bodies in Hyperware's own forms (JSON, msgpack with byte arrays) through the bus.

The Rust client in tests/conformance runs every action in every form; these
check, from Python, that an answer comes back in the form its request used,
malformed bodies included, and that nothing is left behind per request.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest

from kvruntime import ProcessContext, Runtime
from protocol.ids import KV_PROCESS_ID
from tests.internals import kv_of

pytestmark = pytest.mark.anyio

PROCESS = "app:forms:test.os"
PACKAGE = {"package_name": "forms", "publisher_node": "test.os"}


def _json(action: object) -> bytes:
    return json.dumps({"package_id": PACKAGE, "db": "d", "action": action}).encode()


def _array(action: object) -> bytes:
    body: bytes = msgpack.packb({"package_id": PACKAGE, "db": "d", "action": action})
    return body


async def test_each_answer_takes_its_requests_form(tmp_path: Path) -> None:
    answers: list[bytes] = []

    async def main(ctx: ProcessContext) -> None:
        async def send(body: bytes, blob: bytes | None = None) -> None:
            reply = await ctx.send_and_await_response(KV_PROCESS_ID, body, blob=blob)
            answers.append(reply.body)

        await send(_json("Open"))
        await send(_json({"Set": {"key": [107], "tx_id": None}}), b"v")
        await send(_json({"Get": [107]}))
        await send(_json({"Get": [1, 2]}))
        await send(_array({"Get": [107]}))
        await send(b'{"package_id": oops')  # JSON, malformed
        await send(_json({"Get": [256]}))  # a byte out of range

    async with Runtime(home=tmp_path) as rt:
        handle = await rt.spawn(PROCESS, main, request_capabilities=["kv:distro:sys"])
        await handle.wait()
        assert kv_of(rt)._forms == {}  # nothing kept once answered

    assert [json.loads(a) for a in answers[:4]] == [
        "Ok",
        "Ok",
        {"Get": [107]},
        {"Err": "KeyNotFound"},
    ]
    assert msgpack.unpackb(answers[4]) == {"Get": [107]}
    assert json.loads(answers[5]) == {"Err": "MalformedRequest"}
    assert json.loads(answers[6]) == {"Err": "MalformedRequest"}
