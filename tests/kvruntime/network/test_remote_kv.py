"""kv:distro:sys answers every request from another node ``RemoteNotAllowed``, not a drop.

Through the network seam as a transport hands a verified request in; the
answer leaves through the network outbox.
"""

from __future__ import annotations

import logging

import anyio
import pytest

from kvruntime import (
    Address,
    ProcessContext,
    ProcessId,
    Request,
    Response,
    Runtime,
    SendError,
    SendErrorKind,
)
from kvruntime.kernel.message import Capability
from kvruntime.kvservice.access import kv_capability
from protocol.codec import decode_response, encode_request
from protocol.ids import PackageId
from protocol.messages import ErrResponse, Get, KvRequest, MalformedRequest, RemoteNotAllowed
from tests.internals import bus_of

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("app:dev.os")
REMOTE = Address(node="bob.os", process=ProcessId.parse("client:app:dev.os"))


@pytest.mark.parametrize("claims", ["nothing", "a forged read capability"])
async def test_a_remote_kv_request_is_answered_remote_not_allowed(rt: Runtime, claims: str) -> None:
    caps: tuple[Capability, ...] = ()
    if claims != "nothing":
        caps = (kv_capability(rt.node, "read", PKG, "db"),)
    request = Request(
        id=bus_of(rt).next_id(),
        source=REMOTE,
        target=rt.kv_address,
        body=encode_request(KvRequest(package_id=PKG, db="db", action=Get(key=b"k"))),
        capabilities=caps,
        expects_response=5.0,
    )
    await rt.deliver_from_network(request)  # no messaging capability needed to be refused
    with anyio.fail_after(5):
        response = await rt.network_response()
    assert (response.id, response.target) == (request.id, REMOTE)
    assert decode_response(response.body) == ErrResponse(error=RemoteNotAllowed())


async def test_other_private_processes_still_need_their_messaging_capability(rt: Runtime) -> None:
    async def private(ctx: ProcessContext) -> None:
        await ctx.receive()

    handle = await rt.spawn("private:app:dev.os", private)
    with pytest.raises(SendError) as caught:
        await rt.deliver_from_network(
            Request(
                id=1,
                source=REMOTE,
                target=Address(node=rt.node, process=ProcessId.parse("private:app:dev.os")),
                body=b"let me in",
            )
        )
    assert caught.value.kind is SendErrorKind.FORBIDDEN
    handle.kill()


async def test_an_undecodable_remote_body_is_answered_malformed_request(rt: Runtime) -> None:
    request = Request(
        id=bus_of(rt).next_id(),
        source=REMOTE,
        target=rt.kv_address,
        body=b"\xc1 not msgpack",
        expects_response=5.0,
    )
    await rt.deliver_from_network(request)
    with anyio.fail_after(5):
        response = await rt.network_response()
    assert decode_response(response.body) == ErrResponse(error=MalformedRequest())


async def test_an_answer_after_the_network_closed_is_not_logged_as_a_full_outbox(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    bus = bus_of(rt)
    bus.network_outbox.drain()  # as a transport does when it stops
    answer = Response(id=1, source=rt.kv_address, target=REMOTE, body=b"late")
    with caplog.at_level(logging.DEBUG, logger="kvruntime.kernel.bus"):
        bus.respond(answer)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, f"dropped a response to {REMOTE}: the network is closed")
    ]
