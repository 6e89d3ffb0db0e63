"""HTTP API of the QA page: /api/qa/... (search calls, review one, play it, override its scorecard).

Roles qa and supervisor (admin always). A search whose full-text query cannot be parsed is a 400
with the reason (never a 500). Audio is served from the data directory's ``recordings/`` folder
only, as regular files reached through no symbolic link, with HTTP Range support so a player can
seek; a call or leg that was never recorded is a 404, a file that is gone is a 410.
The SQL lives in callcenter/storage/qa.py; the page itself in callcenter/web/.
"""

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, field_validator

from asr.transcript import Transcript, Utterance

from .api import ApiContext, _regular_file_under, require
from .exceptions import UnknownAgent
from .storage.qa import MAX_QUERY_CHARS, BadSearch, NotFound, QaRepo, SearchFilter, search_terms
from .storage.repos import User

RECORDINGS_DIR = "recordings"
Leg = Literal["stereo", "caller", "agent", "redacted"]


class Match(BaseModel):
    speaker: str
    start_s: float
    snippet: str = Field(description="Text around the match; matched words between \\u0002 and \\u0003")


class CallSummary(BaseModel):
    id: str
    started_at: str
    answered_at: str | None
    ended_at: str | None
    caller: str
    caller_name: str
    callee: str
    flow: str
    direction: str
    queue: str
    agent: str
    agent_name: str
    disposition: str | None
    ends_angry: bool
    duration_s: float | None
    score: float | None = Field(description="Weighted mean of the scorecard items, overrides applied (0..1)")
    scored_items: int
    overridden: int
    categories: list[str]
    hits: int
    transcribed: bool


class SearchHit(CallSummary):
    match: Match | None = Field(description="The first utterance matching the text query")
    matches: int = Field(description="How many utterances match the text query")


class SearchOut(BaseModel):
    total: int = Field(description="Calls matching, over all pages")
    terms: list[str] = Field(description="The words and phrases searched for (prefixes end with *), to highlight")
    calls: list[SearchHit]


class RecordingOut(BaseModel):
    leg: str
    seconds: float
    offset_s: float = Field(description="Where this leg starts on the call's timeline")
    pauses: list[list[float]]
    bytes: int
    sha256: str
    url: str


class TranscriptInfo(BaseModel):
    engine: str
    model: str
    language: str
    duration_s: float
    words: int
    redacted: bool
    created_at: str


class UtteranceOut(BaseModel):
    id: int
    speaker: str
    start_s: float
    end_s: float
    text: str
    confidence: float


class HitOut(BaseModel):
    id: int
    rule: str
    category: str
    speaker: str
    start_s: float
    end_s: float
    phrase: str
    source: str


class ScoreItem(BaseModel):
    scorecard: str
    item: str
    weight: float
    auto_score: float | None
    score: float | None = Field(description="The reviewer's override (None: none)")
    effective: float | None = Field(description="score if set, else auto_score")
    reviewer: str
    comment: str
    evidence: str
    updated_at: str


class ScorecardOut(BaseModel):
    scorecard: str
    total: float | None
    items: list[ScoreItem]


class EmotionOut(BaseModel):
    speaker: str
    quarter: int
    lexicon: float
    pitch_hz: float
    energy_db: float
    rate_wps: float
    score: float


class Review(BaseModel):
    call: CallSummary
    recordings: list[RecordingOut]
    transcript: TranscriptInfo | None
    utterances: list[UtteranceOut]
    hits: list[HitOut]
    scorecards: list[ScorecardOut]
    emotion: list[EmotionOut]


class ScoreIn(BaseModel):
    score: float | None = Field(ge=0, le=1, allow_inf_nan=False, description="0..1; null clears the override")
    comment: str = Field("", max_length=2000)

    @field_validator("score", mode="before")
    @classmethod
    def _printable(cls, v: Any) -> Any:
        # A NaN or Infinity in the body (Python's json reads them) would be echoed in the 422 and fail to
        # serialize into a 500: hand it on as text, which fails the same check and prints.
        return str(v) if isinstance(v, float) and not math.isfinite(v) else v


