"""The explorer's pages, and the rules that keep a browser from being used against the store.

Pages: ``/`` (dbs, sizes, key counts, capabilities), ``/db/{package}/{db}``
(keys and values, paged, with ``prefix``, ``start``/``end``, ``reverse``,
``cursor`` (the page after that key) or ``before`` (the page before it),
keys given as text or, with ``hex=1``, as hex), ``/value`` (one
value in every view), ``POST /set`` and ``POST /delete``, ``/changes`` (the
db's live changes as Server-Sent Events, ``changes.py``), and ``/metrics``
(the runtime's ``kvruntime_*`` series in Prometheus text format).

Security invariants:

1. Every key and value is attacker-controlled: templates autoescape, no
   inline script runs (Content-Security-Policy ``script-src 'self'``).
2. A write needs the token (``token.py``) in the request itself, never a
   cookie, so a cross-site form cannot forge it; and a write whose
   ``Origin`` (or ``Sec-Fetch-Site``) says another site is refused as well.
3. ``Host`` must name the address served (no DNS rebinding).
4. All kv work runs through ``run_as`` (the CLI's administrative process of
   the package), one request at a time per package; a live stream's watch
   through ``watch_as`` (a process of that package of its own, so that a
   stream that lasts never holds that lock).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..readable import NotMsgpack, readable, unpack
from .token import token_matches

if TYPE_CHECKING:
    import anyio
    from prometheus_client import CollectorRegistry

    from protocol.ids import PackageId

    from ..kernel.process import ProcessContext

__all__ = ["PAGE_SIZE", "RunAs", "build_app"]

T = TypeVar("T")
#: ``run_as(package, body)``: ``body(ctx)`` run as the package's administrative process.
RunAs = Callable[["PackageId", Callable[["ProcessContext"], Awaitable[Any]]], Awaitable[Any]]
#: Entries on one page of a db.
PAGE_SIZE = 50
#: Characters of a value shown in the list before it is cut (the value page shows it all).
PREVIEW = 120
#: The largest write body accepted.
MAX_BODY = 8 * 1024 * 1024

#: Seconds to wait for each answer of kv:distro:sys (a value may be large).
KV_TIMEOUT = 120.0
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self';"
    " frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Origin "null"
    "X-Frame-Options": "DENY",
}


def _views(value: bytes) -> dict[str, str]:
    """The value as text (the CLI's rule), hex, JSON and MessagePack, or why not."""
    import json

    views = {"text": readable(value), "hex": value.hex()}
    try:
        views["json"] = json.dumps(json.loads(value.decode("utf-8")), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, ValueError) as exc:
        views["json"] = f"(not JSON: {exc})"
    try:
        views["msgpack"] = json.dumps(unpack(value), indent=2, ensure_ascii=False)
    except NotMsgpack as exc:
        views["msgpack"] = f"({exc})"
    return views


def build_app(
    *,
    run_as: RunAs,
    overview: Callable[[], Awaitable[tuple[list[Any], list[Any]]]],
    token: str,
    origins: set[str],
    metrics: CollectorRegistry | None = None,
    watch_as: RunAs | None = None,
    stopping: anyio.Event | None = None,
) -> Starlette:
    """The explorer application.

    ``overview()`` answers (dbs, rights) as ``cli._inventory`` reads them;
    ``origins`` are the ``scheme://host:port`` the server is reached at;
    ``metrics`` (the runtime's own registry) is served at ``/metrics``;
    ``watch_as`` runs a live stream's watch (none: no live panel), and
    ``stopping`` is set when the server stops (the streams end then).
    """
    env = Environment(
        loader=PackageLoader("kvruntime.explorer", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    hosts = {o.split("://", 1)[1] for o in origins}

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def refuse(status: int, message: str) -> HTMLResponse:
        return page("error.html", status=status, message=message)

    def parse_package(text: str) -> PackageId:
        from protocol.ids import PackageId

        return PackageId.parse(text)

    async def index(request: Request) -> Response:
        dbs, rights = await overview()
        return page("index.html", dbs=dbs, rights=rights)

    def key_from(text: str, as_hex: bool) -> bytes:
        return bytes.fromhex(text) if as_hex else text.encode("utf-8")

    def filter_of(q: Any) -> tuple[bytes | None, bytes | None, bytes | None] | Response:
        """The page's ``prefix``/``start``/``end`` (``hex=1``: as hex), or a refusal."""
        as_hex = q.get("hex") == "1"
        try:
            prefix = key_from(q["prefix"], as_hex) if q.get("prefix") else None
            start = key_from(q["start"], as_hex) if q.get("start") else None
            end = key_from(q["end"], as_hex) if q.get("end") else None
        except ValueError:
            return refuse(400, "a key given as hex is not hex")
        if prefix is not None and (start is not None or end is not None):
            return refuse(400, "give a prefix or a start/end range, not both")
        return prefix, start, end

    async def changes(request: Request) -> Any:
        from .changes import ChangeStream

        if watch_as is None:
            return refuse(404, "no live changes on this server")
        package = parse_package(request.path_params["package"])
        bounds = filter_of(request.query_params)
        if isinstance(bounds, Response):
            return bounds
        last = request.headers.get("last-event-id", "")
        since = int(last) if last.isdigit() and int(last) < 2**64 else None
        return ChangeStream(
            watch_as=watch_as,
            package=package,
            db=request.path_params["db"],
            bounds=bounds,
            since=since,
            stopping=stopping,
            headers=_HEADERS,
            timeout=KV_TIMEOUT,
        )

    async def db_page(request: Request) -> Response:
        from .. import kv

        package = parse_package(request.path_params["package"])
        db = request.path_params["db"]
        q = request.query_params
        bounds = filter_of(q)
        if isinstance(bounds, Response):
            return bounds
        prefix, start, end = bounds
        try:
            cursor = bytes.fromhex(q["cursor"]) if q.get("cursor") else None
            before = bytes.fromhex(q["before"]) if q.get("before") else None
        except ValueError:
            return refuse(400, "a key given as hex is not hex")
        if cursor is not None and before is not None:
            return refuse(400, "give a cursor or before, not both")
        reverse = q.get("reverse") == "1"

        async def body(ctx: ProcessContext) -> Any:
            handle = await kv.open(ctx, package, db, create=False, timeout=KV_TIMEOUT)
            # before=K: the page just before K, read the other way from K (the
            # cursor is the last key seen, so this resumes strictly before K)
            return await handle.list_page(
                prefix=prefix,
                start=start,
                end=end,
                reverse=reverse != (before is not None),
                limit=PAGE_SIZE,
                cursor=cursor if before is None else before,
            )

        result = await run_as(package, body)
        items = result.items if before is None else result.items[::-1]
        rows = []
        for key, value in items:
            shown = readable(value)
            rows.append(
                {
                    "key": readable(key) if key else '""',
                    "key_hex": key.hex(),
                    "value": shown if len(shown) <= PREVIEW else shown[:PREVIEW] + "…",
                    "size": len(value),
                }
            )
        args = {k: v for k, v in q.items() if k not in ("cursor", "before")}
        after: bytes | None
        if before is None:  # read forwards: the server's cursor starts the next page
            after, has_before = result.cursor, cursor is not None
        else:  # read backwards up to ``before``: the next page goes on after the last row
            after, has_before = (items[-1][0] if items else None), result.cursor is not None
        nxt = None if after is None else {**args, "cursor": after.hex()}
        prev = {**args, "before": items[0][0].hex()} if has_before and items else None
        return page(
            "db.html",
            package=str(package),
            db=db,
            rows=rows,
            next=nxt,
            prev=prev,
            q=dict(q),
            live=None
            if watch_as is None
            else {k: v for k, v in q.items() if k in ("prefix", "start", "end", "hex")},
        )

    async def value_page(request: Request) -> Response:
        from .. import kv

        package = parse_package(request.path_params["package"])
        db = request.path_params["db"]
        try:
            key = bytes.fromhex(request.query_params.get("key", ""))
        except ValueError:
            return refuse(400, "key is not hex")

        async def body(ctx: ProcessContext) -> bytes | None:
            handle = await kv.open(ctx, package, db, create=False, timeout=KV_TIMEOUT)
            return await handle.get(key, None)

        value = await run_as(package, body)
        if value is None:
            return refuse(404, f"key {readable(key)} not found")
        view = request.query_params.get("view", "text")
        views = _views(value)
        if view not in views:
            view = "text"
        return page(
            "value.html",
            package=str(package),
            db=db,
            key=readable(key) if key else '""',
            key_hex=key.hex(),
            size=len(value),
            views=views,
            view=view,
        )

    def cross_site(request: Request) -> str | None:
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return f"refused: a write from another site ({origin})"
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"refused: a write from a {site} page"
        return None

    async def write(request: Request) -> Response:
        from .. import kv

        reason = cross_site(request)
        if reason is not None:
            return refuse(403, reason)
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return refuse(413, "request too large")
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        given = form.get("token") or request.headers.get("x-kvruntime-token")
        if not token_matches(token, given):
            return refuse(403, "refused: a write needs the token `kvruntime serve` printed")
        package = parse_package(request.path_params["package"])
        db = request.path_params["db"]
        action = request.path_params["action"]
        try:
            if action == "delete":
                key = bytes.fromhex(form.get("key_hex", ""))
            else:
                key = key_from(form.get("key", ""), form.get("key_format") == "hex")
            value = key_from(form.get("value", ""), form.get("value_format") == "hex")
        except ValueError:
            return refuse(400, "a key or value given as hex is not hex")

        async def body(ctx: ProcessContext) -> None:
            handle = await kv.open(ctx, package, db, create=False, timeout=KV_TIMEOUT)
            if action == "delete":
                await handle.delete(key)
            else:
                await handle.set(key, value)

        await run_as(package, body)
        return RedirectResponse(f"/db/{package}/{db}", status_code=303, headers=_HEADERS)

    async def metrics_page(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if metrics is None:
            return refuse(404, "no metrics on this server")
        return Response(generate_latest(metrics), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def guard(request: Request, call_next: Any) -> Response:
        if request.headers.get("host") not in hosts:
            return refuse(421, "unknown Host")
        try:
            response: Response = await call_next(request)
        except Exception as exc:  # a kv error answered, or a bad id: a page, not a crash
            from protocol.ids import IdError

            from .. import kv

            if isinstance(exc, kv.KvError | IdError):
                return refuse(404 if isinstance(exc, kv.NoDb) else 400, str(exc))
            raise
        return response

    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    static = Path(__file__).parent / "static"
    return Starlette(
        routes=[
            Route("/", index),
            Route("/metrics", metrics_page),
            Route("/db/{package}/{db}", db_page),
            Route("/db/{package}/{db}/value", value_page),
            Route("/db/{package}/{db}/changes", changes),
            Route("/db/{package}/{db}/{action:str}", write, methods=["POST"]),
            Mount("/static", StaticFiles(directory=static), name="static"),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
    )
