"""Serve the static web pages (:data:`PAGES`: /qa, /login, /agent, /supervisor) and their assets under ``/static/``.

The files are package data (``callcenter/web/static/``): plain HTML, CSS and JavaScript modules, no
build step. Pages get a strict Content-Security-Policy: scripts, styles and API calls from this
origin only (plus inline style attributes, for computed positions and colours); audio also from
``blob:`` URLs, which is how a page plays a recording it fetched with its token. Assets are
revalidated on every load (``no-cache`` plus ETag), so an upgrade shows at once.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PAGES = {"/qa": "qa/index.html", "/login": "login/index.html",   # path -> file under static/
         "/agent": "agent/index.html", "/supervisor": "supervisor/index.html"}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
       "img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def static_dir() -> Path:
    """The folder of the page assets (package data; the package must be installed unzipped)."""
    root = Path(str(resources.files("callcenter.web").joinpath("static")))
    if not root.is_dir():
        raise RuntimeError(f"the web pages' assets are missing: {root} is not a folder (reinstall callcenter)")
    return root


class _Assets(StaticFiles):
    """StaticFiles (no symbolic links followed out of the folder) that asks browsers to revalidate."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_pages(app: FastAPI) -> None:
    """Add the pages and the ``/static`` mount to ``app``."""
    root = static_dir()
    app.mount("/static", _Assets(directory=root), name="static")

    for route, rel in PAGES.items():
        app.add_api_route(route, _page(root / rel), methods=["GET"], include_in_schema=False)
        app.add_api_route(route + "/", _redirect(route), methods=["GET"], include_in_schema=False)


def _page(path: Path) -> Callable[[], Awaitable[FileResponse]]:
    async def serve() -> FileResponse:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    return serve


def _redirect(to: str) -> Callable[[], Awaitable[RedirectResponse]]:
    async def redirect() -> RedirectResponse:
        return RedirectResponse(to, status_code=308)

    return redirect
