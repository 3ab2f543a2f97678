"""Types of ``_centries.c``: the async iterator over a paged range's entries."""

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")

class Entries(AsyncIterator[T], Generic[T]):
    """``_entries.entries_py``'s entries, one ``__anext__`` each, with no frame per entry."""

    busy: bool
    @property
    def done(self) -> bool: ...
    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[T] | None]],
        refill: Callable[
            [Entries[T], Callable[[], Awaitable[list[T] | None]]], Coroutine[Any, Any, T]
        ],
        /,
    ) -> None: ...
    def __aiter__(self) -> Entries[T]: ...
    def __anext__(self) -> Awaitable[T]: ...
    def load(self, items: list[T], /) -> T: ...
    def finish(self) -> None: ...
    def aclose(self) -> Awaitable[None]: ...
