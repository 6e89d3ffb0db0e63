"""HTTP API of the ACD's configuration and agent states: /api/agents, /api/queues, /api/customers.

Roles: adding, changing and deleting agents and queues is for admins (also the bulk upsert
``POST /api/agents/import``, callcenter/agent_import.py); supervisors read them, change any agent's
state and import customers. An agent (role ``agent``) reads and changes only
their own agent (the one whose ``user`` is their user name) and looks customers up.

A body that fails ``routing.config``'s checks is a 422 whose ``errors`` list every bad field
("strategy: unknown strategy ..."), and nothing changes. After every change the live ACD
(``ctx.acd``, callcenter/acd_control.py) reloads that agent or queue. A state change is recorded
in the agents table too (a restart restores it); with no ACD running it is only recorded, and the
answer is a 503 saying so. PUT changes the fields it is given and keeps the others.
"""

# (No `from __future__ import annotations`: FastAPI must resolve Depends() on names local to build_router.)
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import StringConvertor, register_url_convertor

from routing.exceptions import ConfigInvalid, RoutingError
from routing.exceptions import UnknownAgent as RouterUnknownAgent

from .agent_import import decode_csv
from .agent_import import import_agents as import_agent_csv
from .api import ApiContext, require
from .exceptions import UnknownAgent, UnknownQueue
from .storage.acd import (
    AgentRecord,
    AgentRepo,
    AlreadyExists,
    CsvInvalid,
    CustomerRepo,
    QueueRecord,
    QueueRepo,
    requested_state,
)
from .storage.repos import User

MAX_IMPORT_BYTES = 32 * 1024 * 1024
MANAGERS = ("admin", "supervisor")


class _QueueName(StringConvertor):
    """A queue name in a path, never "stats": GET /api/queues/stats (stats_api.py) is not a queue,
    whichever router is included first."""

    regex = r"(?!stats$)[^/]+"


register_url_convertor("queue_name", _QueueName())


class ConfigErrors(BaseModel):
    detail: str
    errors: list[str] = Field(description="Every problem, as 'field: message' (or 'FILE:LINE: message' for a CSV)")


Skills = dict[str, int] | list[str] | str


class _Open(BaseModel):
    # Unknown fields are passed on to routing.config, which names them (with a "did you mean").
    model_config = ConfigDict(extra="allow")


class AgentChange(_Open):
    name: str | None = Field(None, max_length=200)
    team: str | None = Field(None, max_length=100)
    uri: str | None = Field(None, max_length=500, description="sip:alice@10.0.0.5:5060, or \"\"")
    skills: Skills | None = Field(None, description="{skill: proficiency 1..5}, [skill, ...] (1) or \"a:3,b\"")
    wrap_up_s: float | None = None
    max_offers: int | None = None
    weight: int | None = None
    order: int | None = None
    user: str | None = Field(None, max_length=100, description="The API user who is this agent")


class AgentIn(AgentChange):
    id: str = Field(max_length=64)


class AgentOut(BaseModel):
    id: str
    name: str
    team: str
    uri: str
    skills: dict[str, int]
    wrap_up_s: float
    max_offers: int
    weight: int
    order: int
    user: str
    state: str = Field(description="The state the agent last asked for (logged_out, available, break)")
    reason: str
    created_at: str
    updated_at: str


class StepModel(BaseModel):
    after_s: float
    skills: dict[str, int] | None = None
    add_queues: list[str] = []


class StepIn(_Open):
    after_s: float | None = None
    skills: Skills | None = None
    add_queues: list[str] | str | None = None


class QueueChange(_Open):
    skills: Skills | None = Field(None, description="{skill: minimum 1..5}, [skill, ...] (1) or \"a:3,b\"")
    strategy: str | None = Field(None, description="ring-all, longest-idle, fewest-calls, round-robin, linear, "
                                                   "random, weighted-random, best-proficiency")
    priority: int | None = None
    service_level_s: float | None = None
    max_wait_s: float | None = None
    max_length: int | None = None
    ring_timeout_s: float | None = None
    max_no_answer: int | None = None
    no_answer_reason: str | None = None
    wrap_up_s: float | None = Field(None, description="null: each agent's own")
    hold_music: str | None = None
    announce_every_s: float | None = None
    announce_position: bool | None = None
    announce_wait: bool | None = None
    callback: bool | None = None
    overflow: str | None = Field(None, description='"", "queue:NAME", "voicemail:MAILBOX" or "callback"')
    escalation: list[StepIn] | None = None
    aging_per_min: float | None = None
    vip_boost: int | None = None
    preferred_agent_s: float | None = None
    short_abandon_s: float | None = None


