"""What the QA page reads and writes: call search, a call's review, score overrides, agent score history.

Search is full text over the transcripts (SQLite FTS5 on ``utterances_fts``) filtered by date range,
agent, queue, keyword category (``keyword_hits.category``) and QA score. The query language is a
small, forgiving layer over FTS5's (``fts_query``): bare words must all appear, ``"a phrase"`` matches
words in a row, ``refund*`` is a prefix, ``OR`` / ``NOT`` / ``AND`` and parentheses combine them.
Punctuation inside a word splits it into a phrase (``follow-up`` is ``"follow up"``), so an analyst
typing what they heard does not meet FTS5 syntax errors; what is still wrong (an unclosed quote, a
dangling ``OR``) raises :class:`BadSearch` with a message to show them.

A call's score is the weighted mean of its ``qa_scores`` items with overrides applied: an item counts
as ``score`` (the reviewer's) when set, else ``auto_score`` (the rules'); items with neither are not
scored yet and count for nothing. Scores are 0..1. An override sets ``score``, ``reviewer`` and
``comment`` and appends a ``QA_SCORE`` event (the audit trail: previous and new value, who, why).

Writes go through the database's group-commit writer; reads flush it first (see db.py).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..exceptions import CallCenterError, UnknownAgent
from .db import Database, utcnow

LEGS = ("stereo", "caller", "agent", "redacted")
MAX_QUERY_CHARS = 500
MARK_START, MARK_END = "\x02", "\x03"   # around matched words in search snippets (escape the text, then mark)


class QaError(CallCenterError):
    """Base of the QA store's errors."""


class BadSearch(QaError, ValueError):
    """A search the user must fix: a malformed full-text query, a bad date, a score range upside down (400)."""


class NotFound(QaError, LookupError):
    """No such call, or no such scorecard item on the call (404)."""


# -- the query language ----------------------------------------------------------------------------------
_TOKEN = re.compile(r'"([^"]*)"(\*)?|(\()|(\))|([^\s()"]+)')
_WORD = re.compile(r"[^\W_]+")          # what FTS5's unicode61 tokenizer keeps as one token
_OPERATORS = ("AND", "OR", "NOT")


def _phrase(text: str, prefix: bool) -> str | None:
    if text.endswith("*"):
        text, prefix = text[:-1], True
    words = _WORD.findall(text)
    if not words:
        return None
    return '"' + " ".join(words) + '"' + (" *" if prefix else "")


def fts_query(text: str) -> str:
    """The FTS5 MATCH expression for what the analyst typed; BadSearch when it cannot be one."""
    text = text.strip()
    if len(text) > MAX_QUERY_CHARS:
        raise BadSearch(f"the search is {len(text)} characters long; at most {MAX_QUERY_CHARS}")
    if text.count('"') % 2:
        raise BadSearch('the search has an unclosed quote: close the phrase with a second "')
    parts: list[str] = []
    for m in _TOKEN.finditer(text):
        quoted, star, left, right, word = m.groups()
        if left or right:
            parts.append(left or right)
        elif word in _OPERATORS:
            parts.append(word)
        else:
            expr = _phrase(quoted if quoted is not None else word, bool(star))
            if expr is not None:
                parts.append(expr)
    if not any(p not in ("(", ")", *_OPERATORS) for p in parts):
        raise BadSearch(f"nothing to search for in {text!r}: type a word, a \"phrase\" or a prefix*")
    return " ".join(parts)


def search_terms(text: str) -> list[str]:
    """The words and phrases of a search (no operators), for highlighting: prefixes end with ``*``."""
    out = []
    for m in _TOKEN.finditer(text):
        quoted, star, _, _, word = m.groups()
        raw = quoted if quoted is not None else word
        if raw is None or raw in _OPERATORS:
            continue
        expr = _phrase(raw, bool(star))
        if expr is not None:
            out.append(expr.replace('"', "").replace(" *", "*"))
    return out


def _bad_fts(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc)
    return msg.startswith("fts5") or "syntax error" in msg or "no such column" in msg or "unterminated" in msg


