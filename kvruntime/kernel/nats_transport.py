"""The NATS transport: carries the bus's requests and responses between nodes.

Each node subscribes to its inbox ``kvr.in.<token>`` (the node name with
``.`` spelled ``_``) and to the answers of its own requests under
``kvr.in.<token>.r.>``, nothing else. NATS only carries bytes: two nodes
believe each other's frames only through a ``session`` agreed by a signed
handshake (Ed25519 node keys, checked against ``peers``; ephemeral X25519),
and then authenticate each frame with the session's MAC; the ``ReplayGuard``
refuses any frame seen before, of either form.

How messages travel:
- A request to another node's process goes through the bus like a local one:
  ``route`` gives the bus a stand-in ``Slot`` for the remote address whose
  mailbox is the peer's bounded outbound queue (at most ``OUTBOX`` requests
  waiting, at most ``INFLIGHT`` awaiting an answer: a slow remote never grows
  this node's memory; senders wait, as for a full local mailbox). One task
  per peer takes every request queued at once and publishes them in the
  order accepted without yielding between them, so nats-py writes them in
  one flush, and one sender's requests to one remote process arrive in the
  order sent. An awaited request finding nothing queued or being sent
  before it, a session open and a slot free is published at once from its
  sender's task (``Slot.transmit``): no hop through that task, so a round
  trip takes as many event-loop turns as raw nats-py request/reply.
- Before its first request to a peer, that task handshakes (a NATS request
  carrying a signed HELLO, answered by a signed WELCOME); requests wait
  behind it. No responders fails the request with ``SendError(OFFLINE)``,
  no WELCOME within ``HANDSHAKE_TIMEOUT`` (or the request's timeout) with
  ``SendError(TIMEOUT)``.
- A request that expects an answer is published with a reply subject of this
  node's (one subscription takes every answer): the answer, a
  ``Kind.REFUSAL``, or NATS's no-responders (``SendError(OFFLINE)``). A peer
  that lost the session (it restarted) answers a signed ``Kind.REKEY``: the
  request was not delivered, so it is sent again, once, after a new
  handshake. A frame whose MAC fails in a held session is answered with a
  REKEY only while no frame has verified in that session (one a replayed
  HELLO made, whose keys the real peer lacks); in a confirmed session it is
  a forgery or corruption, and a REKEY would let anyone who saw the sid on
  the wire cut the session and lose the answers in flight in it. When the
  connection to the NATS server drops, every request in flight fails with
  ``SendError(OFFLINE)`` at once (it may or may not have been delivered),
  and the client reconnects to another server of ``servers``. While requests
  to a peer are in flight, an empty message probes it every
  ``WATCH_INTERVAL``: when NATS answers twice in a row that nobody listens
  on its inbox any more (it crashed), they fail with ``SendError(OFFLINE)``.
  Silence is left to the sender's own deadline (``SendError(TIMEOUT)``).
- A request from another node is handed to ``Bus.deliver_from_network``
  (which checks it as a local one) without waiting for room: a target whose
  mailbox is full refuses it with ``SendError(BUSY)`` (a fire-and-forget one
  is dropped, counted as ``busy``), so a process that stops reading never
  stalls the rest of what this node receives. A request whose sender gave up
  (timed out) while it waited in the outbox is not sent. Its answer
  (``answer``, from the responder's task; or through ``Bus.network_outbox``)
  is published, in the session it came in, to the reply subject it came
  with, remembered until the request's deadline. A node that shuts down
  refuses every answer it still owes (``Kind.REFUSAL``, OFFLINE), so its
  peers' senders fail at once instead of at their timeouts.

Invariants:
1. Bad input (garbage, oversized, wrong version, unknown peer, bad signature,
   bad MAC, unknown session, wrong node, replay, stale, malformed payload)
   is counted by reason in ``dropped`` and dropped with a log line; it never
   reaches a process. At most ``INBOX_PENDING`` frames wait for this node to
   read them (nats-py drops the rest, counted as ``inbox full``).
2. A request to a node not in ``peers`` is ``SendError(OFFLINE)`` in the
   sender's own task, before anything is sent.
3. Every task here belongs to the transport's task group, ended by ``close``.
4. Sessions held are bounded: one this node opened per peer, and at most
   ``ACCEPTED`` a peer opened (the oldest is forgotten first).
5. An empty message on the inbox is a liveness probe, and ignored: it
   carries nothing and asks nothing of the node.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import re
import ssl
import time
from collections.abc import Mapping
from typing import Final

import anyio
import anyio.abc
import attrs
import msgpack
import nacl.signing
import nats
import nats.aio.client
import nats.aio.msg
import nats.errors

from protocol.ids import Address, ProcessId

from .bus import Bus, Slot
from .envelope import (
    BadEnvelope,
    Envelope,
    Kind,
    ReplayGuard,
    Sequence,
    open_signed,
    seal,
    unpack_frame,
)
from .errors import SendError, SendErrorKind
from .inflight import INFLIGHT, OUTBOX, Flying, InFlight, Link
from .mailbox import MailboxClosed
from .message import Request, Response
from .session import (
    Session,
    accept_hello,
    finish_handshake,
    open_session_frame,
    seal_fields,
    start_handshake,
)
from .wire import (
    answer_of,
    refusal_payload,
    request_of,
    request_payload,
    response_payload,
)

__all__ = [
    "ACCEPTED",
    "CONNECT_ATTEMPTS",
    "HANDSHAKE_TIMEOUT",
    "INBOX_PENDING",
    "INFLIGHT",
    "OUTBOX",
    "UNREACHED_RETRY",
    "WATCH_INTERVAL",
    "NatsTransport",
    "inbox_subject",
]

log = logging.getLogger("kvruntime.kernel.nats_transport")

#: Sessions a peer opened that are kept (a restarted peer opens a new one).
ACCEPTED: Final = 4
#: Times each server is tried before ``connect`` gives up.
CONNECT_ATTEMPTS: Final = 3
_CONNECT_TIMEOUT: Final = 2
#: Longest wait (s) for a peer's WELCOME.
HANDSHAKE_TIMEOUT: Final = 5.0
#: How often (s) a peer with requests in flight is probed for being gone.
WATCH_INTERVAL: Final = 0.5
#: Wait (s) before sending once more what NATS found nobody listening for.
#: Debian's nats-server 2.9.10 answers "no responders" to about 2% of the
#: requests sent right after a new subscription was confirmed (measured
#: here with nats-py alone), and now and then loses a handshake there, so
#: one "nobody listens" is not believed at once: the request (never
#: delivered, so safe to send again) goes once more, a HELLO unanswered in
#: half its time goes once more, and a probe must miss twice in a row.
UNREACHED_RETRY: Final = 0.1
#: Frames received and not yet read, at most (nats-py drops the rest).
INBOX_PENDING: Final = 4096
_INBOX_PENDING_BYTES: Final = 64 * 1024 * 1024
#: Signed REKEYs sent per second at most (each costs a signature).
_REKEYS_PER_SECOND: Final = 64
#: Remote addresses whose stand-in slots are kept (the least recently made go first).
_ROUTES: Final = 4096
#: Answers owed to other nodes remembered at once (the oldest are forgotten first).
_OWED: Final = 65_536
_NO_RESPONDERS: Final = "503"

_NODE: Final = re.compile(r"[a-z0-9.-]+")


def inbox_subject(node: str) -> str:
    """The subject ``node`` receives on: ``kvr.in.<node with . as _>``."""
    if not _NODE.fullmatch(node):
        raise ValueError(f"a node name is [a-z0-9.-]+, got {node!r:.80}")
    return "kvr.in." + node.replace(".", "_")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _loop_time() -> float:
    """``anyio.current_time()`` without its backend lookup (nats-py runs on asyncio only)."""
    return asyncio.get_running_loop().time()


@attrs.define(eq=False)
class NatsTransport:
    """One node's connection to the others, through NATS servers at ``servers``."""

    bus: Bus
    key: nacl.signing.SigningKey
    peers: Mapping[str, nacl.signing.VerifyKey]
    servers: list[str]
    #: Why frames were dropped (invariant 1): reason -> count.
    dropped: collections.Counter[str] = attrs.Factory(collections.Counter)
    #: Handshakes this node completed, either side.
    sessions_made: int = attrs.field(default=0, init=False)
    _links: dict[str, Link] = attrs.field(factory=dict, init=False)
    _routes: dict[Address, Slot] = attrs.field(factory=dict, init=False)
    #: Every session held, by sid.
    _sessions: dict[bytes, Session] = attrs.field(factory=dict, init=False)
    #: The sids of held sessions in which a frame has verified.
    _confirmed: set[bytes] = attrs.field(factory=set, init=False)
    #: (peer, request id) -> (reply subject, deadline in loop time, sid it came in).
    _owed: dict[tuple[str, int], tuple[str, float, bytes]] = attrs.field(factory=dict, init=False)
    _guard: ReplayGuard = attrs.field(factory=ReplayGuard, init=False)
    _seq: Sequence = attrs.field(factory=Sequence, init=False)
    _nc: nats.aio.client.Client | None = attrs.field(default=None, init=False)
    _tg: anyio.abc.TaskGroup | None = attrs.field(default=None, init=False)
    _scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope, init=False)
    _flying: InFlight = attrs.field(factory=InFlight, init=False)
    #: Probe reply token -> its peer.
    _probes: dict[str, Link] = attrs.field(factory=dict, init=False)
    _reply_prefix: str = attrs.field(default="", init=False)
    #: (second, REKEYs sent in it).
    _rekeys: tuple[int, int] = attrs.field(default=(0, 0), init=False)
    _full_logged: float = attrs.field(default=-math.inf, init=False)
    _addresses: dict[tuple[str, str], Address] = attrs.field(factory=dict, init=False)
    _last_error: Exception | None = attrs.field(default=None, init=False)
    #: While ``connect`` runs: set once as many certificates as there are
    #: servers did not verify (the try is over: see ``connect``).
    _refused: anyio.Event | None = attrs.field(default=None, init=False)
    _unverified: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        for name in self.peers:
            self._links[name] = Link(name=name, subject=inbox_subject(name))
        self._reply_prefix = inbox_subject(self.node) + ".r.k."

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
        slot = Slot(
            address=target,
            mailbox=peer.outbox,
            public=True,
            inflight_limit=0,
            transmit=functools.partial(self._transmit, peer),
        )
        self._routes[target] = slot
        return slot

    # -- running ---------------------------------------------------------

    async def connect(self) -> None:
        """Connect to one of the NATS servers, trying each ``CONNECT_ATTEMPTS`` times.

        ConnectionError (with the last reason, say a TLS certificate that does
        not verify) when none could be reached; once connected, the client
        reconnects for as long as it runs.
        """
        self._last_error = None
        refused = self._refused = anyio.Event()
        self._unverified = 0
        # nats-py can hang after a failed TLS handshake (closing the broken
        # transport): bound the whole try by what the attempts may take. A
        # certificate that does not verify will not on the next attempt
        # either: once as many have failed as there are servers, the try ends.
        budget = CONNECT_ATTEMPTS * len(self.servers) * (_CONNECT_TIMEOUT + 0.5) + 1
        outcome: list[nats.aio.client.Client | Exception] = []
        try:
            with anyio.fail_after(budget):
                async with anyio.create_task_group() as tg:

                    async def end_when_refused() -> None:
                        await refused.wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(end_when_refused)
                    try:
                        outcome.append(
                            await nats.connect(
                                servers=self.servers,
                                name=self.node,
                                inbox_prefix=inbox_subject(self.node) + ".r",
                                allow_reconnect=True,
                                max_reconnect_attempts=CONNECT_ATTEMPTS - 1,
                                reconnect_time_wait=0.1,
                                connect_timeout=_CONNECT_TIMEOUT,
                                error_cb=self._on_error,
                                disconnected_cb=self._on_disconnect,
                            )
                        )
                    except (OSError, nats.errors.Error) as exc:
                        outcome.append(exc)
                    tg.cancel_scope.cancel()
        except TimeoutError as exc:
            outcome.append(exc)
        finally:
            self._refused = None
        nc = outcome[0] if outcome else None
        if not isinstance(nc, nats.aio.client.Client):  # failed, timed out, or refused
            reason = self._last_error or nc
            detail = f"no NATS server of {self.servers} could be reached: {reason!r}"
            raise ConnectionError(detail)
        # nats-py reads this option at each reconnect: from now on, never give up.
        nc.options["max_reconnect_attempts"] = -1
        self._nc = nc

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Subscribe to this node's inbox and carry messages until ``close``; then disconnect."""
        nc = self._nc
        if nc is None:
            raise RuntimeError("connect first")
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    for subject, cb in (
                        (inbox_subject(self.node), self._on_frame),
                        (self._reply_prefix + "*", self._on_reply),
                    ):
                        await nc.subscribe(
                            subject,
                            cb=cb,
                            pending_msgs_limit=INBOX_PENDING,
                            pending_bytes_limit=_INBOX_PENDING_BYTES,
                        )
                    await nc.flush()
                    for peer in self._links.values():
                        tg.start_soon(self._carry_requests, peer)
                    tg.start_soon(self._carry_responses)
                    tg.start_soon(self._flying.reap)
                    tg.start_soon(self._watch)
                    task_status.started()
                    await anyio.sleep_forever()
        finally:
            self._tg = None
            for peer in self._links.values():
                for message in peer.outbox.drain():
                    if isinstance(message, Request):
                        self._fail(message, SendErrorKind.CLOSED, "the runtime is closing")
            self._fail_flying(None, SendErrorKind.CLOSED, "the runtime is closing")
            with anyio.CancelScope(shield=True):
                await self._refuse_owed()
                await nc.close()

    async def _refuse_owed(self) -> None:
        """On the way out: carry the answers already made, refuse every other one owed."""
        for response in self.bus.network_outbox.drain():
            await self._carry(response)
        owed, self._owed = self._owed, {}
        detail = f"node {self.node} shut down before answering"
        for (peer, request_id), (reply, _, sid) in owed.items():
            payload = refusal_payload(request_id, SendError(SendErrorKind.OFFLINE, detail))
            await self._publish_in(sid, reply, Kind.REFUSAL, peer, payload)

    def close(self) -> None:
        """Stop carrying messages (``run`` then disconnects)."""
        self._scope.cancel()

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        if isinstance(exc, ssl.SSLCertVerificationError) and self._refused is not None:
            self._unverified += 1
            if self._unverified >= len(self.servers):
                self._refused.set()
        if isinstance(exc, nats.errors.SlowConsumerError):
            self.dropped["inbox full"] += 1
            now = time.monotonic()
            if now - self._full_logged > 1:  # one line a second under a flood
                self._full_logged = now
                log.warning("dropped frames: more than %d wait to be read", INBOX_PENDING)
            return
        log.warning("NATS: %r", exc)

    async def _on_disconnect(self) -> None:
        count = len(self._flying)
        if count:
            log.warning("lost the NATS connection: %d requests in flight fail", count)
        self._fail_flying(None, SendErrorKind.OFFLINE, "lost the connection to NATS in flight")

    def _fail_flying(self, peer: Link | None, kind: SendErrorKind, detail: str) -> None:
        """Fail every request in flight (to ``peer``, or to anyone)."""
        for flying in self._flying.take_all(peer):
            self._fail(flying.request, kind, detail)

    # -- sessions --------------------------------------------------------

    def _envelope(self, kind: Kind, to_node: str, payload: object) -> Envelope:
        now_ns = time.time_ns()
        return Envelope(
            kind=kind,
            from_node=self.node,
            to_node=to_node,
            seq=self._seq.next(now_ns),
            sent_ms=now_ns // 1_000_000,
            payload=payload,
        )

    def _sealed(self, kind: Kind, to_node: str, payload: object, session: Session) -> bytes:
        """The session frame of a new envelope (``_envelope``, sealed in ``session``)."""
        now_ns = time.time_ns()
        seq = self._seq.next(now_ns)
        return seal_fields(session, kind, self.node, to_node, seq, now_ns // 1_000_000, payload)

    def _signed(self, kind: Kind, to_node: str, payload: object) -> bytes:
        return seal(self._envelope(kind, to_node, payload), self.key)

    async def _session(self, peer: Link, timeout: float, stale: bytes | None = None) -> Session:
        """This node's session with ``peer``, handshaking if there is none (or it is ``stale``)."""
        async with peer.handshaking:
            session = peer.session
            if session is not None and session.sid != stale:
                return session
            if session is not None:
                self._forget(session.sid)
                peer.session = None
            assert self._nc is not None
            handshake = start_handshake(self.node, peer.name)
            try:
                try:
                    hello = self._signed(Kind.HELLO, peer.name, handshake.hello)
                    reply = await self._nc.request(peer.subject, hello, timeout=timeout / 2)
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    # Once more, a fresh seq (see UNREACHED_RETRY: NATS loses some)
                    await anyio.sleep(UNREACHED_RETRY)
                    hello = self._signed(Kind.HELLO, peer.name, handshake.hello)
                    reply = await self._nc.request(peer.subject, hello, timeout=timeout / 2)
            except nats.errors.NoRespondersError:
                raise SendError(
                    SendErrorKind.OFFLINE, f"node {peer.name} is not reachable"
                ) from None
            except nats.errors.TimeoutError:
                raise SendError(
                    SendErrorKind.TIMEOUT, f"node {peer.name} did not answer the handshake"
                ) from None
            except nats.errors.Error as exc:
                raise SendError(SendErrorKind.OFFLINE, f"to {peer.name}: {exc!r}") from None
            try:
                outer = unpack_frame(reply.data)
                if len(outer) != 3:
                    raise BadEnvelope("bad handshake", "the WELCOME is not signed")
                welcome = open_signed(outer, me=self.node, peers=self.peers)
                self._guard.check(welcome, _now_ms())
                session = finish_handshake(handshake, welcome)
            except BadEnvelope as exc:
                self._drop(exc.reason, str(exc))
                raise SendError(
                    SendErrorKind.OFFLINE, f"node {peer.name} answered the handshake badly"
                ) from None
            peer.session = session
            self._sessions[session.sid] = session
            self.sessions_made += 1
            return session

    def _forget(self, sid: bytes) -> None:
        self._sessions.pop(sid, None)
        self._confirmed.discard(sid)

    async def _welcome(self, hello: Envelope, reply: str | None) -> None:
        """Answer a verified HELLO: keep the session it opens, and say WELCOME."""
        if reply is None:
            return self._drop("bad handshake", "a HELLO without a reply subject")
        try:
            session, payload = accept_hello(hello)
        except BadEnvelope as exc:
            return self._drop(exc.reason, str(exc))
        peer = self._links[hello.from_node]
        held = self._sessions.get(session.sid)
        if held is not None and (held.peer != peer.name or held.initiator):
            # a sid seen on the wire, reused: it would cut the session it names
            return self._drop("bad handshake", f"{peer.name} reused a session id held")
        if held is None:
            peer.accepted.append(session.sid)
            while len(peer.accepted) > ACCEPTED:
                self._forget(peer.accepted.popleft())
        self._sessions[session.sid] = session
        self._confirmed.discard(session.sid)  # new keys: nothing verified under them yet
        self.sessions_made += 1
        await self._publish(reply, self._signed(Kind.WELCOME, peer.name, payload))

    async def _ask_rekey(self, outer: list[object], reply: str | None) -> None:
        """A frame in a session this node does not hold: ask its sender to handshake again."""
        second = int(time.monotonic())
        start, sent = self._rekeys
        if start == second and sent >= _REKEYS_PER_SECOND:
            return
        self._rekeys = (second, sent + 1 if start == second else 1)
        sid, body = outer[1], outer[2]
        session = self._sessions.get(sid) if type(sid) is bytes else None
        sender: object = None
        if session is not None:
            sender = session.peer
        elif type(body) is bytes:
            try:  # who it claims to be from: the REKEY tells only that node, signed
                fields = msgpack.unpackb(body, raw=False)
                sender = fields[1] if isinstance(fields, list) and len(fields) == 6 else None
            except Exception:
                return
        if not isinstance(sender, str) or sender not in self._links:
            return
        frame = self._signed(Kind.REKEY, sender, [sid])
        await self._publish(reply or self._links[sender].subject, frame)

    def _rekeyed(self, envelope: Envelope) -> bytes | None:
        """A verified REKEY: forget the session it names if it is ours; return that sid."""
        payload = envelope.payload
        if not (isinstance(payload, list) and len(payload) == 1 and type(payload[0]) is bytes):
            self._drop("malformed", "rekey")
            return None
        peer = self._links[envelope.from_node]
        if peer.session is not None and peer.session.sid == payload[0]:
            self._forget(payload[0])
            peer.session = None
        return payload[0]

    # -- outbound --------------------------------------------------------

    async def _carry_requests(self, peer: Link) -> None:
        while True:
            await peer.wait_for_room()  # so that what waits stays in the bounded outbox
            try:
                batch = await peer.outbox.get_batch(INFLIGHT - peer.inflight)
            except MailboxClosed:
                return
            peer.busy = True
            try:
                for message in batch:  # published without yielding: one flush for them all
                    if isinstance(message, Request):
                        await self._send_request(peer, message)
            finally:
                peer.busy = False

    async def _transmit(self, peer: Link, request: Request) -> bool:
        """Send ``request`` now, from its sender's task, if nothing need wait before it.

        That is: nothing queued or being sent to ``peer``, a session open and
        an in-flight slot free. False: the sender queues it in the outbox.
        """
        if peer.busy or len(peer.outbox) or peer.session is None or peer.inflight >= INFLIGHT:
            return False
        if self._nc is None or not self._nc.is_connected:
            return False
        await self._send_request(peer, request)
        return True

    async def answer(self, response: Response) -> None:
        """Send a process's answer to another node, from the responder's task (the bus's seam)."""
        await self._carry(response)

    async def _send_request(
        self, peer: Link, request: Request, resent: bool = False, retried: bool = False
    ) -> None:
        if request.expects_response is not None and not self.bus.awaits_answer(request):
            return  # its sender gave up (timed out) while it waited here
        session = peer.session
        if session is None:
            timeout = min(request.expects_response or HANDSHAKE_TIMEOUT, HANDSHAKE_TIMEOUT)
            try:
                session = await self._session(peer, timeout)
            except SendError as exc:
                return self.bus.fail_request(request, exc)
        payload = request_payload(request)
        frame = self._sealed(Kind.REQUEST, peer.name, payload, session)
        if request.expects_response is None:
            await self._publish(peer.subject, frame)
            return
        if peer.inflight >= INFLIGHT:  # only a resend can find the slots taken
            await peer.wait_for_room()
            if not self.bus.awaits_answer(request):
                return
        flying = Flying(link=peer, request=request, sid=session.sid, resent=resent, retried=retried)
        token = self._flying.add(flying, _loop_time() + request.expects_response)
        await self._publish(peer.subject, frame, reply=self._reply_prefix + token)

    async def _watch(self) -> None:
        """Probe each peer with requests in flight; NATS says when nobody listens any more."""
        while True:
            await anyio.sleep(WATCH_INTERVAL)
            for peer in self._links.values():
                if not peer.inflight:
                    continue
                if peer.probe is not None and self._probes.pop(peer.probe, None) is not None:
                    peer.probe_misses = 0  # the last probe was not refused: it is there
                peer.probe = token = "p" + self._flying.token()
                self._probes[token] = peer
                await self._publish(peer.subject, b"", reply=self._reply_prefix + token)

    async def _on_reply(self, msg: nats.aio.msg.Msg) -> None:
        token = msg.subject[len(self._reply_prefix) :]
        gone = msg.headers is not None and msg.headers.get("Status") == _NO_RESPONDERS
        probed = self._probes.pop(token, None)
        if probed is not None:
            if gone:
                probed.probe_misses += 1
                if probed.probe_misses >= 2:  # twice in a row: not a fresh subscription's race
                    detail = f"node {probed.name} went away (nobody listens on its inbox)"
                    self._fail_flying(probed, SendErrorKind.OFFLINE, detail)
            return
        flying = self._flying.take(token)
        if flying is None:
            log.debug("dropped an answer on %s: nobody waits for it", msg.subject)
            return
        peer, request = flying.link, flying.request
        if gone:  # not delivered: safe to send again, once (see UNREACHED_RETRY)
            if flying.retried:
                detail = f"node {peer.name} is not reachable"
                return self._fail(request, SendErrorKind.OFFLINE, detail)
            assert self._tg is not None
            self._tg.start_soon(self._retry, peer, flying)
            return
        envelope = self._open(msg.data)
        if envelope is None:
            return  # counted; the sender's deadline says TIMEOUT
        if envelope.from_node != peer.name:
            return self._drop("wrong answerer", envelope.from_node)
        if envelope.kind is Kind.REKEY:
            if self._rekeyed(envelope) != flying.sid:
                return self._drop("malformed", "a rekey of another session")
            if flying.resent:
                detail = f"node {peer.name} lost the session again"
                return self._fail(request, SendErrorKind.OFFLINE, detail)
            assert self._tg is not None
            self._tg.start_soon(self._send_request, peer, request, True)
            return
        self._answer(request, envelope)

    async def _retry(self, peer: Link, flying: Flying) -> None:
        await anyio.sleep(UNREACHED_RETRY)
        await self._send_request(peer, flying.request, flying.resent, retried=True)

    def _answer(self, request: Request, envelope: Envelope) -> None:
        try:
            answer = answer_of(envelope, request)
        except BadEnvelope as exc:
            return self._drop(exc.reason, str(exc))
        if isinstance(answer, SendError):
            return self.bus.fail_request(request, answer)
        self.bus.respond(answer)

    def _fail(self, request: Request, kind: SendErrorKind, detail: str) -> None:
        self.bus.fail_request(request, SendError(kind, detail))

    # -- inbound ---------------------------------------------------------

    def _drop(self, reason: str, detail: str) -> None:
        self.dropped[reason] += 1
        log.warning("dropped a frame from the network (%s): %s", reason, detail[:200])

    def _open_outer(self, outer: list[object]) -> Envelope:
        if len(outer) == 3:
            envelope = open_signed(outer, me=self.node, peers=self.peers)
        else:
            envelope = open_session_frame(outer, me=self.node, sessions=self._sessions)
            self._confirmed.add(outer[1])  # type: ignore[arg-type]  # bytes: it verified
        self._guard.check(envelope, _now_ms())
        return envelope

    def _open(self, frame: bytes) -> Envelope | None:
        try:
            return self._open_outer(unpack_frame(frame))
        except BadEnvelope as exc:
            self._drop(exc.reason, str(exc))
            return None

    async def _on_frame(self, msg: nats.aio.msg.Msg) -> None:
        if not msg.data:
            return  # a liveness probe: NATS delivering it was the answer (invariant 5)
        reply = msg.reply or None
        outer: list[object] = []
        try:
            outer = unpack_frame(msg.data)
            envelope = self._open_outer(outer)
        except BadEnvelope as exc:
            self._drop(exc.reason, str(exc))
            if exc.reason == "unknown session" or (
                exc.reason == "bad mac" and outer[1] not in self._confirmed
            ):
                await self._ask_rekey(outer, reply)
            return
        signed = len(outer) == 3
        kind = envelope.kind
        if signed and kind is Kind.HELLO:
            return await self._welcome(envelope, reply)
        if signed and kind is Kind.REKEY:
            self._rekeyed(envelope)
            return
        if signed or kind is not Kind.REQUEST:
            return self._drop("unexpected kind", kind.name)
        try:
            request = request_of(envelope, self._address)
        except BadEnvelope as exc:
            return self._drop(exc.reason, str(exc))
        sid = outer[1]
        assert type(sid) is bytes
        key = (envelope.from_node, request.id)
        if request.expects_response is not None and reply is not None:
            self._owe(key, reply, request.expects_response, sid)
        try:
            await self.bus.deliver_from_network(request, wait=False)
        except SendError as exc:
            if exc.kind is SendErrorKind.BUSY:
                self.dropped["busy"] += 1
            if self._owed.pop(key, None) is not None and reply is not None:
                payload = refusal_payload(request.id, exc)
                await self._publish_in(sid, reply, Kind.REFUSAL, envelope.from_node, payload)

    def _address(self, node: str, text: str) -> Address:
        """The Address of process ``text`` on ``node``, remembered (a peer names the same
        few processes); IdError for a bad process id."""
        address = self._addresses.get((node, text))
        if address is None:
            address = Address(node=node, process=ProcessId.parse(text))
            if len(self._addresses) >= _ROUTES:
                self._addresses.clear()
            self._addresses[node, text] = address
        return address

    def _owe(self, key: tuple[str, int], reply: str, timeout: float, sid: bytes) -> None:
        now = _loop_time()
        owed = self._owed
        if len(owed) >= _OWED:
            for stale in [k for k, (_, deadline, _) in owed.items() if deadline <= now]:
                del owed[stale]
            while len(owed) >= _OWED:
                del owed[next(iter(owed))]
        owed[key] = (reply, now + timeout, sid)

    async def _carry_responses(self) -> None:
        outbox = self.bus.network_outbox
        while True:
            try:
                batch = await outbox.get_batch(outbox.capacity)
            except MailboxClosed:
                return
            for response in batch:  # published without yielding: one flush for them all
                await self._carry(response)

    async def _carry(self, response: Response) -> None:
        owed = self._owed.pop((response.target.node, response.id), None)
        if owed is None or owed[1] < _loop_time():
            log.debug("dropped response %d to %s: not owed", response.id, response.target)
            return
        payload = response_payload(response)
        await self._publish_in(owed[2], owed[0], Kind.RESPONSE, response.target.node, payload)

    async def _publish_in(
        self, sid: bytes, subject: str, kind: Kind, to_node: str, payload: object
    ) -> None:
        """Publish in session ``sid`` (the one a request came in), if it is still held."""
        session = self._sessions.get(sid)
        if session is None:
            log.info("dropped a %s to %s: its session was forgotten", kind.name, to_node)
            return
        await self._publish(subject, self._sealed(kind, to_node, payload, session))

    async def _publish(self, subject: str, frame: bytes, reply: str = "") -> None:
        assert self._nc is not None
        try:
            await self._nc.publish(subject, frame, reply=reply)
        except nats.errors.Error as exc:
            log.warning("could not publish to %s: %r", subject, exc)
