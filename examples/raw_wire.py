"""Raw wire: talk to kv:distro:sys with msgpack bodies built by hand, no client library.

This is what a sender written in any language does. A request body is the
msgpack map ``{"package_id": {...}, "db": str, "action": KvAction}``, with
keys as msgpack ``bin``; the value of a ``Set`` travels beside the body, as
the message's blob. Enums are tagged as Rust's serde does: a unit variant
is a str (``"Open"``), any other a one-entry map (``{"Get": key}``). See
protocol/PROTOCOL.md for every shape, and protocol/golden_vectors.json for
the exact bytes of each.

The last request is malformed on purpose (a str where the key must be
bin): kv answers ``MalformedRequest`` and goes on serving.

Run it alone::

    python -m examples.raw_wire --home ./data
"""

from __future__ import annotations

from typing import Any

import msgpack

from examples import run_alone
from kvruntime import ProcessContext

PROCESS = "raw:wire-demo:examples.os"

#: Where kv lives: the process kv:distro:sys on this node.
KV = "kv:distro:sys"


def request_body(ctx: ProcessContext, db: str, action: Any) -> bytes:
    """A KvRequest body, packed by hand: a map of package_id, db and action."""
    package_id = {
        "package_name": ctx.package_id.package_name,
        "publisher_node": ctx.package_id.publisher_node,
    }
    body: bytes = msgpack.packb(
        {"package_id": package_id, "db": db, "action": action}, use_bin_type=True
    )
    return body


def hexdump(data: bytes) -> str:
    """``data`` as rows of 16 hex bytes, with the printable ASCII beside them."""
    rows = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        text = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in chunk)
        rows.append(f"     {chunk.hex(' '):<47}  {text}")
    return "\n".join(rows)


async def send(ctx: ProcessContext, what: str, body: bytes, blob: bytes | None = None) -> None:
    """Send one body to kv, print it in hex and print the decoded response."""
    print(f"-> {what}")
    print(f"   request body, {len(body)} bytes:")
    print(hexdump(body))
    if blob is not None:
        print(f"   blob: {blob!r}")
    response = await ctx.send_and_await_response(KV, body, blob=blob, timeout=5.0)
    print(f"   response body, {len(response.body)} bytes:")
    print(hexdump(response.body))
    decoded = msgpack.unpackb(response.body, raw=False)
    blob_text = "" if response.blob is None else f", with the blob {response.blob!r}"
    print(f"<- kv answered {decoded!r}{blob_text}")


async def main(ctx: ProcessContext) -> None:
    """Open a db, set, get, ask exists, then send one malformed body."""
    await send(
        ctx, "Open the db 'wire' (a unit action: the str 'Open')", request_body(ctx, "wire", "Open")
    )

    set_action = {"Set": {"key": b"greeting", "tx_id": None}}
    await send(
        ctx,
        "Set greeting (a struct action; the value goes in the blob)",
        request_body(ctx, "wire", set_action),
        blob=b"hello, wire",
    )

    get_action = {"Get": b"greeting"}
    await send(
        ctx,
        "Get greeting (the value comes back as the blob)",
        request_body(ctx, "wire", get_action),
    )

    exists_action = {"Exists": b"nobody"}
    await send(ctx, "Exists nobody", request_body(ctx, "wire", exists_action))

    # The mistake a hand-written sender makes most: the key packed as a str, not bin.
    malformed = request_body(ctx, "wire", {"Get": "greeting"})
    await send(
        ctx,
        "Get with the key packed as a str (a8 = str of 8 bytes) where bin (c4 08) is due",
        malformed,
    )

    await send(ctx, "Get greeting again: kv kept serving", request_body(ctx, "wire", get_action))


if __name__ == "__main__":
    run_alone(PROCESS, main, description=__doc__)
