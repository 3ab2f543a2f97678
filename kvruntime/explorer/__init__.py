"""The explorer page of ``kvruntime serve``: a home's dbs, keys and values in a browser.

``build_app`` makes the Starlette application; ``kvruntime serve`` (in the
CLI) runs it with uvicorn inside a runtime session, so every read and write
goes through kv:distro:sys as the db package's administrative process, with
the same checks as any process. See ``app.py`` for the security rules.
"""

from __future__ import annotations

from .app import build_app

__all__ = ["build_app"]