class QueueIn(QueueChange):
    name: str = Field(max_length=64)


class QueueOut(BaseModel):
    name: str
    skills: dict[str, int]
    strategy: str
    priority: int
    service_level_s: float
    max_wait_s: float
    max_length: int
    ring_timeout_s: float
    max_no_answer: int
    no_answer_reason: str
    wrap_up_s: float | None
    hold_music: str
    announce_every_s: float
    announce_position: bool
    announce_wait: bool
    callback: bool
    overflow: str
    escalation: list[StepModel]
    aging_per_min: float
    vip_boost: int
    preferred_agent_s: float
    short_abandon_s: float
    created_at: str
    updated_at: str


class StateIn(BaseModel):
    action: Literal["login", "logout", "pause", "resume"]
    reason: str = Field("", max_length=64, description="The break reason code (pause), e.g. lunch")


class CallSummary(BaseModel):
    id: str
    direction: str
    started_at: str
    answered_at: str | None
    ended_at: str | None
    disposition: str | None
    queue: str
    agent: str
    flow: str


class CustomerOut(BaseModel):
    phone: str
    known: bool = Field(description="False: no profile, but the number has called")
    name: str
    vip_tier: int
    language: str
    last_agent: str
    notes: str
    updated_at: str | None
    calls: list[CallSummary] = Field(description="The number's last five calls, newest first")


class ImportOut(BaseModel):
    inserted: int
    updated: int
    skipped: list[str] = Field(description="FILE:LINE: message of each line left out (skip_bad)")
    columns: list[str]


class AgentImportOut(BaseModel):
    added: list[str] = Field(description="The ids added, in file order")
    changed: list[str]
    unchanged: list[str] = Field(description="Rows that changed nothing (not written)")
    skipped: int = Field(description="Bad rows left out (skip_bad)")
    problems: list[str] = Field(description="FILE:LINE: agent ID: field: message of each row left out")
    columns: list[str]


