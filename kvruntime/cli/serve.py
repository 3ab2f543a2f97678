"""``serve``: the explorer page (``kvruntime.explorer``) on a running home.

The runtime runs for as long as the server does (the home is in use
meanwhile); each page does its kv work as the db package's administrative
process through ``_session.as_admin``, one at a time per package, and the
grants those processes took are taken back when the server stops (SIGINT
or SIGTERM), as after any command. A db page's live panel (``explorer/changes.py``)
watches as a process of the package of its own (``kvruntime-cli-watch-N``), so a
stream never holds the package's lock; at a stop signal the streams end first
(``stopping``), each watch with its ``Unwatch``, and then the server stops.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._app import EXIT_INTERRUPTED, cli, home_option, verbose_option
from ._session import Session, admin_id, as_admin, run_in_home

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from protocol.ids import PackageId

    from ..kernel.process import ProcessContext

__all__ = ["serve"]

#: Keys counted per db on the explorer's front page.
_MAX_COUNT = 100_000


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8470, show_default=True)
@home_option
@verbose_option
def serve(host: str, port: int, home: Path) -> None:
    """Serve the explorer page of the home (stop it with Ctrl-C).

    Writes (set, delete) need the token printed at start, also kept in
    HOME/explorer-token (mode 0600); open the printed URL to write from
    the browser.

    \b
    Example:
      kvruntime serve --home ./data --port 8470
    """
    import itertools

    import anyio
    import attrs
    import uvicorn

    from ..explorer import build_app
    from ..explorer.token import TOKEN_FILE, new_token
    from ._inventory import db_rights, list_dbs

    stopped_by: list[int] = []

    async def work(session: Session) -> None:
        import signal

        locks: dict[PackageId, anyio.Lock] = {}
        stopping = anyio.Event()  # set at a stop signal: the live streams end then

        async def run_as(
            package: PackageId, body: Callable[[ProcessContext], Awaitable[Any]]
        ) -> Any:
            lock = locks.setdefault(package, anyio.Lock())
            async with lock:
                return await as_admin(session, package, body)

        streams = itertools.count(1)

        async def watch_as(
            package: PackageId, body: Callable[[ProcessContext], Awaitable[Any]]
        ) -> Any:
            # a live stream's watch: a process of the package of its own (no lock held)
            process = admin_id(package)
            name = f"{process.process_name}-watch-{next(streams)}"
            return await as_admin(
                session, package, body, process=attrs.evolve(process, process_name=name)
            )

        async def overview() -> tuple[list[Any], list[Any]]:
            return await list_dbs(session, max_count=_MAX_COUNT), db_rights(session)

        token = new_token(home)
        shown = f"[{host}]" if ":" in host else host
        origins = {f"http://{shown}:{port}"}
        if host in ("127.0.0.1", "localhost", "::1"):
            origins |= {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
        app = build_app(
            run_as=run_as,
            overview=overview,
            token=token,
            origins=origins,
            metrics=session.rt.metrics_registry(),
            watch_as=watch_as,
            stopping=stopping,
        )
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        server = _Server(config)
        url = f"http://{shown}:{port}/"
        click.echo(f"kvruntime explorer on {url} (home {home})")
        click.echo(f"write token: {token} (also in {home / TOKEN_FILE})")
        click.echo(f"to write from the browser, open {url}#token={token}", nl=True)
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        stopped_by.append(signum)
                        stopping.set()
                        server.should_exit = True
                        return

            tg.start_soon(stop_on_signal)
            await server.serve()
            tg.cancel_scope.cancel()
        (home / TOKEN_FILE).unlink(missing_ok=True)

    run_in_home(home, work)
    import signal

    if stopped_by == [signal.SIGINT]:
        raise click.exceptions.Exit(EXIT_INTERRUPTED)


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server without its own signal handling (``serve`` stops it)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    return Server


def _Server(config: Any) -> Any:  # reads as the class it makes
    return _server_class()(config)
