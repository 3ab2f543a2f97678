"""WASI shapes: the three ways the WASI key-value SDKs let code reach a store.

The same db ``colors`` is used three ways, and each sees what the others wrote:

1. a handle: ``db = await kv.open(ctx, ctx.package_id, "colors")``, then ``db.get(key)``;
2. a label per call: ``await kv.get(ctx, "colors", key)``;
3. attribute access: ``stores = kv.stores(ctx)``, then ``stores.colors.get(key)``.

Shapes 2 and 3 open the db of this process's package on first use. Values
are raw bytes here (the default); other examples use text codecs.

Run it alone::

    python -m examples.wasi_shapes --home ./data
"""

from __future__ import annotations

from examples import run_alone
from kvruntime import ProcessContext, kv

PROCESS = "shapes:palette:examples.os"


async def main(ctx: ProcessContext) -> None:
    """Write with each shape and read each write back with another shape."""
    # 1. A handle: open once, then call methods on it.
    colors = await kv.open(ctx, ctx.package_id, "colors")
    await colors.set(b"sky", b"blue")
    print("1. Handle: kv.open gave a handle on 'colors'; colors.set(b'sky', b'blue').")

    # 2. A label per call: name the db in every call.
    await kv.set(ctx, "colors", b"grass", b"green")
    sky = await kv.get(ctx, "colors", b"sky")
    print("2. Label per call: kv.set(ctx, 'colors', b'grass', b'green');")
    print(f"   kv.get(ctx, 'colors', b'sky') reads the handle's write: {sky.decode()}.")

    # 3. Attribute access: the package's dbs as attributes of one object.
    stores = kv.stores(ctx)
    await stores.colors.set(b"sun", b"yellow")
    grass = await stores.colors.get(b"grass")
    print("3. Attribute access: stores.colors.set(b'sun', b'yellow');")
    print(f"   stores.colors.get(b'grass') reads the label's write: {grass.decode()}.")

    # They are one db: the handle sees all three writes.
    found = [
        f"{key.decode()}={(await colors.get(key)).decode()}" for key in (b"sky", b"grass", b"sun")
    ]
    print(f"The handle sees all three writes in the one db 'colors': {', '.join(found)}.")


if __name__ == "__main__":
    run_alone(PROCESS, main, description=__doc__)
