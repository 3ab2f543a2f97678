"""The NATS transport: carries the bus's requests and responses between nodes.

Each node subscribes to one subject, its inbox ``kvr.in.<token>`` (the node
name with ``.`` spelled ``_``), and its request replies arrive under
``kvr.in.<token>.r.>`` (the client's inbox prefix), so a node needs to
subscribe to nothing else. NATS only carries bytes: every frame is an
``envelope`` sealed with the sender's node key, and a frame is believed only
when ``open_envelope`` verifies it against the key ``peers`` names for its
sender and the ``ReplayGuard`` has not seen it.

How messages travel:
- A request to another node's process goes through the bus like a local one:
  ``route`` gives the bus a stand-in ``Slot`` for the remote address whose
  mailbox is the peer's bounded outbound queue (at most ``OUTBOX`` requests
  waiting, at most ``INFLIGHT`` awaiting an answer: a slow remote never grows
  this node's memory; senders wait, as for a full local mailbox). One task
  per peer publishes them in the order accepted, so one sender's requests to
  one remote process arrive in the order sent.
- A request that expects an answer is a NATS request: the answer (or the
  refusal, ``Kind.REFUSAL``) comes back on its reply subject. NATS's
  no-responders (the peer has no subscription: it is not running) fails the
  sender at once with ``SendError(OFFLINE)``. When the connection to the NATS
  server drops, every request in flight fails with ``SendError(OFFLINE)`` at
  once (it may or may not have been delivered), and the client reconnects
  to another server of ``servers``. Silence is left to the sender's own
  deadline (``SendError(TIMEOUT)``).
- A request from another node is handed to ``Bus.deliver_from_network``
  (which checks it as a local one); its answer leaves through
  ``Bus.network_outbox`` and is published to the reply subject its request
  came with, remembered until the request's deadline. A node that shuts
  down refuses every answer it still owes (``Kind.REFUSAL``, OFFLINE), so
  its peers' senders fail at once instead of waiting for their timeouts.

Invariants:
1. Bad input (garbage, oversized, wrong version, unknown peer, bad signature,
   wrong node, replay, stale, malformed payload) is counted by reason in
   ``dropped`` and dropped with a log line; it never reaches a process.
2. A request to a node not in ``peers`` is ``SendError(OFFLINE)`` in the
   sender's own task, before anything is sent.
3. Every task here belongs to the transport's task group, ended by ``close``.
"""

from __future__ import annotations

import collections
import logging
import re
import time
from collections.abc import Mapping
from typing import Final

import anyio
import anyio.abc
import attrs
import nacl.signing
import nats
import nats.aio.client
import nats.aio.msg
import nats.errors

from protocol.ids import Address, IdError, ProcessId

from .bus import Bus, Slot
from .envelope import BadEnvelope, Envelope, Kind, ReplayGuard, Sequence, open_envelope, seal
from .errors import SendError, SendErrorKind
from .mailbox import Mailbox, MailboxClosed
from .message import Message, Request, Response

__all__ = ["INFLIGHT", "OUTBOX", "NatsTransport", "inbox_subject"]

log = logging.getLogger("kvruntime.kernel.nats_transport")

#: Requests to one peer waiting to be published.
OUTBOX: Final = 256
#: Requests to one peer published and awaiting their answer.
INFLIGHT: Final = 256
#: Remote addresses whose stand-in slots are kept (the least recently made go first).
_ROUTES: Final = 4096
#: Answers owed to other nodes remembered at once (the oldest are forgotten first).
_OWED: Final = 65_536

_NODE: Final = re.compile(r"[a-z0-9.-]+")


def inbox_subject(node: str) -> str:
    """The subject ``node`` receives on: ``kvr.in.<node with . as _>``."""
    if not _NODE.fullmatch(node):
        raise ValueError(f"a node name is [a-z0-9.-]+, got {node!r:.80}")
    return "kvr.in." + node.replace(".", "_")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.define(eq=False)
