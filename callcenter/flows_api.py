"""HTTP API of IVR flows, numbers and voicemails: /api/flows, /api/numbers, /api/voicemails.

Flows and numbers are admin only (reads too: flow texts describe the business); the JSON Schema of
flows (GET /api/flows/schema) needs no token, so editors can fetch it. Voicemails are for supervisors
and admins. A deploy that fails validation is a 422 whose ``errors`` list every ``file:line: message``
and changes nothing. After every deploy or rollback the server's flow directory reloads, so the next
call gets the new version and calls in progress keep theirs.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from .api import ApiContext, _regular_file_under, require
from .storage.flows import (
    MAX_FLOW_BYTES,
    VOICEMAIL_DIR,
    ConflictError,
    FlowRepo,
    FlowStoreError,
    FlowVersion,
    InvalidFlowError,
    NotFoundError,
    NumberRepo,
    NumberTarget,
    VoicemailRepo,
    check_number,
)
from .storage.repos import User


class NumberOut(BaseModel):
    number: str
    flow: str
    version: int
    updated_at: str
    updated_by: str
    action: str
    comment: str


class NumberChangeOut(BaseModel):
    at: str
    by: str
    action: str
    flow: str
    version: int
    comment: str


class NumberDetail(NumberOut):
    history: list[NumberChangeOut]


class FlowListItem(BaseModel):
    name: str
    latest_version: int
    versions: int
    updated_at: str
    numbers: list[NumberOut]


class FlowVersionOut(BaseModel):
    name: str
    version: int
    sha256: str
    created_at: str
    created_by: str
    comment: str


class FlowVersionText(FlowVersionOut):
    text: str


class FlowDetail(BaseModel):
    name: str
    latest_version: int
    versions: list[FlowVersionOut]
    numbers: list[NumberOut]


class DeployIn(BaseModel):
    text: str = Field(max_length=MAX_FLOW_BYTES, description="The flow's YAML, stored exactly as sent")
    number: str | None = Field(None, description="Point this number at the deployed version")
    comment: str = Field("", max_length=1000)
    file: str = Field("<flow>", max_length=500, description="The file name to use in error messages")
    source_dir: str = Field("", max_length=4096, description="Folder the flow's audio paths are relative to")


class FlowRef(BaseModel):
    flow: str
    version: int


class DeployOut(BaseModel):
    name: str
    version: int
    sha256: str
    created: bool = Field(description="False when the text equals the latest version, which was reused")
    number: str | None
    previous: FlowRef | None = Field(None, description="The number's target before this deploy")
    warnings: list[str]


class FlowErrors(BaseModel):
    detail: str
    errors: list[str]
    warnings: list[str]


class RollbackIn(BaseModel):
    to: int | None = Field(None, ge=1, description="This version of the number's flow (default: the one before)")
    comment: str = Field("", max_length=1000)


class RollbackOut(BaseModel):
    before: NumberOut
    after: NumberOut


class VoicemailOut(BaseModel):
    id: int
    call_id: str
    mailbox: str
    seconds: float
    sha256: str
    bytes: int
    created_at: str
    caller_number: str
    audio_url: str


def _number_out(t: NumberTarget) -> NumberOut:
    return NumberOut(number=t.number, flow=t.flow, version=t.version, updated_at=t.updated_at,
                     updated_by=t.updated_by, action=t.action, comment=t.comment)


def _version_out(v: FlowVersion) -> FlowVersionOut:
    return FlowVersionOut(name=v.name, version=v.version, sha256=v.sha256, created_at=v.created_at,
                          created_by=v.created_by, comment=v.comment)


def _valid_number(number: str) -> str:
    try:
        return check_number(number)
    except FlowStoreError as exc:
        raise HTTPException(400, str(exc)) from None


def build_router(ctx: ApiContext) -> APIRouter:
    db = ctx.db or ctx.calls.db
    flows, numbers, voicemails = FlowRepo(db, ctx.phrase_check), NumberRepo(db), VoicemailRepo(db)
    admin = require()
    listeners = require("supervisor")
    router = APIRouter()

    async def changed() -> None:
        if ctx.flows is not None:
            await ctx.flows.deployed()

    @router.get("/api/flows/schema", tags=["flows"], response_model=dict[str, Any])
    async def flow_schema() -> dict[str, Any]:
        """The JSON Schema of flow files (no token needed: point your editor's YAML extension at it)."""
        from ivr.schema import flow_schema as schema

        return schema()

    @router.get("/api/flows", response_model=list[FlowListItem], tags=["flows"])
    async def list_flows(_: Annotated[User, Depends(admin)]) -> list[FlowListItem]:
        by_flow: dict[str, list[NumberOut]] = {}
        for t in await numbers.all():
            by_flow.setdefault(t.flow, []).append(_number_out(t))
        return [FlowListItem(name=s.name, latest_version=s.latest, versions=s.versions, updated_at=s.updated_at,
                             numbers=by_flow.get(s.name, [])) for s in await flows.summaries()]

    @router.post("/api/flows", status_code=201, response_model=DeployOut, tags=["flows"],
                 responses={422: {"model": FlowErrors, "description": "The flow has errors; nothing changed"}})
    async def deploy(body: DeployIn, user: Annotated[User, Depends(admin)]) -> DeployOut | JSONResponse:
        number = _valid_number(body.number) if body.number is not None else None
        try:
            result = await flows.deploy(body.text, file=body.file, number=number, comment=body.comment,
                                        by=user.name, source_dir=body.source_dir)
        except InvalidFlowError as exc:
            return JSONResponse(status_code=422, content=FlowErrors(
                detail=str(exc), errors=exc.errors, warnings=exc.warnings).model_dump())
        except ConflictError as exc:
            raise HTTPException(409, str(exc)) from None
        await changed()
        previous = FlowRef(flow=result.previous[0], version=result.previous[1]) if result.previous else None
        return DeployOut(name=result.name, version=result.version, sha256=result.sha256, created=result.created,
                         number=result.number, previous=previous, warnings=result.warnings)

    @router.get("/api/flows/{name}", response_model=FlowDetail, tags=["flows"])
    async def get_flow(name: str, _: Annotated[User, Depends(admin)]) -> FlowDetail:
        versions = await flows.versions(name)
        if not versions:
            raise HTTPException(404, f"no flow named {name!r} is deployed")
        return FlowDetail(name=name, latest_version=versions[-1].version, versions=[_version_out(v) for v in versions],
                          numbers=[_number_out(t) for t in await numbers.for_flow(name)])

    @router.get("/api/flows/{name}/versions/{version}", response_model=FlowVersionText, tags=["flows"])
    async def get_version(name: str, version: int, _: Annotated[User, Depends(admin)]) -> FlowVersionText:
        v = await flows.get(name, version)
        if v is None or v.text is None:
            raise HTTPException(404, f"flow {name!r} has no version {version}")
        return FlowVersionText(**_version_out(v).model_dump(), text=v.text)

    @router.get("/api/numbers", response_model=list[NumberOut], tags=["flows"])
    async def list_numbers(_: Annotated[User, Depends(admin)]) -> list[NumberOut]:
        return [_number_out(t) for t in await numbers.all()]

    @router.get("/api/numbers/{number}", response_model=NumberDetail, tags=["flows"])
    async def get_number(number: str, _: Annotated[User, Depends(admin)]) -> NumberDetail:
        t = await numbers.get(_valid_number(number))
        if t is None:
            raise HTTPException(404, f"number {number} has no flow deployed")
        history = [NumberChangeOut(at=h.at, by=h.by, action=h.action, flow=h.flow, version=h.version,
                                   comment=h.comment) for h in await numbers.history(number)]
        return NumberDetail(**_number_out(t).model_dump(), history=history)

    @router.post("/api/numbers/{number}/rollback", response_model=RollbackOut, tags=["flows"])
    async def rollback(number: str, user: Annotated[User, Depends(admin)],
                       body: Annotated[RollbackIn | None, Body()] = None) -> RollbackOut:
        req = body or RollbackIn(to=None, comment="")
        try:
            before, after = await numbers.rollback(_valid_number(number), req.to, by=user.name, comment=req.comment)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except ConflictError as exc:
            raise HTTPException(409, str(exc)) from None
        await changed()
        return RollbackOut(before=_number_out(before), after=_number_out(after))

    @router.get("/api/voicemails", response_model=list[VoicemailOut], tags=["voicemails"])
    async def list_voicemails(
        _: Annotated[User, Depends(listeners)],
        limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first")] = 50,
        mailbox: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[VoicemailOut]:
        return [VoicemailOut(id=v.id, call_id=v.call_id, mailbox=v.mailbox, seconds=v.seconds, sha256=v.sha256,
                             bytes=v.bytes, created_at=v.created_at, caller_number=v.caller_number,
                             audio_url=f"/api/voicemails/{v.id}/audio")
                for v in await voicemails.latest(limit, mailbox)]

    @router.get("/api/voicemails/{voicemail_id}/audio", response_class=FileResponse, tags=["voicemails"],
                responses={200: {"content": {"audio/wav": {}}, "description": "The message as a WAV file"}})
    async def voicemail_audio(voicemail_id: int, _: Annotated[User, Depends(listeners)]) -> FileResponse:
        v = await voicemails.get(voicemail_id)
        if v is None:
            raise HTTPException(404, f"no voicemail {voicemail_id}")
        path = _regular_file_under(ctx.data_dir / VOICEMAIL_DIR, ctx.data_dir / v.path)
        if path is None:
            raise HTTPException(410, f"the audio of voicemail {voicemail_id} is gone from the {VOICEMAIL_DIR} folder")
        return FileResponse(path, media_type="audio/wav", filename=path.name)

    return router
