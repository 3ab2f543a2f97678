"""What an envelope's payload holds: requests, responses and refusals between nodes.

Pure: messages in, msgpack-able lists out, and back, every field checked.
A payload is read only after its envelope was believed (``session``), but
a believed peer may still be broken: anything not of the shape below is
``BadEnvelope("malformed")``, counted and dropped by the transport.

- ``Kind.REQUEST``: ``[id, source process, target process, body, blob,
  metadata, expects_response, capabilities]`` (the nodes are the envelope's).
- ``Kind.RESPONSE``: ``[id, body, blob, metadata, capabilities]``.
- ``capabilities``: ``[[issuer address, params JSON text], ...]``, at most
  ``MAX_CAPABILITIES``; what they are worth is the bus's to say
  (``Bus._offer``), not the wire's.
- ``Kind.REFUSAL``: ``[id, SendErrorKind value, detail]``: the request was
  not delivered, or will not be answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from protocol.ids import Address, IdError, ProcessId

from .envelope import BadEnvelope, Envelope, Kind
from .errors import SendError, SendErrorKind
from .message import Capability, Request, Response

__all__ = [
    "MAX_CAPABILITIES",
    "MAX_EXPECTS",
    "address_of",
    "answer_of",
    "refusal_payload",
    "request_of",
    "request_payload",
    "response_payload",
]

#: The longest timeout (s) a remote request may ask its answer to be kept for.
MAX_EXPECTS: Final = 3600
#: The most capabilities one message from another node may carry.
MAX_CAPABILITIES: Final = 64


def _caps_payload(caps: tuple[Capability, ...]) -> list[list[str]]:
    return [[str(cap.issuer), cap.params] for cap in caps]


def _caps_of(payload: object) -> tuple[Capability, ...]:
    """The capabilities a payload names; BadEnvelope("malformed") for anything else."""
    if not isinstance(payload, list) or len(payload) > MAX_CAPABILITIES:
        raise BadEnvelope("malformed", "capabilities")
    if not payload:
        return ()
    caps = []
    for pair in payload:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
        ):
            raise BadEnvelope("malformed", "a capability")
        try:  # a bad address (IdError), params not JSON, or nested past the parser
            caps.append(Capability(issuer=Address.parse(pair[0]), params=pair[1]))
        except (ValueError, RecursionError):
            raise BadEnvelope("malformed", f"capability {pair[0][:80]!r}") from None
    return tuple(caps)


def request_payload(request: Request) -> list[object]:
    """The payload of ``request`` (to another node's process)."""
    return [
        request.id,
        str(request.source.process),
        str(request.target.process),
        request.body,
        request.blob,
        request.metadata,
        request.expects_response,
        _caps_payload(request.capabilities),
    ]


def address_of(node: str, process: str) -> Address:
    """The Address of the process ``process`` (text) on ``node``; IdError if it is none."""
    return Address(node=node, process=ProcessId.parse(process))


def request_of(envelope: Envelope, address: Callable[[str, str], Address] = address_of) -> Request:
    """The request in a believed ``Kind.REQUEST`` envelope; ``address`` (``address_of``,
    or a caching one) makes its source and target from node and process id."""
    payload = envelope.payload
    if not (isinstance(payload, list) and len(payload) == 8):
        raise BadEnvelope("malformed", "request")
    rid, source, target, body, blob, metadata, expects, caps = payload
    if not (
        type(rid) is int
        and isinstance(source, str)
        and isinstance(target, str)
        and type(body) is bytes
        and (blob is None or type(blob) is bytes)
        and (metadata is None or isinstance(metadata, str))
        and (expects is None or (isinstance(expects, int | float) and 0 < expects <= MAX_EXPECTS))
    ):
        raise BadEnvelope("malformed", "request fields")
    try:
        source_address = address(envelope.from_node, source)
        target_address = address(envelope.to_node, target)
    except IdError as exc:
        raise BadEnvelope("malformed", str(exc)) from None
    return Request(
        id=rid,
        source=source_address,
        target=target_address,
        body=body,
        blob=blob,
        metadata=metadata,
        capabilities=_caps_of(caps),
        expects_response=None if expects is None else float(expects),
    )


def response_payload(response: Response) -> list[object]:
    """The payload of ``response`` (to another node's request)."""
    return [
        response.id,
        response.body,
        response.blob,
        response.metadata,
        _caps_payload(response.capabilities),
    ]


def refusal_payload(request_id: int, error: SendError) -> list[object]:
    """The payload of a refusal of request ``request_id`` with ``error``."""
    return [request_id, error.kind.value, error.detail]


def answer_of(envelope: Envelope, request: Request) -> Response | SendError:
    """What a believed answer to ``request`` says: its response, or the error it failed with."""
    payload = envelope.payload
    if envelope.kind is Kind.REFUSAL:
        if not (isinstance(payload, list) and len(payload) == 3 and payload[0] == request.id):
            raise BadEnvelope("malformed", "refusal")
        try:
            kind = SendErrorKind(payload[1])
        except ValueError:
            kind = SendErrorKind.OFFLINE
        return SendError(kind, str(payload[2])[:500])
    if envelope.kind is not Kind.RESPONSE:
        raise BadEnvelope("unexpected kind", envelope.kind.name)
    if not (
        isinstance(payload, list)
        and len(payload) == 5
        and payload[0] == request.id
        and type(payload[1]) is bytes
        and (payload[2] is None or type(payload[2]) is bytes)
        and (payload[3] is None or isinstance(payload[3], str))
    ):
        raise BadEnvelope("malformed", "response")
    return Response(
        id=request.id,
        source=request.target,
        target=request.source,
        body=payload[1],
        blob=payload[2],
        metadata=payload[3],
        capabilities=_caps_of(payload[4]),
    )
