"""``/db/{package}/{db}/changes``: a db's live changes as Server-Sent Events.

The db page's live panel (``static/explorer.js``) opens an ``EventSource``
here with the page's filter (``prefix``, or ``start``/``end``; ``hex=1``).
Events: ``ready`` (the watch has started; ``data`` its position), then one
``change`` per change (``id`` its seq; ``data`` JSON: seq, kind, key as the
CLI's text and as hex, a value preview or null), and ``end`` (``data`` why)
when kv ends the watch (db removed, read access revoked, log compacted). A
browser that reconnects sends ``Last-Event-ID``: the watch resumes after it.

Invariants:
1. The watch runs as a process of the db's package (``watch_as``: the same
   capability path as every page), in its own process so that a stream
   never holds the package's one-at-a-time lock the other pages take.
2. No leaked watch: the stream ends, and the watch's block ends inside its
   live process (an ``Unwatch``), when the browser leaves (ASGI
   ``http.disconnect``), when kv ends it, and when the server stops
   (``stopping``); a watch is never abandoned to kv's idle timeout.
3. Every key and value reaches the page as JSON data that the script puts
   in ``textContent``: never markup.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from ..readable import readable

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from protocol.ids import PackageId

    from ..kernel.process import ProcessContext

__all__ = ["ChangeStream", "WatchAs"]

#: ``watch_as(package, body)``: ``body(ctx)`` run as a process of the package of its own.
WatchAs = Callable[["PackageId", Callable[["ProcessContext"], Awaitable[Any]]], Awaitable[Any]]
#: Characters of a value shown in the panel before it is cut.
PREVIEW = 120


def _event(name: str, data: object, event_id: int | None = None) -> bytes:
    head = "" if event_id is None else f"id: {event_id}\n"
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=True)}\n\n".encode()


def _change(seq: int, kind: str, key: bytes, value: bytes | None) -> bytes:
    shown = None if value is None else readable(value)
    if shown is not None and len(shown) > PREVIEW:
        shown = shown[:PREVIEW] + "…"
    doc: dict[str, object] = {"seq": seq, "kind": kind, "key": readable(key) if key else '""'}
    doc["key_hex"], doc["value"] = key.hex(), shown
    return _event("change", doc, seq)


class ChangeStream:
    """An ASGI response: the SSE stream of one watch (see the module's invariants)."""

    def __init__(
        self,
        *,
        watch_as: WatchAs,
        package: PackageId,
        db: str,
        bounds: tuple[bytes | None, bytes | None, bytes | None],
        since: int | None,
        stopping: anyio.Event | None,
        headers: dict[str, str],
        timeout: float,
    ) -> None:
        self._watch_as, self._package, self._db = watch_as, package, db
        self._bounds, self._since, self._stopping = bounds, since, stopping
        self._headers = headers
        #: Seconds to wait for each answer of kv:distro:sys.
        self._timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            **self._headers,
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
        }
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            }
        )
        stop = anyio.Event()

        async def chunk(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        async def body(ctx: ProcessContext) -> None:
            from .. import kv

            prefix, start, end = self._bounds
            try:
                handle = await kv.open(
                    ctx, self._package, self._db, create=False, timeout=self._timeout
                )
                async with anyio.create_task_group() as tg:

                    async def stop_on_leave() -> None:
                        await stop.wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(stop_on_leave)
                    async with handle.watch(prefix, start=start, end=end, since=self._since) as ch:
                        await chunk(_event("ready", ch.start))
                        async for change in ch:
                            await chunk(_change(change.seq, change.kind, change.key, change.value))
                    tg.cancel_scope.cancel()
            except kv.KvError as exc:
                await chunk(_event("end", str(exc)))

        async def wait_for_leave() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            stop.set()

        async def wait_for_shutdown() -> None:
            if self._stopping is not None:
                await self._stopping.wait()
                stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_leave)
            tg.start_soon(wait_for_shutdown)
            try:
                await self._watch_as(self._package, body)
            finally:
                tg.cancel_scope.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