class ScoreOut(BaseModel):
    item: ScoreItem
    scorecard_total: float | None
    call_score: float | None


class AgentCall(BaseModel):
    call_id: str
    started_at: str
    queue: str
    score: float | None
    overridden: int
    scorecards: dict[str, float | None]


class AgentItem(BaseModel):
    scorecard: str
    item: str
    mean: float | None
    scored: int
    overridden: int


class AgentScores(BaseModel):
    agent: str
    name: str
    mean: float | None
    calls: list[AgentCall]
    items: list[AgentItem]


class AgentRef(BaseModel):
    id: str
    name: str


class Facets(BaseModel):
    agents: list[AgentRef]
    queues: list[str]
    categories: list[str]


def _audio_url(call_id: str, leg: str) -> str:
    return f"/api/qa/calls/{call_id}/audio?leg={leg}"


def build_router(ctx: ApiContext) -> APIRouter:
    repo = QaRepo(ctx.db or ctx.calls.db)
    reviewers = require("qa", "supervisor")
    router = APIRouter(tags=["qa"])
    recordings_root = ctx.data_dir / RECORDINGS_DIR

    @router.get("/api/qa/search", response_model=SearchOut)
    async def search(
        _: Annotated[User, Depends(reviewers)],
        q: Annotated[str, Query(max_length=MAX_QUERY_CHARS,
                                description='Words, "a phrase", prefix*, OR, NOT, parentheses')] = "",
        start: Annotated[str | None, Query(alias="from", max_length=40,
                                           description="Started at or after: a date or an ISO 8601 time")] = None,
        end: Annotated[str | None, Query(alias="to", max_length=40,
                                         description="Started before: a date (through that day) or ISO time")] = None,
        agent: Annotated[str, Query(max_length=200)] = "",
        queue: Annotated[str, Query(max_length=200)] = "",
        category: Annotated[list[str] | None, Query(description="A keyword category (repeat: any of them)")] = None,
        min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
        max_score: Annotated[float | None, Query(ge=0, le=1)] = None,
        reviewed: Annotated[bool | None, Query(description="Only calls with (true) or without (false) overrides")]
        = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> SearchOut:
        f = SearchFilter(text=q, start=start, end=end, agent=agent, queue=queue, categories=tuple(category or ()),
                         min_score=min_score, max_score=max_score, reviewed=reviewed, limit=limit, offset=offset)
        try:
            page = await repo.search(f)
        except BadSearch as exc:
            raise HTTPException(400, str(exc)) from None
        return SearchOut(total=page.total, terms=search_terms(q), calls=[SearchHit(**c) for c in page.calls])

    @router.get("/api/qa/facets", response_model=Facets)
    async def facets(_: Annotated[User, Depends(reviewers)]) -> Facets:
        """Agents, queues and keyword categories to offer in the search filters."""
        return Facets(**await repo.facets())

    @router.get("/api/qa/calls/{call_id}", response_model=Review)
    async def review(call_id: str, _: Annotated[User, Depends(reviewers)]) -> Review:
        try:
            r: dict[str, Any] = await repo.review(call_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        recs = [RecordingOut(**{k: v for k, v in rec.items() if k in RecordingOut.model_fields},
                             url=_audio_url(call_id, rec["leg"])) for rec in r["recordings"]]
        return Review(call=CallSummary(**r["call"]), recordings=recs,
                      transcript=TranscriptInfo(**r["transcript"]) if r["transcript"] else None,
                      utterances=[UtteranceOut(**u) for u in r["utterances"]], hits=[HitOut(**h) for h in r["hits"]],
                      scorecards=[ScorecardOut(**c) for c in r["scorecards"]],
                      emotion=[EmotionOut(**e) for e in r["emotion"]])

    @router.get("/api/qa/calls/{call_id}/audio", response_class=FileResponse,
                responses={200: {"content": {"audio/wav": {}}, "description": "The leg as a WAV file"},
                           206: {"content": {"audio/wav": {}}, "description": "The byte range asked for"},
                           404: {"description": "No such call, or that leg was not recorded"},
                           410: {"description": "The file is gone from the recordings folder"}})
    async def audio(call_id: str, _: Annotated[User, Depends(reviewers)],
                    leg: Annotated[Leg | None, Query(description="Default: stereo if mixed, else the first leg")]
                    = None) -> FileResponse:
        """One recording of the call; send ``Range: bytes=a-b`` to get part of it (206), as players do to seek."""
        recs = await repo.recordings(call_id)
        if not recs:
            if await ctx.calls.get(call_id) is None:
                raise HTTPException(404, f"no call {call_id}")
            raise HTTPException(404, f"call {call_id} has no finished recording")
        rec = next((r for r in recs if r["leg"] == leg), None) if leg else recs[0]
        if rec is None:
            have = ", ".join(r["leg"] for r in recs)
            raise HTTPException(404, f"call {call_id} has no {leg} recording (it has: {have})")
        path = _regular_file_under(recordings_root, ctx.data_dir / rec["path"])
        if path is None:
            raise HTTPException(410, f"the {rec['leg']} recording of call {call_id} is gone from the "
                                     f"{RECORDINGS_DIR} folder")
        return FileResponse(path, media_type="audio/wav", filename=f"{call_id}-{rec['leg']}.wav",
                            content_disposition_type="inline", headers={"Cache-Control": "private, max-age=0"})

    @router.get("/api/qa/calls/{call_id}/transcript.vtt", response_class=Response,
                responses={200: {"content": {"text/vtt": {}}, "description": "WebVTT, one cue per utterance"}})
    async def transcript_vtt(call_id: str, _: Annotated[User, Depends(reviewers)]) -> Response:
        """The (redacted) transcript as WebVTT with the speaker as a voice span (``<v customer>``)."""
        try:
            r = await repo.review(call_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        if r["transcript"] is None and not r["utterances"]:
            raise HTTPException(404, f"call {call_id} has no transcript yet")
        info = r["transcript"] or {}
        utts = tuple(Utterance(speaker=u["speaker"], start=u["start_s"], end=u["end_s"], text=u["text"],
                               confidence=u["confidence"]) for u in r["utterances"])
        t = Transcript(call_id=call_id, duration_s=info.get("duration_s", 0.0), engine=info.get("engine", ""),
                       utterances=utts)
        return Response(t.to_vtt(), media_type="text/vtt; charset=utf-8",
                        headers={"Content-Disposition": f'inline; filename="{call_id}.vtt"'})

    @router.put("/api/qa/calls/{call_id}/scores/{scorecard}/{item}", response_model=ScoreOut)
    async def override(call_id: str, scorecard: str, item: str, body: Annotated[ScoreIn, Body()],
                       user: Annotated[User, Depends(reviewers)]) -> ScoreOut:
        """Override one item's score (the reviewer is you), or clear the override with ``score: null``."""
        try:
            out = await repo.override(call_id, scorecard, item, score=body.score, comment=body.comment,
                                      reviewer=user.name)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except BadSearch as exc:  # (the body's checks already keep score in 0..1)
            raise HTTPException(400, str(exc)) from None
        return ScoreOut(item=ScoreItem(**out["item"]), scorecard_total=out["scorecard_total"],
                        call_score=out["call_score"])

    @router.get("/api/qa/agents/{agent}/scores", response_model=AgentScores)
    async def agent_scores(
        agent: str, _: Annotated[User, Depends(reviewers)],
        start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="How many scored calls, newest first")] = 100,
    ) -> AgentScores:
        """The agent's scored calls over time with totals per scorecard, and each item's mean over them."""
        try:
            h = await repo.agent_history(agent, start=start, end=end, limit=limit)
        except UnknownAgent as exc:
            raise HTTPException(404, str(exc)) from None
        except BadSearch as exc:
            raise HTTPException(400, str(exc)) from None
        return AgentScores(agent=h["agent"], name=h["name"], mean=h["mean"],
                           calls=[AgentCall(**c) for c in h["calls"]], items=[AgentItem(**i) for i in h["items"]])

    return router
