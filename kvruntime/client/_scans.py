"""The scan side of ``Kv``: ``Page``, and paged reads and deletes of a key range.

``list_page`` is the one request; ``scan_pages``, ``scan`` and ``keys`` pull
pages from it as you iterate, so memory holds one page, not the db.
``scan_pages`` hands over each page whole (one ``await`` per page, not per
entry); ``scan`` and ``keys`` hand out entries through ``_entries`` (in C
where built: no generator step per entry, a coroutine per page).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Literal, cast, overload

from protocol.blobs import decode_scan_page
from protocol.codec import DecodeError
from protocol.messages import DeleteRange, DeleteRangeResponse, Scan, ScanResponse
from protocol.variant import Variant, frozen_value

from ._checks import as_bytes
from ._core import K, KvCore, V
from ._entries import entries
from ._exchange import expect
from .errors import UnexpectedResponse

__all__ = ["KvScans", "Page"]


@frozen_value(kw_only=True)  # attrs' class, built by @variant (issue 15)
class Page(Variant, Generic[K, V]):
    """One page of a scan: its entries in order, and the cursor that resumes after them.

    ``items`` holds ``(key, value)``; a page asked with ``keys_only`` is a
    ``Page[K, None]``, its values None. ``cursor`` is the raw last key, or None when
    the scan is done. Pass it back as ``cursor=`` to continue strictly after
    it (strictly before it, in reverse).
    """

    items: list[tuple[K, V]]
    cursor: bytes | None


class KvScans(KvCore[K, V]):
    """``Kv``'s range reads and range deletes."""

    __slots__ = ()

    @overload
    async def list_page(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        keys_only: Literal[False] = False,
        limit: int | None = None,
        cursor: bytes | None = None,
        tx_id: int | None = None,
    ) -> Page[K, V]: ...
    @overload
    async def list_page(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        keys_only: Literal[True],
        limit: int | None = None,
        cursor: bytes | None = None,
        tx_id: int | None = None,
    ) -> Page[K, None]: ...
    @overload
    async def list_page(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        keys_only: bool,
        limit: int | None = None,
        cursor: bytes | None = None,
        tx_id: int | None = None,
    ) -> Page[K, V | None]: ...
    async def list_page(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        keys_only: bool = False,
        limit: int | None = None,
        cursor: bytes | None = None,
        tx_id: int | None = None,
    ) -> Page[K, Any]:
        """One page of entries in key order (descending when ``reverse``).

        The range is the keys starting with ``prefix`` (bytes, or text as
        UTF-8), or ``start <= key < end`` (keys through the key codec); not
        both. The server bounds the page (by default 1000 entries and 4 MiB)
        whatever ``limit`` asks. ``cursor`` is a previous page's cursor.
        """
        action = Scan(
            prefix=_raw_prefix(prefix, start, end),
            start=None if start is None else self._key_bytes(start, "start"),
            end=None if end is None else self._key_bytes(end, "end"),
            reverse=reverse,
            keys_only=keys_only,
            limit=limit,
            cursor=None if cursor is None else as_bytes(cursor, "cursor"),
            tx_id=tx_id,
        )
        response, blob = await self._call(action)
        response = expect(ScanResponse, response)
        try:
            raw = decode_scan_page(blob or b"", response.count, keys_only=keys_only)
        except DecodeError as exc:
            raise UnexpectedResponse(f"kv:distro:sys sent a malformed page: {exc}") from exc
        if self._raw:
            return Page(items=cast("list[tuple[K, Any]]", raw), cursor=response.cursor)
        key, value = self._key.decode, self._value.decode
        items = [(key(k), None if v is None else value(v)) for k, v in raw]
        return Page(items=items, cursor=response.cursor)

    def scan(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        page_size: int | None = None,
        tx_id: int | None = None,
    ) -> AsyncIterator[tuple[K, V]]:
        """Every ``(key, value)`` in the range, pulled one page at a time as you iterate.

        Memory holds one page, not the db. Keys written or deleted while you
        iterate may or may not be seen; a key present throughout is seen once.
        Nothing is asked before the first entry is awaited; ``aclose()`` (or
        breaking out) leaves no request behind.
        """
        next_page = self._next_page(prefix, start, end, reverse, False, page_size, tx_id)

        async def fetch() -> list[tuple[K, V]] | None:
            page = await next_page()
            # A page asked with values holds no None value: its pairs go out as they are.
            return None if page is None else cast("list[tuple[K, V]]", page.items)

        return entries(fetch)

    async def scan_pages(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        page_size: int | None = None,
        tx_id: int | None = None,
    ) -> AsyncIterator[Page[K, V]]:
        """Every page of the range (entries as ``scan`` yields them), one request each.

        ``async for page in db.scan_pages(): for key, value in page.items: ...``
        reads what ``scan`` reads, in the same order, a page at a time; each
        page's ``cursor`` resumes after it (None on the last). Memory holds one
        page; the server bounds its size (``list_page``). No page is empty: a
        range with no entry gives none.
        """
        next_page = self._next_page(prefix, start, end, reverse, False, page_size, tx_id)
        while (page := await next_page()) is not None:
            if page.items:
                yield cast("Page[K, V]", page)  # asked with values: no None value

    def keys(
        self,
        *,
        prefix: bytes | str | None = None,
        start: K | None = None,
        end: K | None = None,
        reverse: bool = False,
        page_size: int | None = None,
        tx_id: int | None = None,
    ) -> AsyncIterator[K]:
        """Every key in the range (no values sent), pulled one page at a time."""
        next_page = self._next_page(prefix, start, end, reverse, True, page_size, tx_id)

        async def fetch() -> list[K] | None:
            page = await next_page()
            return None if page is None else [key for key, _ in page.items]

        return entries(fetch)

    def _next_page(
        self,
        prefix: bytes | str | None,
        start: K | None,
        end: K | None,
        reverse: bool,
        keys_only: bool,
        page_size: int | None,
        tx_id: int | None,
    ) -> Callable[[], Awaitable[Page[K, V | None] | None]]:
        """The range's next page on each call, resumed from the previous page's
        cursor; None once the last page was read. No request before the first call."""
        cursor: bytes | None = None
        done = False

        async def next_page() -> Page[K, V | None] | None:
            nonlocal cursor, done
            if done:
                return None
            page = await self.list_page(
                prefix=prefix,
                start=start,
                end=end,
                reverse=reverse,
                keys_only=keys_only,
                limit=page_size,
                cursor=cursor,
                tx_id=tx_id,
            )
            cursor = page.cursor
            done = cursor is None
            return page

        return next_page

    async def delete_range(
        self, *, prefix: bytes | str | None = None, start: K | None = None, end: K | None = None
    ) -> int:
        """Delete every key under ``prefix`` or in ``start <= key < end`` atomically; how many went.

        With no bounds at all, every key of the db goes.
        """
        action = DeleteRange(
            prefix=_raw_prefix(prefix, start, end),
            start=None if start is None else self._key_bytes(start, "start"),
            end=None if end is None else self._key_bytes(end, "end"),
        )
        return expect(DeleteRangeResponse, (await self._call(action))[0]).count


def _raw_prefix(prefix: bytes | str | None, start: object, end: object) -> bytes | None:
    if prefix is None:
        return None
    if start is not None or end is not None:
        raise ValueError("give a prefix or start/end, not both")
    return prefix.encode("utf-8") if isinstance(prefix, str) else as_bytes(prefix, "prefix")