class _Peer:
    name: str
    subject: str
    outbox: Mailbox[Message]
    inflight: anyio.Semaphore


@attrs.define(eq=False)
class NatsTransport:
    """One node's connection to the others, through NATS servers at ``servers``."""

    bus: Bus
    key: nacl.signing.SigningKey
    peers: Mapping[str, nacl.signing.VerifyKey]
    servers: list[str]
    #: Why frames were dropped (invariant 1): reason -> count.
    dropped: collections.Counter[str] = attrs.Factory(collections.Counter)
    _links: dict[str, _Peer] = attrs.field(factory=dict, init=False)
    _routes: dict[Address, Slot] = attrs.field(factory=dict, init=False)
    #: (peer, request id) -> (reply subject, deadline in loop time).
    _owed: dict[tuple[str, int], tuple[str, float]] = attrs.field(factory=dict, init=False)
    _guard: ReplayGuard = attrs.field(factory=ReplayGuard, init=False)
    _seq: Sequence = attrs.field(factory=Sequence, init=False)
    _nc: nats.aio.client.Client | None = attrs.field(default=None, init=False)
    _tg: anyio.abc.TaskGroup | None = attrs.field(default=None, init=False)
    _scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope, init=False)
    #: The requests in flight (published, unanswered): (sender, id) -> (request, its exchange).
    _flying: dict[tuple[Address, int], tuple[Request, anyio.CancelScope]] = attrs.field(
        factory=dict, init=False
    )

    def __attrs_post_init__(self) -> None:
        for name in self.peers:
            self._links[name] = _Peer(
                name=name,
                subject=inbox_subject(name),
                outbox=Mailbox[Message](OUTBOX),
                inflight=anyio.Semaphore(INFLIGHT),
            )

    @property
    def node(self) -> str:
        """This node's name."""
        return self.bus.node

    # -- the bus's side --------------------------------------------------

    def route(self, target: Address) -> Slot:
        """The stand-in slot of a remote process (the bus's ``network_route``)."""
        slot = self._routes.get(target)
        if slot is not None:
            return slot
        peer = self._links.get(target.node)
        if peer is None:
            raise SendError(SendErrorKind.OFFLINE, f"unknown node {target.node!r} (not a peer)")
        if len(self._routes) >= _ROUTES:
            del self._routes[next(iter(self._routes))]
        slot = Slot(address=target, mailbox=peer.outbox, public=True, inflight_limit=0)
        self._routes[target] = slot
        return slot

    # -- running ---------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the NATS servers (raises what nats-py raises when none answers)."""
        self._nc = await nats.connect(
            servers=self.servers,
            name=self.node,
            inbox_prefix=inbox_subject(self.node) + ".r",
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.1,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnect,
        )

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Subscribe to this node's inbox and carry messages until ``close``; then disconnect."""
        nc = self._nc
        if nc is None:
            raise RuntimeError("connect first")
        me = inbox_subject(self.node)
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    await nc.subscribe(me, cb=self._on_frame)
                    await nc.flush()
                    for peer in self._links.values():
                        tg.start_soon(self._carry_requests, nc, peer)
                    tg.start_soon(self._carry_responses, nc)
                    task_status.started()
                    await anyio.sleep_forever()
        finally:
            self._tg = None
            for peer in self._links.values():
                for message in peer.outbox.drain():
                    if isinstance(message, Request):
                        self._fail(message, SendErrorKind.CLOSED, "the runtime is closing")
                peer.outbox.close()
            with anyio.CancelScope(shield=True):
                await self._refuse_owed()
                await nc.close()

    async def _refuse_owed(self) -> None:
        """On the way out: carry the answers already made, refuse every other one owed."""
        for response in self.bus.network_outbox.drain():
            await self._carry(response)
        owed, self._owed = self._owed, {}
        detail = f"node {self.node} shut down before answering"
        for (peer, request_id), (reply, _) in owed.items():
            payload = [request_id, SendErrorKind.OFFLINE.value, detail]
            await self._publish(reply, self._frame(Kind.REFUSAL, peer, payload))

    def close(self) -> None:
        """Stop carrying messages (``run`` then disconnects)."""
        self._scope.cancel()

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS: %r", exc)

    async def _on_disconnect(self) -> None:
        flying = list(self._flying.values())
        self._flying.clear()
        if flying:
            log.warning("lost the NATS connection: %d requests in flight fail", len(flying))
        for request, scope in flying:
            scope.cancel()
            self._fail(request, SendErrorKind.OFFLINE, "lost the connection to NATS in flight")

    # -- outbound --------------------------------------------------------

    def _frame(self, kind: Kind, to_node: str, payload: object) -> bytes:
        envelope = Envelope(
            kind=kind,
            from_node=self.node,
            to_node=to_node,
            seq=self._seq.next(time.time_ns()),
            sent_ms=_now_ms(),
            payload=payload,
        )
        return seal(envelope, self.key)

    async def _carry_requests(self, nc: nats.aio.client.Client, peer: _Peer) -> None:
        while True:
            try:
                message = await peer.outbox.get()
            except MailboxClosed:
                return
            if not isinstance(message, Request):
                continue
            request = message
            payload = [
                request.id,
                str(request.source.process),
                str(request.target.process),
                request.body,
                request.blob,
                request.metadata,
                request.expects_response,
            ]
            frame = self._frame(Kind.REQUEST, peer.name, payload)
            if request.expects_response is None:
                try:
                    await nc.publish(peer.subject, frame)
                except nats.errors.Error as exc:
                    log.warning("dropped a request to %s: %r", request.target, exc)
                continue
            await peer.inflight.acquire()
            assert self._tg is not None
            self._tg.start_soon(self._exchange, nc, peer, request, frame)

    async def _exchange(
        self, nc: nats.aio.client.Client, peer: _Peer, request: Request, frame: bytes
    ) -> None:
        key = (request.source, request.id)
        reply: nats.aio.msg.Msg | None = None
        try:
            with anyio.CancelScope() as scope:  # cancelled by _on_disconnect, which fails it
                self._flying[key] = (request, scope)
                try:
                    reply = await nc.request(
                        peer.subject, frame, timeout=request.expects_response or 0.0
                    )
                except nats.errors.NoRespondersError:
                    detail = f"node {peer.name} is not reachable"
                    return self._fail(request, SendErrorKind.OFFLINE, detail)
                except nats.errors.TimeoutError:
                    return  # the sender's own deadline says TIMEOUT
                except nats.errors.Error as exc:
                    return self._fail(request, SendErrorKind.OFFLINE, f"to {peer.name}: {exc!r}")
            if reply is None:
                return
            envelope = self._open(reply.data)
            if envelope is not None:
                self._answer(peer, request, envelope)
        finally:
            self._flying.pop(key, None)
            peer.inflight.release()

    def _answer(self, peer: _Peer, request: Request, envelope: Envelope) -> None:
        payload = envelope.payload
        if envelope.from_node != peer.name:
            return self._drop("wrong answerer", envelope.from_node)
        if envelope.kind is Kind.REFUSAL:
            if not (isinstance(payload, list) and len(payload) == 3 and payload[0] == request.id):
                return self._drop("malformed", "refusal")
            try:
                kind = SendErrorKind(payload[1])
            except ValueError:
                kind = SendErrorKind.OFFLINE
            return self._fail(request, kind, str(payload[2])[:500])
        if envelope.kind is not Kind.RESPONSE:
            return self._drop("unexpected kind", envelope.kind.name)
        if not (
            isinstance(payload, list)
            and len(payload) == 4
            and payload[0] == request.id
            and type(payload[1]) is bytes
            and (payload[2] is None or type(payload[2]) is bytes)
            and (payload[3] is None or isinstance(payload[3], str))
        ):
            return self._drop("malformed", "response")
        self.bus.respond(
            Response(
                id=request.id,
                source=request.target,
                target=request.source,
                body=payload[1],
                blob=payload[2],
                metadata=payload[3],
            )
        )

    def _fail(self, request: Request, kind: SendErrorKind, detail: str) -> None:
        self.bus.fail_request(request, SendError(kind, detail))

    # -- inbound ---------------------------------------------------------

    def _drop(self, reason: str, detail: str) -> None:
        self.dropped[reason] += 1
        log.warning("dropped a frame from the network (%s): %s", reason, detail[:200])

    def _open(self, frame: bytes) -> Envelope | None:
        try:
            envelope = open_envelope(frame, me=self.node, peers=self.peers)
            self._guard.check(envelope, _now_ms())
        except BadEnvelope as exc:
            self._drop(exc.reason, str(exc))
            return None
        return envelope

    async def _on_frame(self, msg: nats.aio.msg.Msg) -> None:
        envelope = self._open(msg.data)
        if envelope is None:
            return
        if envelope.kind is not Kind.REQUEST:
            return self._drop("unexpected kind", envelope.kind.name)
        request = self._request(envelope)
        if request is None:
            return
        reply = msg.reply or None
        key = (envelope.from_node, request.id)
        if request.expects_response is not None and reply is not None:
            self._owe(key, reply, request.expects_response)
        try:
            await self.bus.deliver_from_network(request)
        except SendError as exc:
            if self._owed.pop(key, None) is not None and reply is not None:
                payload = [request.id, exc.kind.value, exc.detail]
                await self._publish(reply, self._frame(Kind.REFUSAL, envelope.from_node, payload))

    def _request(self, envelope: Envelope) -> Request | None:
        payload = envelope.payload
        if not (isinstance(payload, list) and len(payload) == 7):
            self._drop("malformed", "request")
            return None
        rid, source, target, body, blob, metadata, expects = payload
        if not (
            type(rid) is int
            and isinstance(source, str)
            and isinstance(target, str)
            and type(body) is bytes
            and (blob is None or type(blob) is bytes)
            and (metadata is None or isinstance(metadata, str))
            and (expects is None or (isinstance(expects, int | float) and 0 < expects <= 3600))
        ):
            self._drop("malformed", "request fields")
            return None
        try:
            source_pid, target_pid = ProcessId.parse(source), ProcessId.parse(target)
        except IdError as exc:
            self._drop("malformed", str(exc))
            return None
        return Request(
            id=rid,
            source=Address(node=envelope.from_node, process=source_pid),
            target=Address(node=self.node, process=target_pid),
            body=body,
            blob=blob,
            metadata=metadata,
            expects_response=None if expects is None else float(expects),
        )

    def _owe(self, key: tuple[str, int], reply: str, timeout: float) -> None:
        now = anyio.current_time()
        owed = self._owed
        if len(owed) >= _OWED:
            for stale in [k for k, (_, deadline) in owed.items() if deadline <= now]:
                del owed[stale]
            while len(owed) >= _OWED:
                del owed[next(iter(owed))]
        owed[key] = (reply, now + timeout)

    async def _carry_responses(self, nc: nats.aio.client.Client) -> None:
        outbox = self.bus.network_outbox
        while True:
            try:
                response = await outbox.get()
            except MailboxClosed:
                return
            await self._carry(response)

    async def _carry(self, response: Response) -> None:
        owed = self._owed.pop((response.target.node, response.id), None)
        if owed is None or owed[1] < anyio.current_time():
            log.debug("dropped response %d to %s: not owed", response.id, response.target)
            return
        payload = [response.id, response.body, response.blob, response.metadata]
        await self._publish(owed[0], self._frame(Kind.RESPONSE, response.target.node, payload))

    async def _publish(self, subject: str, frame: bytes) -> None:
        assert self._nc is not None
        try:
            await self._nc.publish(subject, frame)
        except nats.errors.Error as exc:
            log.warning("could not publish to %s: %r", subject, exc)
