"""Birthdays: the key-value example of Hyperware's process_lib, in Python.

A process opens a db of its own package, then sets, gets, checks, deletes
and reads with a default. It keeps one birthday so that the next run on the
same home finds it: LevelDB keeps it on disk.

Run it alone::

    python -m examples.birthdays --home ./data
"""

from __future__ import annotations

from examples import run_alone
from kvruntime import ProcessContext, kv

#: Who this process is: process ``birthdays`` of package ``birthday-book``, published by
#: ``examples.os``. Its dbs belong to the package ``birthday-book:examples.os``.
PROCESS = "birthdays:birthday-book:examples.os"

#: Keys and values are text here; the store keeps UTF-8 bytes (``Kv<String, String>``).
TEXT = kv.Utf8Codec()


async def main(ctx: ProcessContext) -> None:
    """Open ``birthdays``, use every basic call, keep carol for the next run."""
    # Open (or create) the db. Only a process of the owning package may open it,
    # and opening grants this process read and write capabilities on it.
    db = await kv.open(ctx, ctx.package_id, "birthdays", key_codec=TEXT, value_codec=TEXT)
    print(f"Opened the db 'birthdays' of package {ctx.package_id}.")

    # A get with a default never raises: the default comes back for a missing key.
    carol = await db.get("carol", None)
    if carol is None:
        print("No birthday stored for carol yet: this db starts empty.")
    else:
        print(f"carol's birthday {carol} was found from the previous run: it was kept on disk.")

    await db.set("alice", "1990-04-01")
    await db.set("bob", "1985-12-24")
    await db.set("carol", "2001-07-15")
    print("Set the birthdays of alice, bob and carol.")

    print(f"Get alice: {await db.get('alice')}.")
    print(f"Does bob exist? {'yes' if await db.exists('bob') else 'no'}.")

    await db.delete("bob")
    print(f"Deleted bob. Does bob exist now? {'yes' if await db.exists('bob') else 'no'}.")

    # Without a default, a missing key is the KeyNotFound error (a typed exception).
    try:
        await db.get("bob")
    except kv.KeyNotFound as error:
        print(f"Get bob without a default raises KeyNotFound: {error}.")

    print(f"Get bob with the default 'unknown': {await db.get('bob', 'unknown')}.")
    print("carol stays in the db: the next run will find her.")


if __name__ == "__main__":
    run_alone(PROCESS, main, description=__doc__)
