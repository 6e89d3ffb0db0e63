"""HTTP API (FastAPI): health, calls, recordings, users. Every /api route needs a bearer token or the
session cookie of a signed-in page (callcenter/auth.py).

Roles: admin (everything), supervisor and qa (calls and recordings), agent (their own state).
The OpenAPI schema is published at /openapi.json, with interactive docs at /docs. Flows, numbers
and voicemails are in callcenter/flows_api.py; agents, queues and customers in acd_api.py; queue
figures in stats_api.py; the live event stream in events_api.py; QA review in qa_api.py; the pages
(/qa) in callcenter/web/.
"""

import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from .auth import COOKIE, clear_cookie_header, identify, is_secure
from .exceptions import AuthError
from .storage.flows import IvrPathRepo
from .storage.repos import CallRepo, User, UserRepo

if TYPE_CHECKING:
    from .flow_directory import FlowDirectory
    from .storage.db import Database


@dataclass
class ApiContext:
    calls: CallRepo
    users: UserRepo
    data_dir: Path
    active_calls: Callable[[], int]
    db: "Database | None" = None              # default: the calls repository's
    flows: "FlowDirectory | None" = None      # reloaded after a deploy or rollback through the API
    phrase_check: Any = None                  # ivr.flow.PhraseCheck: speech phrases checked at deploy
    acd: Any = None                           # callcenter.acd_control.AcdControl: the live ACD (None: not running)
    bus: Any = None                           # callcenter.live_events.EventBus: the live event stream
    auth: Any = None                          # callcenter.auth.Auth: sessions, sign-in limiter (made on first use)
    sip_load: Callable[[], tuple[int, int]] | None = None   # (SIP calls up, max_calls) for /healthz


class Health(BaseModel):
    status: str
    active_calls: int                       # callers' calls in progress (what the flows handle)
    sip_calls: int | None = None            # every SIP call up: callers, agents' legs, callbacks, consultations
    max_calls: int | None = None            # the engine's limit on sip_calls ([sip] max_calls)


class CallOut(BaseModel):
    id: str
    sip_call_id: str
    caller: str                     # the caller's number (P-Asserted-Identity, else From)
    caller_name: str                # their display name, "" if none
    caller_uri: str                 # the From header as it came (cleaned)
    callee: str                     # the dialled number (the Request-URI's user part)
    remote_address: str
    flow: str
    codec: str
    started_at: str
    answered_at: str | None
    ended_at: str | None
    disposition: str | None
    hangup_cause: str
    recording_path: str | None
    recording_sha256: str | None
    recording_bytes: int | None
    recording_seconds: float | None
    recording_url: str | None


class IvrStep(BaseModel):
    at: str
    event: str                      # IVR_NODE, IVR_KEY, IVR_SPEECH, IVR_VAR, IVR_HTTP, ... (docs/events.md)
    data: dict[str, Any]


class CallDetail(CallOut):
    flow_version: int | None        # None: the default flow from a file, or a call before versioned flows
    ivr_path: list[IvrStep]         # what the caller did in the IVR, in order (sensitive input masked)


class UserOut(BaseModel):
    id: int
    name: str
    role: str


_bearer = HTTPBearer(auto_error=False, description="A token printed by `callcenter user add`")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="The session of a signed-in page (POST /api/session)")


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def require(*roles: str) -> Callable[..., Awaitable[User]]:
    """Dependency: the user of a valid bearer token or session cookie, with one of ``roles`` (admin always passes).

    With the cookie, a POST/PUT/PATCH/DELETE must come from this site's pages (Origin = Host): else 403.
    See callcenter/auth.py.
    """
    allowed = {"admin", *roles}

    async def check(
        request: Request,
        _b: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],   # (declared for the OpenAPI schema;
        _c: Annotated[str | None, Depends(_cookie)],                             # callcenter.auth reads them)
    ) -> User:
        try:
            user = (await identify(request, _ctx(request))).user
        except AuthError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            if exc.status == 401 and request.cookies.get(COOKIE):      # a dead session: the browser forgets it
                headers = {**(headers or {}), "Set-Cookie": clear_cookie_header(secure=is_secure(request))}
            raise HTTPException(exc.status, str(exc), headers=headers) from None
        if user.role not in allowed:
            raise HTTPException(403, f"role {user.role!r} may not do this (needs {' or '.join(sorted(allowed))})")
        return user

    return check


