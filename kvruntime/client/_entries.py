"""The async iterator ``scan`` and ``keys`` hand out: a paged range's entries, one at a time.

``entries(fetch)`` iterates the entries of the pages ``fetch()`` returns
(each a list, possibly empty; None after the last), awaiting ``fetch`` only
when the current page is spent, so memory holds one page. Where built, it
is ``_centries.c``'s ``Entries`` (issue 12): its ``__anext__`` hands out the
page's next entry through an awaitable that completes at once, with no
generator frame or coroutine per entry; ``_refill`` below is the one
coroutine it awaits, once per page. ``entries_py``, an async generator, is
the reference and the fallback where the extension is not built
(``HAVE_C``); both give the same entries, and behave alike at the edges:

- an error from ``fetch`` (a typed client error, a cancellation)
  propagates from that ``__anext__``, and ends the iteration (a later
  ``__anext__`` raises StopAsyncIteration);
- ``aclose()`` ends it; breaking out of ``async for`` leaves no request
  behind, since a page is fetched only inside an awaited ``__anext__``;
- a second ``__anext__`` while a page is being fetched is a RuntimeError;
- ``__anext__`` never raises at once: its awaitable does (StopAsyncIteration
  at the end), so ``anext(it, default)`` works, and the awaitable is a
  ``collections.abc.Coroutine`` (``asyncio.create_task(anext(it))``);
- a page is a list or a tuple; any other page is a TypeError (in C) that
  ends the iteration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeVar

try:
    from ._centries import Entries as _CEntries
except ImportError:  # not built (no compiler at install): the async generator alone
    _CEntries = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from ._centries import Entries

T = TypeVar("T")

#: The next page's entries (a list, possibly empty), or None after the last page.
Fetch = Callable[[], Awaitable["list[T] | None"]]

#: Whether the compiled iterator is in use (``_centries.c``).
HAVE_C: Final = _CEntries is not None

__all__ = ["HAVE_C", "entries", "entries_c", "entries_py"]


def entries(fetch: Fetch[T]) -> AsyncIterator[T]:
    """The entries of ``fetch``'s pages, in order: in C where built, else ``entries_py``."""
    return entries_py(fetch) if _CEntries is None else entries_c(fetch)


def entries_c(fetch: Fetch[T]) -> AsyncIterator[T]:
    """``entries`` through the compiled iterator (ImportError when it is not built)."""
    if _CEntries is None:
        raise ImportError("kvruntime.client._centries is not built")
    return _CEntries(fetch, _refill)


async def entries_py(fetch: Fetch[T]) -> AsyncIterator[T]:
    """The reference: ``entries`` as an async generator."""
    while (items := await fetch()) is not None:
        for item in items:
            yield item


async def _refill(it: Entries[T], fetch: Fetch[T]) -> T:
    """The first entry of the next page with any, for ``it`` whose page is spent."""
    if it.busy:
        raise RuntimeError("anext(): the scan is already fetching its next page")
    it.busy = True
    try:
        while (items := await fetch()) is not None:
            if items:
                return it.load(items)
    except BaseException:
        it.finish()  # as an async generator: an error ends the iteration
        raise
    finally:
        it.busy = False
    it.finish()
    raise StopAsyncIteration