# -- filters -----------------------------------------------------------------------------------------------
def time_bound(value: str, *, name: str, end: bool) -> str:
    """An ISO 8601 UTC bound comparable with ``calls.started_at``; a bare date's end is the next midnight."""
    value = value.strip()
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            dt = datetime(d.year, d.month, d.day, tzinfo=UTC) + (timedelta(days=1) if end else timedelta())
        else:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except ValueError:
        raise BadSearch(f"{name} must be a date like 2024-05-31 or an ISO 8601 time, not {value!r}") from None
    return dt.isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """What to look for; every field is optional (None or empty: no filter)."""

    text: str = ""                        # the full-text query (see fts_query)
    start: str | None = None              # calls started at or after (date or ISO time)
    end: str | None = None                # ... and before (a date: through that whole day)
    agent: str = ""
    queue: str = ""
    categories: Sequence[str] = ()        # calls with a keyword hit in any of these
    min_score: float | None = None        # 0..1, inclusive; calls without a score are then left out
    max_score: float | None = None
    reviewed: bool | None = None          # True: some item overridden; False: none
    limit: int = 100
    offset: int = 0


@dataclass(slots=True)
class SearchPage:
    total: int
    calls: list[dict[str, Any]] = field(default_factory=list)


# The weighted mean over items that have a value (the reviewer's, else the rules').
_TOTAL = ("sum(q.weight * coalesce(q.score, q.auto_score)) / "
          "nullif(sum(CASE WHEN coalesce(q.score, q.auto_score) IS NULL THEN 0 ELSE q.weight END), 0)")

_CALL_COLUMNS = f"""
    c.id, c.started_at, c.answered_at, c.ended_at, c.caller, c.caller_name, c.callee, c.flow, c.direction,
    c.queue, c.agent, coalesce(a.name, '') AS agent_name, c.disposition, c.ends_angry,
    CASE WHEN c.ended_at IS NULL THEN NULL
         ELSE round((julianday(c.ended_at) - julianday(c.started_at)) * 86400.0, 3) END AS duration_s,
    (SELECT {_TOTAL} FROM qa_scores q WHERE q.call_id = c.id) AS score,
    (SELECT count(coalesce(q.score, q.auto_score)) FROM qa_scores q WHERE q.call_id = c.id) AS scored_items,
    (SELECT count(q.score) FROM qa_scores q WHERE q.call_id = c.id) AS overridden,
    (SELECT group_concat(category, char(31)) FROM (SELECT DISTINCT k.category FROM keyword_hits k
        WHERE k.call_id = c.id AND k.category != '' ORDER BY k.category)) AS categories,
    (SELECT count(*) FROM keyword_hits k WHERE k.call_id = c.id) AS hits,
    EXISTS (SELECT 1 FROM transcripts t WHERE t.call_id = c.id) AS transcribed
"""

_FTS_CALLS = ("SELECT u.call_id FROM utterances_fts JOIN utterances u ON u.id = utterances_fts.rowid "
              "WHERE utterances_fts MATCH ?")


