"""A cache kept in sync by a change feed, and a presence list with TTL.

A bakery keeps its prices in one db. A cache (another task of the same
process; any process holding read access can do the same) takes a consistent
starting point, ``db.watch(prefix=..., snapshot=True)``: the prices as of one
position, then every change after exactly that position, pushed into the
process's mailbox by kv as the writer commits them. So the cache misses no
change and applies none twice, whatever the writer does meanwhile (sets, a
batch, a transaction, deletes). The writer's last write tells the cache the
shop has closed; the cache then equals the db.

``changes.position`` is the seq of the last change applied: a cache that
saved it could resume with ``db.watch(since=position)``, also after a restart.

Then a presence list: each user who comes online sets ``online:NAME`` with a
TTL and keeps it alive while present; the list is a watch of ``online:``.
A user who leaves deletes the key (a "delete" change); one who vanishes
stops renewing and kv's sweeper removes the key once its deadline passes (an
"expire" change, within about a second of it). Renewing with ``db.expire``
changes only the deadline, so it puts nothing in the feed: the list hears of
a user only when they come or go.

Run it alone::

    python -m examples.watch --home ./data
"""

from __future__ import annotations

import anyio

from examples import run_alone
from kvruntime import ProcessContext, kv

PROCESS = "cache:bakery:examples.os"

TEXT = kv.Utf8Codec()
CLOSING = "price:~closed"


async def main(ctx: ProcessContext) -> None:
    """A writer changes prices while a watched cache follows them exactly."""
    db = await kv.open(ctx, ctx.package_id, "prices", key_codec=TEXT, value_codec=TEXT)
    await db.delete_range(prefix="price:")
    await db.set_many({"price:bread": "3.10", "price:bun": "0.80"})

    cache: dict[str, str] = {}
    async with db.watch(prefix="price:", snapshot=True) as changes:
        cache.update(changes.snapshot)
        print(f"The cache starts from a snapshot: {_show(cache)}.")

        async def writer() -> None:
            await db.set("price:cake", "12.00")
            await db.set_many({"price:bread": "3.30", "price:tart": "4.50"})
            async with db.transaction() as tx:
                tx.set("price:bun", "0.90")
                tx.delete("price:tart")
            await db.set("stock:flour", "20kg")  # not a price: the cache never sees it
            await db.set(CLOSING, "yes")

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            applied = 0
            async for change in changes:
                applied += 1
                if change.value is None:
                    cache.pop(change.key, None)
                else:
                    cache[change.key] = change.value
                # seqs count every change of the db: the stock write is seq +6
                print(f"  seq +{change.seq - changes.start}: {change.kind} {change.key}")
                if change.key == CLOSING:
                    break
    del cache[CLOSING]
    await db.delete(CLOSING)
    in_db = {key: value async for key, value in db.scan(prefix="price:")}
    print(f"Applied {applied} changes, in order, each once: {_show(cache)}.")
    print(f"The cache equals the db: {cache == in_db}.")
    await presence(db)


#: How long a presence lasts without renewal, and how often a present user renews it.
TTL = 1.0
RENEW = 0.1


async def presence(db: kv.Kv[str, str]) -> None:
    """A presence list kept by a watch: users come, one leaves, one times out."""
    await db.delete_range(prefix="online:")
    await db.set("online:alice", "phone", ttl=TTL)
    await db.set("online:bob", "laptop", ttl=TTL)  # bob's connection drops: no renewal
    await db.set("online:carol", "desk", ttl=TTL)
    async with db.watch(prefix="online:", snapshot=True) as changes:
        online = dict(changes.snapshot)
        print(f"Online (a snapshot): {', '.join(_names(online))}.")
        async with anyio.create_task_group() as tg:

            async def alice_stays() -> None:  # alice renews her presence until the end
                while True:
                    await anyio.sleep(RENEW)
                    await db.expire("online:alice", TTL)

            tg.start_soon(alice_stays)
            await db.delete("online:carol")  # carol signs out
            with anyio.fail_after(30):
                async for change in changes:
                    if change.value is None:
                        online.pop(change.key, None)
                    else:
                        online[change.key] = change.value
                    how = "left" if change.kind == "delete" else "timed out"
                    print(f"  {change.kind} {change.key}: {change.key[7:]} {how}")
                    if change.key == "online:bob":
                        break
            tg.cancel_scope.cancel()
    print(f"Online now: {', '.join(_names(online))} (her renewals put nothing in the feed).")
    await db.delete("online:alice")


def _names(online: dict[str, str]) -> list[str]:
    return sorted(key.removeprefix("online:") for key in online)


def _show(prices: dict[str, str]) -> str:
    return ", ".join(f"{k.removeprefix('price:')} {v}" for k, v in sorted(prices.items()))


if __name__ == "__main__":
    run_alone(PROCESS, main, description=__doc__)