async def _csv_body(request: Request) -> bytes:
    """A CSV request body (text/csv, at most MAX_IMPORT_BYTES); 415 or 413 otherwise."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("text/csv", "text/plain", "application/csv"):
        raise HTTPException(415, f"send the CSV as text/csv (got {kind or 'no content type'!r})")
    if int(request.headers.get("content-length") or 0) > MAX_IMPORT_BYTES:
        raise HTTPException(413, f"the CSV is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB: split it")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"the CSV is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB: split it")
    return bytes(raw)


_CSV_IMPORT: dict[int | str, dict[str, Any]] = {
    422: {"model": ConfigErrors, "description": "Bad lines; nothing was imported"},
    413: {"description": "Larger than 32 MiB"}, 415: {"description": "Not text/csv"}}


def _invalid(exc: ConfigInvalid | CsvInvalid) -> JSONResponse:
    return JSONResponse(status_code=422, content=ConfigErrors(detail=str(exc), errors=exc.problems).model_dump())


_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ConfigErrors, "description": "Invalid fields; nothing changed"}}


def _fields(body: BaseModel) -> dict[str, Any]:
    d = body.model_dump(exclude_unset=True)
    return {k: v for k, v in d.items() if v is not None or k == "wrap_up_s"}


def build_router(ctx: ApiContext) -> APIRouter:
    db = ctx.db or ctx.calls.db
    agents, queues, customers = AgentRepo(db), QueueRepo(db), CustomerRepo(db)
    admin = require()
    supervisors = require("supervisor")
    desk = require("supervisor", "agent")
    router = APIRouter()

    async def reload_agent(agent_id: str) -> None:
        if ctx.acd is not None:
            await ctx.acd.reload_agent(agent_id)

    async def reload_queue(name: str) -> None:
        if ctx.acd is not None:
            await ctx.acd.reload_queue(name)

    async def own(user: User, agent_id: str) -> AgentRecord:
        """The agent ``user`` may act on: anyone for managers, their own for role agent (else 403)."""
        rec = await agents.get(agent_id)
        if user.role in MANAGERS:
            if rec is None:
                raise HTTPException(404, f"no agent {agent_id!r} is configured")
            return rec
        if rec is None or rec.spec.user != user.name:
            raise HTTPException(403, f"user {user.name!r} is not agent {agent_id!r}: agents may act only on "
                                     "themselves (supervisors and admins on anyone)")
        return rec

    def agent_out(rec: AgentRecord) -> AgentOut:
        return AgentOut(**rec.to_json())

    def queue_out(rec: QueueRecord) -> QueueOut:
        return QueueOut(**rec.to_json())

    # -- agents ----------------------------------------------------------------------------------------
    @router.get("/api/agents", response_model=list[AgentOut], tags=["agents"])
    async def list_agents(_: Annotated[User, Depends(supervisors)]) -> list[AgentOut]:
        return [agent_out(a) for a in await agents.all()]

    @router.post("/api/agents", status_code=201, response_model=AgentOut, tags=["agents"],
                 responses={**_INVALID, 409: {"description": "The id is taken"}})
    async def add_agent(body: AgentIn, _: Annotated[User, Depends(admin)]) -> AgentOut | JSONResponse:
        from routing.config import agent_from_dict

        try:
            rec = await agents.add(agent_from_dict(_fields(body)))
        except ConfigInvalid as exc:
            return _invalid(exc)
        except AlreadyExists as exc:
            raise HTTPException(409, str(exc)) from None
        await reload_agent(rec.spec.id)
        return agent_out(rec)

    @router.post("/api/agents/import", response_model=AgentImportOut, tags=["agents"], responses=_CSV_IMPORT,
                 openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
                     "type": "string", "description": "id,name,team,uri,skills,wrap_up_s,max_offers,weight,order,user"
                                                      " (id required; any order)"}}}}})
    async def import_agents(
        request: Request, _: Annotated[User, Depends(admin)],
        skip_bad: Annotated[bool, Query(description="Import the good rows, report the bad ones")] = False,
        file: Annotated[str, Query(max_length=500, description="The file name for error messages")] = "<csv>",
    ) -> AgentImportOut | JSONResponse:
        """Add or change many agents from a CSV body (``Content-Type: text/csv``), by id: a known id gets the
        row's non-empty cells, the others stay. All or nothing unless ``skip_bad``; the live ACD reloads
        every agent added or changed. Format: docs/agents.md."""
        try:
            report = await import_agent_csv(agents, decode_csv(await _csv_body(request), file), file=file,
                                      skip_bad=skip_bad)
        except CsvInvalid as exc:
            return _invalid(exc)
        for agent_id in (*report.added, *report.changed):
            await reload_agent(agent_id)
        return AgentImportOut(**report.to_json())

    @router.get("/api/agents/{agent_id}", response_model=AgentOut, tags=["agents"])
    async def get_agent(agent_id: str, user: Annotated[User, Depends(desk)]) -> AgentOut:
        return agent_out(await own(user, agent_id))

    @router.put("/api/agents/{agent_id}", response_model=AgentOut, tags=["agents"], responses=_INVALID)
    async def change_agent(agent_id: str, body: AgentChange,
                           _: Annotated[User, Depends(admin)]) -> AgentOut | JSONResponse:
        """Change the fields given; the others (and the agent's state) stay."""
        try:
            rec = await agents.change(agent_id, _fields(body))
        except ConfigInvalid as exc:
            return _invalid(exc)
        except UnknownAgent as exc:
            raise HTTPException(404, str(exc)) from None
        await reload_agent(agent_id)
        return agent_out(rec)

    @router.delete("/api/agents/{agent_id}", response_model=AgentOut, tags=["agents"])
    async def delete_agent(agent_id: str, _: Annotated[User, Depends(admin)]) -> AgentOut:
        """Remove an agent (the live ACD logs them out); returns what it was."""
        try:
            rec = await agents.delete(agent_id)
        except UnknownAgent as exc:
            raise HTTPException(404, str(exc)) from None
        await reload_agent(agent_id)
        return agent_out(rec)

    @router.post("/api/agents/{agent_id}/state", response_model=dict[str, Any], tags=["agents"],
                 responses={503: {"description": "The ACD is not running; the requested state was recorded"},
                            409: {"description": "The ACD refused the change"}})
    async def set_state(agent_id: str, body: StateIn, user: Annotated[User, Depends(desk)]) -> dict[str, Any]:
        """Log in, log out, pause (with a reason code) or resume; returns the live status (``pending``: a
        pause or logout that waits for the current call and its wrap-up)."""
        rec = await own(user, agent_id)
        try:
            state, reason = requested_state(body.action, rec.state, body.reason)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if ctx.acd is None:
            await agents.set_state(agent_id, state, reason)
            raise HTTPException(503, f"the ACD is not running: {agent_id} {body.action} was recorded "
                                     "and applies when it starts")
        try:
            status: dict[str, Any] = await ctx.acd.set_state(agent_id, body.action, reason, by=user.name)
        except (UnknownAgent, RouterUnknownAgent) as exc:
            raise HTTPException(404, str(exc)) from None
        except RoutingError as exc:
            raise HTTPException(409, str(exc)) from None
        await agents.set_state(agent_id, state, reason)
        return {**status, "live": True}

    @router.get("/api/agents/{agent_id}/status", response_model=dict[str, Any], tags=["agents"])
    async def agent_status(agent_id: str, user: Annotated[User, Depends(desk)]) -> dict[str, Any]:
        """The live status {id, state, reason, since, pending, contact, live}; with no ACD running,
        the recorded state (``live`` false)."""
        rec = await own(user, agent_id)
        if ctx.acd is not None:
            try:
                return {**ctx.acd.agent_status(agent_id), "live": True}
            except (UnknownAgent, RouterUnknownAgent):
                pass  # (configured but not loaded yet: the recorded state is the truth for now)
        return {"id": agent_id, "state": rec.state, "reason": rec.reason, "since": None, "pending": "",
                "contact": "", "live": False}

    # -- queues ----------------------------------------------------------------------------------------
    @router.get("/api/directory", tags=["agents"])
    async def directory(_: Annotated[User, Depends(desk)]) -> dict[str, Any]:
        """Where an agent may transfer a call: the queues' names and the agents' ids and names (no URIs)."""
        return {"queues": [q.spec.name for q in await queues.all()],
                "agents": [{"id": a.spec.id, "name": a.spec.name, "team": a.spec.team} for a in await agents.all()]}

    @router.get("/api/queues", response_model=list[QueueOut], tags=["queues"])
    async def list_queues(_: Annotated[User, Depends(supervisors)]) -> list[QueueOut]:
        return [queue_out(q) for q in await queues.all()]

    @router.post("/api/queues", status_code=201, response_model=QueueOut, tags=["queues"],
                 responses={**_INVALID, 409: {"description": "The name is taken"}})
    async def add_queue(body: QueueIn, _: Annotated[User, Depends(admin)]) -> QueueOut | JSONResponse:
        from routing.config import queue_from_dict

        try:
            rec = await queues.add(queue_from_dict(_fields(body)))
        except ConfigInvalid as exc:
            return _invalid(exc)
        except AlreadyExists as exc:
            raise HTTPException(409, str(exc)) from None
        await reload_queue(rec.spec.name)
        return queue_out(rec)

    @router.get("/api/queues/{name:queue_name}", response_model=QueueOut, tags=["queues"])
    async def get_queue(name: str, _: Annotated[User, Depends(supervisors)]) -> QueueOut:
        rec = await queues.get(name)
        if rec is None:
            raise HTTPException(404, f"no queue {name!r} is configured")
        return queue_out(rec)

    @router.put("/api/queues/{name:queue_name}", response_model=QueueOut, tags=["queues"], responses=_INVALID)
    async def change_queue(name: str, body: QueueChange, _: Annotated[User, Depends(admin)]) -> QueueOut | JSONResponse:
        """Change the fields given; the others stay. Applies to waiting callers and logged-in agents at once."""
        try:
            rec = await queues.change(name, _fields(body))
        except ConfigInvalid as exc:
            return _invalid(exc)
        except UnknownQueue as exc:
            raise HTTPException(404, str(exc)) from None
        await reload_queue(name)
        return queue_out(rec)

    # -- customers -------------------------------------------------------------------------------------
    @router.get("/api/customers/{phone}", response_model=CustomerOut, tags=["customers"])
    async def get_customer(phone: str, _: Annotated[User, Depends(desk)]) -> CustomerOut:
        got = await customers.lookup(phone)
        if got is None:
            raise HTTPException(404, f"no customer profile and no calls for {phone!r}")
        return CustomerOut(**got)

    @router.post("/api/customers/import", response_model=ImportOut, tags=["customers"],
                 openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
                     "type": "string", "description": "phone,name,vip_tier,language,last_agent,notes"}}}}},
                 responses=_CSV_IMPORT)
    async def import_customers(
        request: Request, _: Annotated[User, Depends(supervisors)],
        skip_bad: Annotated[bool, Query(description="Import the good lines, report the bad ones")] = False,
        file: Annotated[str, Query(max_length=500, description="The file name for error messages")] = "<csv>",
    ) -> ImportOut | JSONResponse:
        """Upsert customers from a CSV body (``Content-Type: text/csv``), by phone number."""
        raw = await _csv_body(request)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPException(400, f"{file}: not UTF-8 text (byte {exc.start})") from None
        try:
            report = await customers.import_csv(text, file=file, skip_bad=skip_bad)
        except CsvInvalid as exc:
            return _invalid(exc)
        return ImportOut(**report.to_json())

    return router
