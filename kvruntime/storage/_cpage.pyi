"""Types of ``_cpage.c``: a scan page built in C straight from an engine's iterator."""

from collections.abc import Iterator
from typing import Any

def fill_page(
    raw: Iterator[Any], include_value: bool, limit: int, max_bytes: int, /
) -> tuple[bytes, int, bytes | None, bool]:
    """``store.fill_page_py``'s page (blob, count, last key, more), built in C."""