def _regular_file_under(root: Path, path: Path) -> Path | None:
    """``path`` if it is a regular file inside ``root`` reached through no symbolic link; else None."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    here = root
    for part in rel.parts:
        if part in ("", ".", ".."):
            return None
        here = here / part
        try:
            st = here.lstat()
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return None
    return here if stat.S_ISREG(st.st_mode) else None


def _call_out(row: dict[str, Any]) -> CallOut:
    url = f"/api/calls/{row['id']}/recording" if row.get("recording_path") else None
    return CallOut(**row, recording_url=url)


def create_app(ctx: ApiContext, demo_crm: bool = False) -> FastAPI:
    """The app; ``demo_crm`` also mounts the demo flow's stand-in CRM (callcenter/demo_crm.py)."""
    app = FastAPI(
        title="callcenter",
        version="0.1.0",
        description="Telephony-first contact center API. Send `Authorization: Bearer <token>` on /api routes.",
    )
    app.state.ctx = ctx

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input back, and a NaN or Infinity in it cannot be encoded (a 500).
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    readers = require("supervisor", "qa")
    ivr_paths = IvrPathRepo(ctx.db or ctx.calls.db)

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        up, limit = ctx.sip_load() if ctx.sip_load is not None else (None, None)
        return Health(status="ok", active_calls=ctx.active_calls(), sip_calls=up, max_calls=limit)

    @app.get("/api/calls", response_model=list[CallOut], tags=["calls"])
    async def list_calls(
        _: Annotated[User, Depends(readers)],
        limit: Annotated[int, Query(ge=1, le=1000, description="How many calls, newest first")] = 50,
    ) -> list[CallOut]:
        return [_call_out(r) for r in await ctx.calls.latest(limit)]

    @app.get("/api/calls/{call_id}", response_model=CallDetail, tags=["calls"])
    async def get_call(call_id: str, _: Annotated[User, Depends(readers)]) -> CallDetail:
        row = await ctx.calls.get(call_id)
        if row is None:
            raise HTTPException(404, f"no call {call_id}")
        path = [IvrStep(**step) for step in await ivr_paths.path(call_id)]
        return CallDetail(**_call_out(row).model_dump(), flow_version=await ivr_paths.flow_version(call_id),
                          ivr_path=path)

    @app.get(
        "/api/calls/{call_id}/recording",
        response_class=FileResponse,
        tags=["calls"],
        responses={200: {"content": {"audio/wav": {}}, "description": "The caller's leg as a WAV file"}},
    )
    async def get_recording(call_id: str, _: Annotated[User, Depends(readers)]) -> FileResponse:
        row = await ctx.calls.get(call_id)
        if row is None:
            raise HTTPException(404, f"no call {call_id}")
        if not row["recording_path"] or row["ended_at"] is None:
            raise HTTPException(404, f"call {call_id} has no finished recording")
        path = _regular_file_under(ctx.data_dir / "recordings", ctx.data_dir / row["recording_path"])
        if path is None:
            raise HTTPException(410, f"the recording of call {call_id} is gone from the recordings folder")
        return FileResponse(path, media_type="audio/wav", filename=path.name)

    @app.get("/api/users", response_model=list[UserOut], tags=["users"])
    async def list_users(_: Annotated[User, Depends(require())]) -> list[UserOut]:
        return [UserOut(id=u.id, name=u.name, role=u.role) for u in await ctx.users.all()]

    @app.get("/api/me", response_model=UserOut, tags=["users"])
    async def me(user: Annotated[User, Depends(require("supervisor", "qa", "agent"))]) -> UserOut:
        return UserOut(id=user.id, name=user.name, role=user.role)

    from . import acd_api, auth_api, events_api, flows_api, qa_api, stats_api  # (they import require() from here)
    from .web.pages import mount_pages

    for module in (auth_api, flows_api, acd_api, stats_api, events_api, qa_api):
        app.include_router(module.build_router(ctx))
    mount_pages(app)
    if demo_crm:
        from .demo_crm import router as crm

        app.include_router(crm)
    return app
