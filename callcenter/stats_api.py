"""GET /api/queues/stats: queue and agent figures over a time range, with the live ACD's snapshot.

For supervisors and admins. The range figures are routing/metrics.py's over the events table (the
definitions are in docs/metrics.md); when the ACD runs (``ctx.acd``), each queue also carries what
is true now (contacts waiting, the longest wait so far, agents by state) and each agent their state
now. ``from``/``to`` take ISO dates or datetimes (UTC unless an offset is given; a date alone as
``to`` means the end of that day); the default is today, midnight UTC until now. Bad input is a
400 with a one-line ``detail``.
"""

# (No `from __future__ import annotations`: FastAPI reads the routes' Depends(...) annotations at run time.)
import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from routing import metrics
from routing.metrics import AgentMetrics, QueueMetrics

from .api import ApiContext, require
from .exceptions import ConfigError
from .storage.metrics_repo import MetricsRepo, check_range, compute
from .storage.repos import User


class QueueStats(BaseModel):
    queue: str
    waiting: int | None = Field(default=None, description="Contacts waiting now (None: the ACD is not running)")
    longest_wait_now_s: float | None = Field(default=None, description="The longest wait of those waiting now")
    agents_now: dict[str, int] = Field(default_factory=dict, description="Agents serving the queue, by state now")
    metrics: QueueMetrics


class AgentStats(BaseModel):
    agent: str
    state_now: str | None = Field(default=None, description="None: the ACD is not running or does not know the agent")
    reason_now: str = ""
    metrics: AgentMetrics


class StatsOut(BaseModel):
    start: str = Field(description="The range's start, ISO 8601 UTC (included)")
    end: str = Field(description="The range's end (excluded)")
    horizon: str = Field(description="min(end, now): open agent states and waits are counted up to here")
    acd_running: bool
    live_at: float | None = Field(default=None, description="Epoch seconds of the live snapshot")
    queues: list[QueueStats]
    total: QueueMetrics = Field(description="All queues together (the queue field is empty)")
    agents: list[AgentStats]
    interval_s: float | None
    intervals: dict[str, list[QueueMetrics]] = Field(description="Per queue, the figures of each interval")
    skipped_rows: int = Field(description="Event rows in the range whose time could not be read")


def _range(start: str | None, end: str | None, now: float) -> tuple[float, float]:
    try:
        a = metrics.parse_time(start) if start else metrics.today_utc(now)[0]
        b = metrics.parse_time(end, end=True) if end else now
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return a, b


def build_router(ctx: ApiContext) -> APIRouter:
    repo = MetricsRepo.for_database(ctx.db or ctx.calls.db)
    readers = require("supervisor")
    router = APIRouter()

    @router.get("/api/queues/stats", response_model=StatsOut, tags=["queues"])
    async def queue_stats(
        _: Annotated[User, Depends(readers)],
        start: Annotated[str | None, Query(alias="from", max_length=40,
                                           description="ISO date or datetime (default: today 00:00 UTC)")] = None,
        end: Annotated[str | None, Query(alias="to", max_length=40,
                                         description="ISO date or datetime, excluded (default: now)")] = None,
        queue: Annotated[str | None, Query(max_length=200, description="Only this queue")] = None,
        interval: Annotated[float | None, Query(gt=0, description="Also per-interval figures, seconds")] = None,
    ) -> StatsOut:
        now = time.time()
        a, b = _range(start, end, now)
        try:
            check_range(a, b, interval)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        snap: dict[str, Any] = ctx.acd.snapshot() if ctx.acd is not None else {}
        live_queues: dict[str, Any] = snap.get("queues", {})
        live_agents: dict[str, Any] = snap.get("agents", {})
        try:
            got = await repo.rows(a, b, queue)
        except ConfigError as exc:
            raise HTTPException(503, str(exc)) from None
        got.queues += [q for q in live_queues if q not in got.queues]
        report = await asyncio.to_thread(compute, got, a, b, queue=queue, bucket_s=interval, now=now)

        def queue_out(m: QueueMetrics) -> QueueStats:
            live = live_queues.get(m.queue)
            if live is None:
                return QueueStats(queue=m.queue, metrics=m)
            return QueueStats(queue=m.queue, waiting=live.get("waiting"), longest_wait_now_s=live.get("longest_wait_s"),
                              agents_now=dict(live.get("agents", {})), metrics=m)

        def agent_out(m: AgentMetrics) -> AgentStats:
            live = live_agents.get(m.agent) or {}
            return AgentStats(agent=m.agent, state_now=live.get("state"), reason_now=live.get("reason", "") or "",
                              metrics=m)

        return StatsOut(
            start=metrics.iso(report.start), end=metrics.iso(report.end), horizon=metrics.iso(report.horizon),
            acd_running=ctx.acd is not None, live_at=snap.get("at"),
            queues=[queue_out(m) for m in report.queues.values()], total=report.total,
            agents=[agent_out(m) for m in report.agents.values()], interval_s=report.bucket_s,
            intervals=report.buckets, skipped_rows=got.skipped)

    return router
