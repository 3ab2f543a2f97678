"""Types of ``_cwrite.c``: a batch's ops handed to a write batch in C."""

from collections.abc import Callable
from typing import Any

def apply(
    ops: list[tuple[bytes, bytes | None]],
    put: Callable[[bytes, bytes], Any],
    delete: Callable[[bytes], Any],
    /,
) -> None:
    """``put(key, value)`` per op in order, ``delete(key)`` where the value is None."""