def _call_row(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["categories"] = d["categories"].split("\x1f") if d.get("categories") else []
    d["ends_angry"] = bool(d["ends_angry"])
    d["transcribed"] = bool(d["transcribed"])
    return d


def _score(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise BadSearch(f"{what} must be between 0 and 1, not {value!r}")
    return float(value)


class QaRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.db.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self.db.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    # -- search ------------------------------------------------------------------------------------------
    async def search(self, f: SearchFilter) -> SearchPage:
        """Calls matching ``f``, newest first, with their score, categories and the first matching utterance."""
        where: list[str] = []
        params: list[Any] = []
        match = fts_query(f.text) if f.text.strip() else None
        if match is not None:
            where.append(f"c.id IN ({_FTS_CALLS})")
            params.append(match)
        if f.start:
            where.append("c.started_at >= ?")
            params.append(time_bound(f.start, name="from", end=False))
        if f.end:
            exclusive = len(f.end.strip()) == 10
            where.append("c.started_at < ?" if exclusive else "c.started_at <= ?")
            params.append(time_bound(f.end, name="to", end=True))
        if f.agent:
            where.append("c.agent = ?")
            params.append(f.agent)
        if f.queue:
            where.append("c.queue = ?")
            params.append(f.queue)
        cats = [c for c in f.categories if c]
        if cats:
            where.append(f"EXISTS (SELECT 1 FROM keyword_hits k WHERE k.call_id = c.id "
                         f"AND k.category IN ({', '.join('?' * len(cats))}))")
            params.extend(cats)
        low, high = _score(f.min_score, "min_score"), _score(f.max_score, "max_score")
        if low is not None and high is not None and low > high:
            raise BadSearch(f"min_score {low} is above max_score {high}")
        outer: list[str] = []
        if low is not None:
            outer.append("score >= ?")
        if high is not None:
            outer.append("score <= ?")
        if f.reviewed is not None:
            outer.append("overridden > 0" if f.reviewed else "overridden = 0")
        outer_params = [v for v in (low, high) if v is not None]
        inner = (f"SELECT {_CALL_COLUMNS} FROM calls c LEFT JOIN agents a ON a.id = c.agent"
                 + (f" WHERE {' AND '.join(where)}" if where else ""))
        sql = (f"SELECT *, count(*) OVER () AS total FROM ({inner})"
               + (f" WHERE {' AND '.join(outer)}" if outer else "")
               + " ORDER BY started_at DESC, id LIMIT ? OFFSET ?")
        await self.db.flush()
        try:
            rows = await self._all(sql, [*params, *outer_params, max(1, f.limit), max(0, f.offset)])
        except sqlite3.OperationalError as exc:
            if match is not None and _bad_fts(exc):
                raise BadSearch(f"cannot search for {f.text.strip()!r} ({exc}): use words, \"phrases\", prefix*, "
                                "OR / NOT between two terms and balanced parentheses") from None
            raise
        page = SearchPage(total=rows[0]["total"] if rows else 0)
        for r in rows:
            d = _call_row(r)
            d.pop("total", None)
            d.update(match=None, matches=0)
            page.calls.append(d)
        if match is not None and page.calls:
            await self._snippets(match, page.calls)
        return page

    async def _snippets(self, match: str, calls: list[dict[str, Any]]) -> None:
        by_id = {c["id"]: c for c in calls}
        rows = await self._all(
            "SELECT u.call_id, u.speaker, u.start_s, "
            "snippet(utterances_fts, 0, char(2), char(3), '…', 14) AS snippet "
            "FROM utterances_fts JOIN utterances u ON u.id = utterances_fts.rowid "
            f"WHERE utterances_fts MATCH ? AND u.call_id IN ({', '.join('?' * len(by_id))}) "
            "ORDER BY u.call_id, u.start_s, u.id", [match, *by_id])
        for r in rows:
            call = by_id[r["call_id"]]
            call["matches"] += 1
            if call["match"] is None:
                call["match"] = {"speaker": r["speaker"], "start_s": r["start_s"], "snippet": r["snippet"]}

    # -- one call ----------------------------------------------------------------------------------------
    async def review(self, call_id: str) -> dict[str, Any]:
        """Everything the review pane shows: the call, its recordings, transcript, hits, scores, emotion."""
        await self.db.flush()
        row = await self._one(f"SELECT {_CALL_COLUMNS} FROM calls c LEFT JOIN agents a ON a.id = c.agent "
                              "WHERE c.id = ?", (call_id,))
        if row is None:
            raise NotFound(f"no call {call_id}")
        call = _call_row(row)
        transcript = await self._one(
            "SELECT engine, model, language, duration_s, words, redacted, created_at FROM transcripts "
            "WHERE call_id = ?", (call_id,))
        utterances = await self._all(
            "SELECT id, speaker, start_s, end_s, text, confidence FROM utterances WHERE call_id = ? "
            "ORDER BY start_s, id", (call_id,))
        hits = await self._all(
            "SELECT id, rule, category, speaker, start_s, end_s, phrase, source FROM keyword_hits "
            "WHERE call_id = ? ORDER BY start_s, id", (call_id,))
        emotion = await self._all(
            "SELECT speaker, quarter, lexicon, pitch_hz, energy_db, rate_wps, score FROM call_emotion "
            "WHERE call_id = ? ORDER BY speaker, quarter", (call_id,))
        return {
            "call": call,
            "recordings": await self.recordings(call_id),
            "transcript": dict(transcript) | {"redacted": bool(transcript["redacted"])} if transcript else None,
            "utterances": [dict(u) for u in utterances],
            "hits": [dict(h) for h in hits],
            "scorecards": await self.scorecards(call_id),
            "emotion": [dict(e) for e in emotion],
        }

    async def recordings(self, call_id: str) -> list[dict[str, Any]]:
        """The call's files by leg (the recordings table; the calls row's own columns for legs it lacks)."""
        await self.db.flush()
        rows = [dict(r) | {"pauses": json.loads(r["pauses"] or "[]")} for r in await self._all(
            "SELECT leg, path, sha256, bytes, seconds, offset_s, pauses, created_at FROM recordings "
            "WHERE call_id = ?", (call_id,))]
        have = {r["leg"] for r in rows}
        c = await self._one("SELECT ended_at, recording_path, recording_sha256, recording_bytes, recording_seconds, "
                            "agent_recording_path, agent_recording_sha256, agent_recording_bytes, "
                            "agent_recording_seconds FROM calls WHERE id = ?", (call_id,))
        if c is not None and c["ended_at"] is not None:
            for leg, prefix in (("caller", "recording"), ("agent", "agent_recording")):
                if leg not in have and c[f"{prefix}_path"]:
                    rows.append({"leg": leg, "path": c[f"{prefix}_path"], "sha256": c[f"{prefix}_sha256"] or "",
                                 "bytes": c[f"{prefix}_bytes"] or 0, "seconds": c[f"{prefix}_seconds"] or 0.0,
                                 "offset_s": 0.0, "pauses": [], "created_at": c["ended_at"]})
        rows.sort(key=lambda r: LEGS.index(r["leg"]) if r["leg"] in LEGS else len(LEGS))
        return rows

    async def scorecards(self, call_id: str) -> list[dict[str, Any]]:
        """The call's scorecards in order, each with its items and weighted total (overrides applied)."""
        await self.db.flush()
        rows = await self._all(
            "SELECT scorecard, item, weight, auto_score, score, reviewer, comment, evidence, updated_at "
            "FROM qa_scores WHERE call_id = ? ORDER BY id", (call_id,))
        cards: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            d = dict(r)
            d["effective"] = d["score"] if d["score"] is not None else d["auto_score"]
            cards.setdefault(d["scorecard"], []).append(d)
        return [{"scorecard": name, "total": _weighted(items), "items": items} for name, items in cards.items()]

    async def override(self, call_id: str, scorecard: str, item: str, *, score: float | None, comment: str,
                       reviewer: str) -> dict[str, Any]:
        """Set (or with None clear) the reviewer's score of one item; returns the item and the call's totals."""
        score = _score(score, "score")
        await self.db.flush()
        row = await self._one("SELECT q.score, q.auto_score, q.comment, c.queue, c.agent FROM qa_scores q "
                              "JOIN calls c ON c.id = q.call_id "
                              "WHERE q.call_id = ? AND q.scorecard = ? AND q.item = ?", (call_id, scorecard, item))
        if row is None:
            if await self._one("SELECT 1 FROM calls WHERE id = ?", (call_id,)) is None:
                raise NotFound(f"no call {call_id}")
            raise NotFound(f"call {call_id} has no item {item!r} on scorecard {scorecard!r}")
        by = reviewer if score is not None or comment else ""
        await self.db.write("UPDATE qa_scores SET score = ?, comment = ?, reviewer = ?, updated_at = ? "
                            "WHERE call_id = ? AND scorecard = ? AND item = ?",
                            (score, comment, by, utcnow(), call_id, scorecard, item))
        data = {"scorecard": scorecard, "item": item, "previous": row["score"], "score": score,
                "auto_score": row["auto_score"], "comment": comment, "reviewer": reviewer}
        await self.db.write("INSERT INTO events (at, call_id, queue, agent, event, data) VALUES (?, ?, ?, ?, ?, ?)",
                            (utcnow(), call_id, row["queue"], row["agent"], "QA_SCORE",
                             json.dumps(data, sort_keys=True)))
        cards = await self.scorecards(call_id)
        card = next(c for c in cards if c["scorecard"] == scorecard)
        changed = next(i for i in card["items"] if i["item"] == item)
        return {"item": changed, "scorecard_total": card["total"], "call_score": _weighted(
            [i for c in cards for i in c["items"]])}

    # -- per agent ---------------------------------------------------------------------------------------
    async def agent_history(self, agent: str, *, start: str | None = None, end: str | None = None,
                            limit: int = 100) -> dict[str, Any]:
        """An agent's scored calls (newest first) with totals per scorecard, and per-item means over them."""
        await self.db.flush()
        known = await self._one("SELECT name FROM agents WHERE id = ?", (agent,))
        if known is None and await self._one("SELECT 1 FROM calls WHERE agent = ? LIMIT 1", (agent,)) is None:
            raise UnknownAgent(f"no agent {agent!r}")
        where = ["c.agent = ?", "EXISTS (SELECT 1 FROM qa_scores q WHERE q.call_id = c.id)"]
        params: list[Any] = [agent]
        if start:
            where.append("c.started_at >= ?")
            params.append(time_bound(start, name="from", end=False))
        if end:
            where.append("c.started_at < ?" if len(end.strip()) == 10 else "c.started_at <= ?")
            params.append(time_bound(end, name="to", end=True))
        picked = (f"SELECT c.id FROM calls c WHERE {' AND '.join(where)} "
                  "ORDER BY c.started_at DESC, c.id LIMIT ?")
        params.append(max(1, limit))
        calls = await self._all(
            f"SELECT c.id AS call_id, c.started_at, c.queue, q.scorecard, {_TOTAL} AS total, "
            f"count(q.score) AS overridden FROM calls c JOIN qa_scores q ON q.call_id = c.id "
            f"WHERE c.id IN ({picked}) GROUP BY c.id, q.scorecard ORDER BY c.started_at DESC, c.id, min(q.id)", params)
        overall = {r["call_id"]: r["score"] for r in await self._all(
            f"SELECT c.id AS call_id, {_TOTAL} AS score FROM calls c JOIN qa_scores q ON q.call_id = c.id "
            f"WHERE c.id IN ({picked}) GROUP BY c.id", params)}
        out: dict[str, dict[str, Any]] = {}
        for r in calls:
            entry = out.setdefault(r["call_id"], {"call_id": r["call_id"], "started_at": r["started_at"],
                                                 "queue": r["queue"], "score": overall.get(r["call_id"]),
                                                 "overridden": 0, "scorecards": {}})
            entry["scorecards"][r["scorecard"]] = r["total"]
            entry["overridden"] += r["overridden"]
        items = await self._all(
            "SELECT q.scorecard, q.item, avg(coalesce(q.score, q.auto_score)) AS mean, "
            "count(coalesce(q.score, q.auto_score)) AS scored, count(q.score) AS overridden "
            f"FROM qa_scores q WHERE q.call_id IN ({picked}) GROUP BY q.scorecard, q.item "
            "ORDER BY q.scorecard, min(q.id)", params)
        scores = [c["score"] for c in out.values() if c["score"] is not None]
        return {"agent": agent, "name": known["name"] if known else "", "calls": list(out.values()),
                "mean": sum(scores) / len(scores) if scores else None, "items": [dict(i) for i in items]}

    async def facets(self) -> dict[str, list[Any]]:
        """The values the search filters offer: agents (id, name), queues and keyword categories seen."""
        await self.db.flush()
        agents = [{"id": r[0], "name": r[1]} for r in await self._all(
            "SELECT id, name FROM agents UNION SELECT DISTINCT agent, '' FROM calls WHERE agent != '' "
            "AND agent NOT IN (SELECT id FROM agents) ORDER BY 1")]
        queues = [r[0] for r in await self._all(
            "SELECT name FROM queues UNION SELECT DISTINCT queue FROM calls WHERE queue != '' ORDER BY 1")]
        categories = [r[0] for r in await self._all(
            "SELECT DISTINCT category FROM keyword_hits WHERE category != '' ORDER BY 1")]
        return {"agents": agents, "queues": queues, "categories": categories}


def _weighted(items: Sequence[dict[str, Any]]) -> float | None:
    num = sum(i["weight"] * i["effective"] for i in items if i["effective"] is not None)
    den = sum(i["weight"] for i in items if i["effective"] is not None)
    return num / den if den else None

