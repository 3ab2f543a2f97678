"""Scans, counters and a retried transaction.

A shop keeps its stock in one db. The example:

1. clears what a previous run left, with one range delete;
2. writes a catalogue in one atomic batch, then scans it page by page;
3. counts visits with an atomic counter (stored as ASCII decimal);
4. sells an item in a transaction that reads the stock; another write
   changes the stock meanwhile, so the first commit is refused with
   TransactionConflict and ``db.transact`` runs the transaction again.

Run it alone::

    python -m examples.scans_counters --home ./data
"""

from __future__ import annotations

from examples import run_alone
from kvruntime import ProcessContext, kv

PROCESS = "shop:corner-shop:examples.os"

TEXT = kv.Utf8Codec()

CATALOGUE = {
    "item:apple": "12",
    "item:bread": "3",
    "item:cheese": "5",
    "item:dates": "40",
    "item:eggs": "24",
}


async def main(ctx: ProcessContext) -> None:
    """Range delete, batch write, paged scan, counter, and a retried transaction."""
    db = await kv.open(ctx, ctx.package_id, "shop", key_codec=TEXT, value_codec=TEXT)

    cleared = await db.delete_range(prefix="item:") + await db.delete_range(prefix="count:")
    print(f"Cleared {cleared} keys a previous run left, in one atomic range delete.")

    await db.set_many(CATALOGUE)
    print(f"Wrote {len(CATALOGUE)} items in one atomic batch.")

    page = await db.list_page(prefix="item:", limit=2)
    names = ", ".join(key for key, _ in page.items)
    print(f"First page of two: {names}; the cursor resumes after {page.cursor!r}.")

    print("Every item, pulled two per page as the loop goes:")
    async for key, stock in db.scan(prefix="item:", page_size=2):
        print(f"  {key.removeprefix('item:')}: {stock}")
    newest_first = [key async for key in db.keys(prefix="item:", reverse=True)]
    print(f"In reverse: {', '.join(newest_first)}.")

    for _ in range(3):
        visits = await db.increment("count:visits")
    stored = await db.get("count:visits")
    print(f"Counted {visits} visits; get reads the counter as the ASCII text {stored!r}.")
    await db.set("count:big", str(2**63 - 1))
    try:
        await db.increment("count:big")
    except kv.IntegerOverflow as error:
        print(f"An increment past the signed 64-bit range is refused: {error}.")

    attempts = 0

    async def sell_one_apple(tx: int) -> int:
        nonlocal attempts
        attempts += 1
        stock = int(await db.get("item:apple", tx_id=tx))
        if attempts == 1:
            await db.set("item:apple", str(stock + 10))  # a delivery lands meanwhile
            print("Meanwhile a delivery of 10 apples is written outside the transaction.")
        await db.set("item:apple", str(stock - 1), tx_id=tx)
        return stock - 1

    left = await db.transact(sell_one_apple, retries=3)
    print(f"Sold one apple in {attempts} attempts: the first commit met a TransactionConflict.")
    print(f"Apples left: {left} (the delivery was not lost).")


if __name__ == "__main__":
    run_alone(PROCESS, main, description=__doc__)
