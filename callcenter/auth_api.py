"""/api/session: sign in with a user name and password (a session cookie), who am I, sign out.

``POST /api/session`` {name, password} answers 200 with the user and ``Set-Cookie: cc_session=...;
HttpOnly; SameSite=Strict; Path=/`` (+ Secure over https); 401 for a wrong name or password (the same
answer, after the same work, whichever it was); 429 with Retry-After after too many failures; 403 when
the browser says the form was on another site. ``GET /api/session`` names the signed-in user (cookie or
bearer token) and the agent they are. ``DELETE /api/session`` ends the cookie's session. The rules live
in callcenter/auth.py; docs/auth.md tells the whole story.
"""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .api import require
from .auth import (
    COOKIE,
    MAX_PASSWORD,
    TooManySignIns,
    auth_of,
    clear_cookie_header,
    cookie_header,
    is_secure,
    same_origin,
)
from .exceptions import AuthError
from .storage.acd import AgentRepo
from .storage.repos import User

if TYPE_CHECKING:
    from .api import ApiContext


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class SessionOut(BaseModel):
    id: int
    name: str
    role: str                       # admin | supervisor | agent | qa
    agent: str | None               # the id of the agent whose user is this user (None: not an agent)


NO_STORE = {"Cache-Control": "no-store"}


def build_router(ctx: "ApiContext") -> APIRouter:
    router = APIRouter(tags=["session"])
    agents = AgentRepo(ctx.db or ctx.calls.db)
    anyone = require("supervisor", "qa", "agent")

    async def session_out(user: User) -> SessionOut:
        mine = await agents.all(user=user.name)
        return SessionOut(id=user.id, name=user.name, role=user.role, agent=mine[0].spec.id if mine else None)

    @router.post("/api/session", response_model=SessionOut,
                 responses={401: {"description": "Wrong user name or password"},
                            429: {"description": "Too many failed sign-ins; see Retry-After"}})
    async def sign_in(body: SignIn, request: Request) -> JSONResponse:
        """Sign in: a session cookie for the pages (API clients use a bearer token instead)."""
        if "origin" in request.headers and not same_origin(request):
            raise HTTPException(403, "sign in from this site's own sign-in page")
        auth = auth_of(ctx)
        try:
            user, value = await auth.sign_in(body.name, body.password,
                                             address=request.client.host if request.client else "",
                                             user_agent=request.headers.get("user-agent", ""))
        except TooManySignIns as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after), **NO_STORE}) from None
        except AuthError as exc:
            raise HTTPException(exc.status, str(exc), headers=NO_STORE) from None
        old = request.cookies.get(COOKIE)
        if old:                                   # a new session replaces the browser's previous one
            await auth.sign_out(old)
        response = JSONResponse((await session_out(user)).model_dump(), headers=NO_STORE)
        response.headers.append("set-cookie", cookie_header(value, secure=is_secure(request)))
        return response

    @router.get("/api/session", response_model=SessionOut)
    async def who(user: Annotated[User, Depends(anyone)]) -> JSONResponse:
        """The signed-in user (by cookie or bearer token) and the agent they are, if any."""
        return JSONResponse((await session_out(user)).model_dump(), headers=NO_STORE)

    @router.delete("/api/session", status_code=204, response_class=Response)
    async def sign_out(request: Request) -> Response:
        """End this browser's session (the cookie is cleared; a bearer token is not affected)."""
        value = request.cookies.get(COOKIE)
        if value:
            if not same_origin(request):
                raise HTTPException(403, "sign out from this site's own pages")
            await auth_of(ctx).sign_out(value)
        return Response(status_code=204, headers={"set-cookie": clear_cookie_header(secure=is_secure(request)),
                                                  **NO_STORE})

    return router
