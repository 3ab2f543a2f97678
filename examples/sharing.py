"""Sharing: an owner gives a sibling process of another package read access to one db.

Two processes of two packages run side by side:

- the owner (package ``recipe-box``) opens its db ``recipes``, writes a
  recipe, shares a *read* capability on that db with the reader, and then
  tells the reader which db to look at, in a message;
- the reader (package ``guest-book``) reads the recipe, then tries to
  change it and is refused with ``NoWriteCap``: it was given read access
  only.

The share goes through the runtime and takes effect at once; the reader
does nothing to accept it. Capabilities persist under the home folder, so
the reader keeps its access after a restart.

Run it alone::

    python -m examples.sharing --home ./data
"""

from __future__ import annotations

import json

from examples import run_alone
from kvruntime import PackageId, ProcessContext, Request, kv

#: The owner: its package owns the db ``recipes``.
PROCESS = "owner:recipe-box:examples.os"
#: The reader: a process of another package.
READER = "reader:guest-book:examples.os"

TEXT = kv.Utf8Codec()


async def main(ctx: ProcessContext) -> None:
    """The owner: write a recipe, share read access with the reader, tell it where to look."""
    db = await kv.open(ctx, ctx.package_id, "recipes", key_codec=TEXT, value_codec=TEXT)
    await db.set("pancakes", "flour, milk, eggs, a pinch of salt")
    print(f"[owner]  Wrote the pancakes recipe into the db 'recipes' of {ctx.package_id}.")

    await db.share(READER, write=False)
    print(f"[owner]  Shared a read capability on 'recipes' with {READER}.")

    # How the two processes talk is up to them: here a small JSON message.
    note = json.dumps({"package_id": str(ctx.package_id), "db": "recipes"}).encode()
    answer = await ctx.send_and_await_response(READER, note, timeout=5.0)
    print(f"[owner]  The reader answered: {answer.body.decode()}")


async def reader(ctx: ProcessContext) -> None:
    """The reader: wait for the owner's message, read the shared db, try (and fail) to write."""
    message = await ctx.receive()
    if not isinstance(message, Request):
        raise TypeError(f"the reader expected a request, got {message!r}")
    note = json.loads(message.body)
    package_id = PackageId.parse(note["package_id"])
    print(f"[reader] The owner says: read the db {note['db']!r} of package {package_id}.")

    # Not our package, so no kv.open: a handle on the db that was shared with us.
    recipes = kv.handle(ctx, package_id, note["db"]).typed(TEXT, TEXT)
    print(f"[reader] Read pancakes: {await recipes.get('pancakes')}.")

    try:
        await recipes.set("pancakes", "just sugar")
    except kv.NoWriteCap as error:
        print(f"[reader] Tried to change the recipe and was refused with NoWriteCap: {error}.")

    await ctx.respond(message, b"read the recipe; my write was refused")


if __name__ == "__main__":
    run_alone(PROCESS, main, siblings={READER: reader}, description=__doc__)
