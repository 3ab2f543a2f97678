"""process_lib's JSON: the bodies a Hyperware process sends, served unchanged.

A Hyperware process written in Rust talks to its kv module through
process_lib, which writes each request with ``serde_json::to_vec(&KvRequest)``:
JSON, enums tagged as serde does, the package id as a map, and every byte
field (``Vec<u8>``) an array of numbers 0-255. kvruntime reads that form as it
is and answers in it, with the variants of Hyperware's own ``KvError``: an
error that type lacks (a key past the size limit, say) arrives as the
``RocksDBError`` it has. So the same Rust code runs against either runtime.

This sender builds its bodies with Python's ``json`` the way serde_json does
(compact, no spaces) and reads every answer back as JSON.

Run it alone::

    python -m examples.process_lib_json --home ./data
"""

from __future__ import annotations

import json
from typing import Any

from examples import run_alone
from kvruntime import ProcessContext

PROCESS = "rust-like:process-lib-demo:examples.os"
KV = "kv:distro:sys"
DB = "json"


def request_body(ctx: ProcessContext, action: Any) -> bytes:
    """``serde_json::to_vec(&KvRequest { package_id, db, action })``."""
    package_id = {
        "package_name": ctx.package_id.package_name,
        "publisher_node": ctx.package_id.publisher_node,
    }
    request = {"package_id": package_id, "db": DB, "action": action}
    return json.dumps(request, separators=(",", ":")).encode()


def vec_u8(data: bytes) -> list[int]:
    """A ``Vec<u8>`` as serde_json writes it: an array of numbers."""
    return list(data)


async def send(ctx: ProcessContext, what: str, action: Any, blob: bytes | None = None) -> Any:
    """Send one JSON request; print both bodies; return the answer as JSON."""
    body = request_body(ctx, action)
    print(f"-> {what}")
    text = body.decode()
    print(f"   {text if len(text) <= 200 else text[:150] + f'... ({len(body)} bytes)'}")
    response = await ctx.send_and_await_response(KV, body, blob=blob, timeout=5.0)
    answer = json.loads(response.body)
    blob_text = "" if response.blob is None else f" + blob {response.blob!r}"
    print(f"<- {response.body.decode()}{blob_text}")
    return answer


async def main(ctx: ProcessContext) -> None:
    """Open, set, get, a transaction, and errors: all in process_lib's JSON."""
    await send(ctx, "Open (a unit variant: a JSON string)", "Open")
    key = vec_u8(b"greeting")
    await send(
        ctx, "Set: the key as numbers, the value in the blob",
        {"Set": {"key": key, "tx_id": None}}, blob=b"hello from Rust",
    )  # fmt: skip
    answer = await send(ctx, "Get greeting", {"Get": key})
    print(f"   the answer's key reads back as {bytes(answer['Get'])!r}")

    begun = await send(ctx, "BeginTx", "BeginTx")
    tx_id = begun["BeginTx"]["tx_id"]
    for name in (b"alice", b"bob"):
        await send(
            ctx, f"Set {name.decode()} inside the transaction",
            {"Set": {"key": vec_u8(name), "tx_id": tx_id}}, blob=b"online",
        )  # fmt: skip
    await send(ctx, "Commit: both writes land together", {"Commit": {"tx_id": tx_id}})

    await send(ctx, "Get a key nobody set: Hyperware's KeyNotFound", {"Get": vec_u8(b"carol")})
    too_long = vec_u8(b"k" * 70_000)  # past the 64 KiB key limit
    answer = await send(
        ctx, "Set a 70 000-byte key: an error Hyperware's KvError lacks",
        {"Set": {"key": too_long, "tx_id": None}}, blob=b"x",
    )  # fmt: skip
    print(f"   it arrives as the variant it has: {next(iter(answer['Err']))}")


if __name__ == "__main__":
    run_alone(PROCESS, main, description=__doc__)
