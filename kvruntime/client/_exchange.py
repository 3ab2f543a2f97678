"""The request/response plumbing every client call goes through.

``request`` sends one KvRequest to kv:distro:sys and returns its answer;
``exchange`` is the part a ``Kv`` handle shares (it encodes its own body),
``answer`` its second half (the hot methods look at the bytes first);
an ``Err`` answer is raised as the client exception of its variant, and an
answer of the wrong kind as UnexpectedResponse (``expect``).
"""

from __future__ import annotations

from typing import TypeVar

from protocol.codec import DecodeError, decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, Address, PackageId, validate_db_name
from protocol.messages import ErrResponse, KvAction, KvRequest, KvResponse

from ..kernel.message import Response
from ..kernel.process import ProcessContext
from .errors import UnexpectedResponse, raise_kv_error

__all__ = ["answer", "exchange", "expect", "kv_address", "request", "unexpected"]

R = TypeVar("R", bound=KvResponse)


async def request(
    ctx: ProcessContext,
    package_id: PackageId,
    db: str,
    action: KvAction,
    *,
    blob: bytes | None = None,
    timeout: float,
) -> tuple[KvResponse, bytes | None]:
    """Send one KvRequest to kv:distro:sys; return the response and its blob.

    An ``Err`` response is raised as the client exception of its variant; a
    db name that breaks the protocol's grammar is IdError, and nothing is sent.
    """
    validate_db_name(db)
    body = encode_request(KvRequest(package_id=package_id, db=db, action=action))
    return await exchange(ctx, kv_address(ctx), body, blob, timeout)


def kv_address(ctx: ProcessContext) -> Address:
    """The address of the kv process on ``ctx``'s node."""
    return Address(node=ctx.our.node, process=KV_PROCESS_ID)


async def exchange(
    ctx: ProcessContext, target: Address, body: bytes, blob: bytes | None, timeout: float
) -> tuple[KvResponse, bytes | None]:
    """Send the encoded request ``body`` to ``target``; its answer, or its error raised."""
    return answer(await ctx.send_and_await_response(target, body, blob=blob, timeout=timeout))


def answer(message: Response) -> tuple[KvResponse, bytes | None]:
    """The KvResponse ``message`` carries and its blob; an ``Err`` is raised instead,
    and a body that is no KvResponse as UnexpectedResponse."""
    try:
        response = decode_response(message.body)
    except DecodeError as exc:
        raise UnexpectedResponse(f"kv:distro:sys sent a malformed answer: {exc}") from exc
    if isinstance(response, ErrResponse):
        raise_kv_error(response.error, message.blob)
    return response, message.blob


def unexpected(response: KvResponse) -> str:
    """The message of UnexpectedResponse for ``response``."""
    return f"kv:distro:sys answered {response!r}"


def expect(kind: type[R], response: KvResponse) -> R:
    """``response`` if it is a ``kind``, else UnexpectedResponse."""
    if not isinstance(response, kind):
        raise UnexpectedResponse(unexpected(response))
    return response
