"""Transactions: writes staged together, invisible until one commit applies them all.

A process begins a transaction, stages three orders in it, shows that
nobody sees them yet, commits, and shows all three at once. A committed
transaction is gone: committing it again is refused.

Run it alone::

    python -m examples.transactions --home ./data
"""

from __future__ import annotations

from examples import run_alone
from kvruntime import ProcessContext, kv

PROCESS = "transactions:order-desk:examples.os"

TEXT = kv.Utf8Codec()

#: What the transaction writes: all of these, or none of them.
ORDERS = {
    "order-1": "two coffees",
    "order-2": "one croissant",
    "order-3": "three muffins",
}


async def main(ctx: ProcessContext) -> None:
    """Stage three orders in a transaction, commit, and look before and after."""
    db = await kv.open(ctx, ctx.package_id, "orders", key_codec=TEXT, value_codec=TEXT)
    print(f"Opened the db 'orders' of package {ctx.package_id}.")

    # A previous run on this home committed the same orders: they are still on disk.
    kept = [key for key in ORDERS if await db.exists(key)]
    if kept:
        print(f"The orders committed by the previous run are still there: {', '.join(kept)}.")
        for key in kept:
            await db.delete(key)
        print("Deleted them, so this run starts from an empty db.")

    # The transaction belongs to this process and this db; its id is unguessable.
    tx = await db.begin_tx()
    print("Began a transaction.")
    for key, order in ORDERS.items():
        await db.set(key, order, tx_id=tx)
        print(f"Staged {key} = {order!r} in the transaction.")

    for key in ORDERS:
        seen = await db.get(key, None)
        print(f"Before the commit, get {key}: {'nothing' if seen is None else seen}.")

    await db.commit_tx(tx)
    print("Committed: the three writes landed together, in one atomic LevelDB batch.")

    for key in ORDERS:
        print(f"After the commit, get {key}: {await db.get(key)}.")

    try:
        await db.commit_tx(tx)
    except kv.NoTx as error:
        print(f"Committing the same transaction again is refused with NoTx: {error}.")


if __name__ == "__main__":
    run_alone(PROCESS, main, description=__doc__)
