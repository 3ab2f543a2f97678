"""Types of ``_cscan.c``: a scan page of ``blobs.py`` decoded in C."""

def decode_scan_page(
    data: object, count: int, keys_only: bool, /
) -> list[tuple[bytes, bytes | None]] | None:
    """The ``count`` entries of a flat page blob, or None if the reference would refuse it."""
