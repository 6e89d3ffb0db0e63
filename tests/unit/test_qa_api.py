"""/api/qa/... and the /qa page, in-process on a real SQLite file with rows inserted per the committed schema."""

from __future__ import annotations

import json
import sqlite3
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.api import ApiContext, create_app
from callcenter.storage.db import Database
from callcenter.storage.qa import BadSearch, _bad_fts, fts_query, search_terms
from callcenter.storage.repos import CallRepo, UserRepo

ADMIN = {"Authorization": "Bearer tok-admin"}
SUP = {"Authorization": "Bearer tok-sup"}
QA = {"Authorization": "Bearer tok-qa"}
AGENT = {"Authorization": "Bearer tok-agent"}


# -- rows per the schema (shared with tests/integration/test_qa_page.py) ----------------------------------------------
def iso(day: int, hour: int = 10, minute: int = 0) -> str:
    return f"2024-05-{day:02d}T{hour:02d}:{minute:02d}:00.000+00:00"


async def add_call(db: Database, call_id: str, *, started_at: str, seconds: float = 60.0, caller: str = "+15550001",
                   agent: str = "alice", queue: str = "sales", recording_path: str | None = None) -> None:
    await db.write(
        "INSERT INTO calls (id, sip_call_id, caller, callee, started_at, answered_at, ended_at, disposition, "
        "queue, agent, recording_path, recording_seconds) VALUES (?, ?, ?, '1000', ?, ?, "
        "strftime('%Y-%m-%dT%H:%M:%f+00:00', julianday(?) + ? / 86400.0), 'completed', ?, ?, ?, ?)",
        (call_id, f"sip-{call_id}", caller, started_at, started_at, started_at, seconds, queue, agent,
         recording_path, seconds if recording_path else None))


async def add_agent(db: Database, agent_id: str, name: str) -> None:
    await db.write("INSERT INTO agents (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                   (agent_id, name, iso(1), iso(1)))


async def add_transcript(db: Database, call_id: str, utterances: Sequence[tuple[str, float, float, str]],
                         duration_s: float = 60.0) -> None:
    await db.write("INSERT INTO transcripts (call_id, engine, duration_s, json_path, vtt_path, words, created_at) "
                   "VALUES (?, 'pocketsphinx', ?, ?, ?, ?, ?)",
                   (call_id, duration_s, f"transcripts/{call_id}.json", f"transcripts/{call_id}.vtt",
                    sum(len(u[3].split()) for u in utterances), iso(1)))
    for speaker, start, end, text in utterances:
        await db.write("INSERT INTO utterances (call_id, speaker, start_s, end_s, text, confidence) "
                       "VALUES (?, ?, ?, ?, ?, 0.8)", (call_id, speaker, start, end, text))


async def add_hit(db: Database, call_id: str, rule: str, category: str, speaker: str, start: float, end: float,
                  phrase: str, source: str = "transcript") -> None:
    await db.write("INSERT INTO keyword_hits (call_id, rule, category, speaker, start_s, end_s, phrase, source, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (call_id, rule, category, speaker, start, end, phrase, source, iso(1)))


async def add_score(db: Database, call_id: str, scorecard: str, item: str, weight: float, auto: float | None,
                    evidence: str = "") -> None:
    await db.write("INSERT INTO qa_scores (call_id, scorecard, item, weight, auto_score, evidence, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", (call_id, scorecard, item, weight, auto, evidence, iso(1)))


async def add_recording(db: Database, call_id: str, leg: str, path: str, seconds: float, offset_s: float = 0.0,
                        pauses: Sequence[tuple[float, float]] = ()) -> None:
    await db.write("INSERT INTO recordings (call_id, leg, path, sha256, bytes, seconds, offset_s, pauses, created_at) "
                   "VALUES (?, ?, ?, 'x', 0, ?, ?, ?, ?)",
                   (call_id, leg, path, seconds, offset_s, json.dumps([list(p) for p in pauses]), iso(1)))


async def add_emotion(db: Database, call_id: str, speaker: str, scores: Sequence[float]) -> None:
    for quarter, score in enumerate(scores, 1):
        await db.write("INSERT INTO call_emotion (call_id, speaker, quarter, lexicon, pitch_hz, energy_db, rate_wps, "
                       "score) VALUES (?, ?, ?, ?, 180, -20, 2.5, ?)", (call_id, speaker, quarter, score, score))


def write_wav(path: Path, seconds: float = 1.0, channels: int = 2, rate: int = 8000) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = bytes((i * 7) % 256 for i in range(int(seconds * rate) * 2 * channels))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path.read_bytes()


def qa_app(ctx: ApiContext) -> FastAPI:
    """The server's app (QA routes and pages included)."""
    return create_app(ctx)


async def add_users(db: Database) -> None:
    users = UserRepo(db)
    for name, role, token in (("root", "admin", "tok-admin"), ("sv", "supervisor", "tok-sup"),
                              ("quinn", "qa", "tok-qa"), ("ann", "agent", "tok-agent")):
        await users.add(name, role, token)


async def seed(db: Database, data_dir: Path) -> None:
    """Three calls: A (alice, sales, refund + card), B (bob, support, a complaint), C (alice, sales, no transcript)."""
    await add_users(db)
    await add_agent(db, "alice", "Alice Smith")
    await add_agent(db, "bob", "Bob Jones")
    await add_call(db, "A", started_at=iso(1), seconds=40, caller="+15550101", recording_path="recordings/A.wav")
    await add_call(db, "B", started_at=iso(2), seconds=30, caller="+15550202", agent="bob", queue="support")
    await add_call(db, "C", started_at=iso(3), seconds=20, caller="+15550303")
    await add_transcript(db, "A", [
        ("agent", 0.5, 3.0, "thank you for calling this is alice how can i help"),
        ("customer", 3.5, 8.0, "i want a refund for the charge on my credit card"),
        ("agent", 8.5, 12.0, "i can refund that today"),
        ("customer", 12.5, 15.0, "great the refunds team said the same"),
    ], duration_s=40)
    await add_transcript(db, "B", [
        ("customer", 0.5, 4.0, "my card was charged twice and credit is missing"),
        ("agent", 4.5, 7.0, "sorry about the follow-up delay"),
    ], duration_s=30)
    await add_hit(db, "A", "refund_request", "billing", "customer", 3.9, 4.6, "refund")
    await add_hit(db, "A", "greeting", "script", "agent", 0.5, 1.4, "thank you for calling")
    await add_hit(db, "B", "complaint", "complaint", "customer", 0.5, 4.0, "charged twice", "spotting")
    await add_hit(db, "B", "double_charge", "billing", "customer", 1.0, 2.0, "charged twice")
    await add_score(db, "A", "standard", "greeting", 1, 1.0, "greeting at 0.5 s")
    await add_score(db, "A", "standard", "disclosure", 2, 0.0, "not said")
    await add_score(db, "A", "standard", "empathy", 1, None)
    await add_score(db, "B", "standard", "greeting", 1, 0.0, "no greeting in the first 15 s")
    await add_score(db, "B", "standard", "disclosure", 1, 1.0)
    await add_emotion(db, "A", "customer", [-0.2, -0.5, 0.1, 0.4])
    await add_emotion(db, "A", "agent", [0.3, 0.3, 0.2, 0.5])
    await add_recording(db, "A", "stereo", "recordings/A-stereo.wav", 40, pauses=[(20.0, 22.5)])
    await add_recording(db, "A", "agent", "recordings/A-agent.wav", 39.5, offset_s=0.5)
    write_wav(data_dir / "recordings" / "A-stereo.wav")
    write_wav(data_dir / "recordings" / "A.wav", channels=1)


@dataclass
class Env:
    db: Database
    client: httpx.AsyncClient
    data_dir: Path


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = await Database.open(tmp_path)
    data_dir = tmp_path.resolve()
    await seed(db, data_dir)
    app = qa_app(ApiContext(calls=CallRepo(db), users=UserRepo(db), data_dir=data_dir, active_calls=lambda: 0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Env(db, client, data_dir)
    await db.close()


async def ids(env: Env, **params: Any) -> list[str]:
    got = await env.client.get("/api/qa/search", params=params, headers=QA)
    assert got.status_code == 200, got.text
    return [c["id"] for c in got.json()["calls"]]


# -- roles ------------------------------------------------------------------------------------------------------------
ROUTES = (("GET", "/api/qa/search"), ("GET", "/api/qa/facets"), ("GET", "/api/qa/calls/A"),
          ("GET", "/api/qa/calls/A/audio"), ("GET", "/api/qa/calls/A/transcript.vtt"),
          ("PUT", "/api/qa/calls/A/scores/standard/empathy"), ("GET", "/api/qa/agents/alice/scores"))


async def test_routes_need_a_qa_or_supervisor_token(env: Env) -> None:
    body = {"score": 0.5, "comment": ""}
    for method, path in ROUTES:
        kw: dict[str, Any] = {"json": body} if method == "PUT" else {}
        assert (await env.client.request(method, path, **kw)).status_code == 401, path
        bad = await env.client.request(method, path, headers={"Authorization": "Bearer nope"}, **kw)
        assert bad.status_code == 401, path
        denied = await env.client.request(method, path, headers=AGENT, **kw)
        assert denied.status_code == 403, path
        assert "needs admin or qa or supervisor" in denied.json()["detail"]
        for who in (QA, SUP, ADMIN):
            assert (await env.client.request(method, path, headers=who, **kw)).status_code == 200, (path, who)


# -- search -----------------------------------------------------------------------------------------------------------
async def test_search_lists_newest_first_with_scores_and_categories(env: Env) -> None:
    got = (await env.client.get("/api/qa/search", headers=QA)).json()
    assert got["total"] == 3 and [c["id"] for c in got["calls"]] == ["C", "B", "A"]
    a = got["calls"][2]
    assert a["agent_name"] == "Alice Smith" and a["queue"] == "sales" and a["duration_s"] == pytest.approx(40)
    assert a["categories"] == ["billing", "script"] and a["hits"] == 2 and a["transcribed"] is True
    # weighted mean of the items with a value: (1*1.0 + 2*0.0) / 3; "empathy" has none and counts for nothing
    assert a["score"] == pytest.approx(1 / 3) and a["scored_items"] == 2 and a["overridden"] == 0
    c = got["calls"][0]
    assert c["score"] is None and c["categories"] == [] and c["transcribed"] is False and c["match"] is None


async def test_phrase_and_prefix_queries(env: Env) -> None:
    assert await ids(env, q="card") == ["B", "A"]
    assert await ids(env, q='"credit card"') == ["A"]           # B says "card ... credit", not the phrase
    assert await ids(env, q="credit card") == ["B", "A"]        # bare words: both anywhere in one utterance
    assert await ids(env, q="refunds") == ["A"]
    assert await ids(env, q="refun") == []
    assert await ids(env, q="refun*") == ["A"]
    assert await ids(env, q='"credit ca*"') == ["A"]
    assert await ids(env, q="twice OR alice") == ["B", "A"]
    assert await ids(env, q="card NOT twice") == ["A"]
    assert await ids(env, q="follow-up") == ["B"]               # punctuation splits into a phrase, no syntax error
    assert await ids(env, q="REFUND") == ["A"]
    got = (await env.client.get("/api/qa/search", params={"q": "refund*"}, headers=QA)).json()
    hit = got["calls"][0]
    assert got["terms"] == ["refund*"] and hit["matches"] == 3
    assert hit["match"]["speaker"] == "customer" and hit["match"]["start_s"] == 3.5
    assert "\x02refund\x03" in hit["match"]["snippet"]


@pytest.mark.parametrize("q", ['"credit card', "refund OR", "NOT refund", "(refund", "***", "refund AND", "x" * 501])
async def test_a_bad_query_is_a_clear_400(env: Env, q: str) -> None:
    got = await env.client.get("/api/qa/search", params={"q": q}, headers=QA)
    assert got.status_code in (400, 422), got.text
    detail = got.json()["detail"]
    if got.status_code == 400:
        assert isinstance(detail, str) and len(detail) < 400
        assert "search" in detail or "quote" in detail


async def test_filters(env: Env) -> None:
    assert await ids(env, **{"from": "2024-05-02"}) == ["C", "B"]
    assert await ids(env, to="2024-05-02") == ["B", "A"]                          # a date: through that day
    assert await ids(env, **{"from": "2024-05-01T12:00:00Z", "to": "2024-05-02T10:00:00+00:00"}) == ["B"]
    assert await ids(env, **{"from": "2024-05-02T12:00:00+02:00"}) == ["C", "B"]   # 10:00 UTC
    assert await ids(env, agent="alice") == ["C", "A"]
    assert await ids(env, queue="support") == ["B"]
    assert await ids(env, category="billing") == ["B", "A"]
    assert await ids(env, category=["complaint", "script"]) == ["B", "A"]
    assert await ids(env, category="script", agent="alice", q="refund") == ["A"]
    assert await ids(env, min_score=0.4) == ["B"]                                  # B: 0.5, A: 0.33, C: none
    assert await ids(env, max_score=0.4) == ["A"]
    assert await ids(env, min_score=0, max_score=1) == ["B", "A"]
    assert await ids(env, reviewed="false") == ["C", "B", "A"]
    assert await ids(env, reviewed="true") == []
    page = (await env.client.get("/api/qa/search", params={"limit": 2, "offset": 1}, headers=QA)).json()
    assert page["total"] == 3 and [c["id"] for c in page["calls"]] == ["B", "A"]
    for bad in ({"from": "yesterday"}, {"min_score": 0.8, "max_score": 0.2}):
        got = await env.client.get("/api/qa/search", params=bad, headers=QA)
        assert got.status_code == 400, got.text
    for bad_score in ("2", "nan", "inf", "-1"):
        got = await env.client.get("/api/qa/search", params={"min_score": bad_score}, headers=QA)
        assert got.status_code in (400, 422), (bad_score, got.status_code)


async def test_facets(env: Env) -> None:
    got = (await env.client.get("/api/qa/facets", headers=QA)).json()
    assert got == {"agents": [{"id": "alice", "name": "Alice Smith"}, {"id": "bob", "name": "Bob Jones"}],
                   "queues": ["sales", "support"], "categories": ["billing", "complaint", "script"]}


# -- review and overrides ---------------------------------------------------------------------------------------------
async def test_review_has_everything_the_pane_shows(env: Env) -> None:
    r = (await env.client.get("/api/qa/calls/A", headers=SUP)).json()
    assert r["call"]["caller"] == "+15550101" and r["call"]["agent_name"] == "Alice Smith"
    assert [(x["leg"], x["offset_s"], x["url"]) for x in r["recordings"]] == [
        ("stereo", 0.0, "/api/qa/calls/A/audio?leg=stereo"), ("caller", 0.0, "/api/qa/calls/A/audio?leg=caller"),
        ("agent", 0.5, "/api/qa/calls/A/audio?leg=agent")]          # caller: the calls row's own recording
    assert r["recordings"][0]["pauses"] == [[20.0, 22.5]]
    assert r["transcript"]["engine"] == "pocketsphinx" and r["transcript"]["words"] == 34
    assert [u["start_s"] for u in r["utterances"]] == [0.5, 3.5, 8.5, 12.5]
    assert [u["speaker"] for u in r["utterances"]] == ["agent", "customer", "agent", "customer"]
    assert [h["rule"] for h in r["hits"]] == ["greeting", "refund_request"]
    (card,) = r["scorecards"]
    assert card["scorecard"] == "standard" and card["total"] == pytest.approx(1 / 3)
    assert [(i["item"], i["effective"]) for i in card["items"]] == [("greeting", 1.0), ("disclosure", 0.0),
                                                                   ("empathy", None)]
    assert [(e["speaker"], e["quarter"]) for e in r["emotion"]][:2] == [("agent", 1), ("agent", 2)]
    assert len(r["emotion"]) == 8
    assert (await env.client.get("/api/qa/calls/nope", headers=QA)).status_code == 404


async def test_override_clear_and_audit(env: Env) -> None:
    c = env.client
    url = "/api/qa/calls/A/scores/standard/disclosure"
    got = await c.put(url, json={"score": 1, "comment": "said it at 0:31, the transcript missed it"}, headers=QA)
    assert got.status_code == 200, got.text
    out = got.json()
    assert out["item"]["score"] == 1.0 and out["item"]["auto_score"] == 0.0 and out["item"]["effective"] == 1.0
    assert out["item"]["reviewer"] == "quinn" and out["item"]["comment"].startswith("said it")
    assert out["scorecard_total"] == pytest.approx(1.0) and out["call_score"] == pytest.approx(1.0)
    review = (await c.get("/api/qa/calls/A", headers=QA)).json()
    assert review["call"]["score"] == pytest.approx(1.0) and review["call"]["overridden"] == 1
    assert review["scorecards"][0]["items"][1]["reviewer"] == "quinn"
    assert await ids(Env(env.db, c, env.data_dir), reviewed="true") == ["A"]
    assert await ids(Env(env.db, c, env.data_dir), min_score=0.9) == ["A"]
    # a manual item (no auto score) filled in by a supervisor
    got = await c.put("/api/qa/calls/A/scores/standard/empathy", json={"score": 0.5}, headers=SUP)
    assert got.json()["item"]["reviewer"] == "sv" and got.json()["call_score"] == pytest.approx((1 + 2 + 0.5) / 4)
    # clear: back to the rules' score
    got = await c.put(url, json={"score": None, "comment": ""}, headers=QA)
    assert got.json()["item"]["score"] is None and got.json()["item"]["effective"] == 0.0
    assert got.json()["item"]["reviewer"] == ""
    async with env.db.conn.execute("SELECT agent, queue, data FROM events WHERE event = 'QA_SCORE' ORDER BY id") as cur:
        events = [(r[0], r[1], json.loads(r[2])) for r in await cur.fetchall()]
    assert [(a, q, d["item"], d["previous"], d["score"], d["reviewer"]) for a, q, d in events] == [
        ("alice", "sales", "disclosure", None, 1.0, "quinn"), ("alice", "sales", "empathy", None, 0.5, "sv"),
        ("alice", "sales", "disclosure", 1.0, None, "quinn")]


async def test_override_errors(env: Env) -> None:
    c = env.client
    assert (await c.put("/api/qa/calls/A/scores/standard/nope", json={"score": 1}, headers=QA)).status_code == 404
    assert (await c.put("/api/qa/calls/Z/scores/standard/greeting", json={"score": 1}, headers=QA)).status_code == 404
    for body in ({"score": 1.5}, {"score": -0.1}, {"comment": "no score key"}, {"score": 0.5, "comment": "x" * 2001}):
        got = await c.put("/api/qa/calls/A/scores/standard/greeting", json=body, headers=QA)
        assert got.status_code == 422, body
    got = await c.put("/api/qa/calls/A/scores/standard/greeting", content=b'{"score": NaN}',
                      headers={**QA, "Content-Type": "application/json"})
    assert got.status_code == 422
    review = (await c.get("/api/qa/calls/A", headers=QA)).json()
    assert review["call"]["overridden"] == 0                     # nothing changed by the refused writes


async def test_agent_history(env: Env) -> None:
    await add_call(env.db, "D", started_at=iso(4), seconds=10)
    await add_score(env.db, "D", "standard", "greeting", 1, 1.0)
    await add_score(env.db, "D", "standard", "disclosure", 2, 1.0)
    await add_score(env.db, "D", "soft", "tone", 1, 0.5)
    got = (await env.client.get("/api/qa/agents/alice/scores", headers=QA)).json()
    assert got["name"] == "Alice Smith"
    assert [(x["call_id"], x["scorecards"]) for x in got["calls"]] == [
        ("D", {"standard": 1.0, "soft": 0.5}), ("A", {"standard": pytest.approx(1 / 3)})]
    assert got["calls"][0]["score"] == pytest.approx(3.5 / 4)
    assert got["mean"] == pytest.approx((3.5 / 4 + 1 / 3) / 2)
    items = {(i["scorecard"], i["item"]): (i["mean"], i["scored"]) for i in got["items"]}
    assert items[("standard", "disclosure")] == (0.5, 2) and items[("standard", "empathy")] == (None, 0)
    one = (await env.client.get("/api/qa/agents/alice/scores", params={"limit": 1}, headers=QA)).json()
    assert [x["call_id"] for x in one["calls"]] == ["D"]
    early = (await env.client.get("/api/qa/agents/alice/scores", params={"to": "2024-05-02"}, headers=QA)).json()
    assert [x["call_id"] for x in early["calls"]] == ["A"]
    assert (await env.client.get("/api/qa/agents/zed/scores", headers=QA)).status_code == 404
    assert (await env.client.get("/api/qa/agents/bob/scores", params={"from": "x"}, headers=QA)).status_code == 400


async def test_vtt(env: Env) -> None:
    got = await env.client.get("/api/qa/calls/A/transcript.vtt", headers=QA)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/vtt")
    lines = got.text.splitlines()
    assert lines[0] == "WEBVTT" and "00:00:03.500 --> 00:00:08.000" in lines
    assert "<v customer>i want a refund for the charge on my credit card" in lines
    assert (await env.client.get("/api/qa/calls/C/transcript.vtt", headers=QA)).status_code == 404
    assert (await env.client.get("/api/qa/calls/Z/transcript.vtt", headers=QA)).status_code == 404


# -- audio ------------------------------------------------------------------------------------------------------------
async def test_audio_whole_and_ranges(env: Env) -> None:
    data = (env.data_dir / "recordings" / "A-stereo.wav").read_bytes()
    c = env.client
    whole = await c.get("/api/qa/calls/A/audio", headers=QA)            # default: the stereo mix
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "audio/wav" and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-disposition"].startswith("inline")
    part = await c.get("/api/qa/calls/A/audio?leg=stereo", headers={**QA, "Range": "bytes=44-143"})
    assert part.status_code == 206 and part.content == data[44:144]
    assert part.headers["content-range"] == f"bytes 44-143/{len(data)}"
    tail = await c.get("/api/qa/calls/A/audio?leg=stereo", headers={**QA, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    rest = await c.get("/api/qa/calls/A/audio?leg=stereo", headers={**QA, "Range": f"bytes={len(data) - 5}-"})
    assert rest.content == data[-5:]
    beyond = await c.get("/api/qa/calls/A/audio?leg=stereo", headers={**QA, "Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416
    caller = await c.get("/api/qa/calls/A/audio?leg=caller", headers=QA)
    assert caller.content == (env.data_dir / "recordings" / "A.wav").read_bytes()


async def test_audio_404_410_and_path_safety(env: Env) -> None:
    c = env.client
    missing = await c.get("/api/qa/calls/A/audio?leg=redacted", headers=QA)
    assert missing.status_code == 404 and "no redacted recording (it has: stereo, caller, agent)" in missing.text
    assert (await c.get("/api/qa/calls/Z/audio", headers=QA)).status_code == 404
    assert (await c.get("/api/qa/calls/B/audio", headers=QA)).status_code == 404
    assert (await c.get("/api/qa/calls/A/audio?leg=../../etc", headers=QA)).status_code == 422
    gone = await c.get("/api/qa/calls/A/audio?leg=agent", headers=QA)     # row present, file never written
    assert gone.status_code == 410 and "gone from the recordings folder" in gone.text
    secret = env.data_dir / "callcenter.db"
    outside = env.data_dir / "outside.wav"
    write_wav(outside)
    (env.data_dir / "recordings" / "link.wav").symlink_to(outside)
    (env.data_dir / "recordings" / "dir.wav").mkdir()
    for i, path in enumerate(("recordings/../outside.wav", str(outside), "recordings/link.wav", "recordings/dir.wav",
                              "callcenter.db", str(secret), "recordings/./../callcenter.db")):
        await add_call(env.db, f"P{i}", started_at=iso(5), seconds=5)
        await add_recording(env.db, f"P{i}", "stereo", path, 1)
        got = await c.get(f"/api/qa/calls/P{i}/audio", headers=QA)
        assert got.status_code == 410, (path, got.status_code)


# -- the page ---------------------------------------------------------------------------------------------------------
async def test_page_and_assets(env: Env) -> None:
    c = env.client
    page = await c.get("/qa")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/static/qa/qa.js">' in page.text
    for path in ("/static/qa/qa.js", "/static/api.js", "/static/qa/qa.css", "/static/common.css"):
        got = await c.get(path)
        assert got.status_code == 200 and got.headers["cache-control"] == "no-cache", path
    assert "javascript" in (await c.get("/static/api.js")).headers["content-type"]
    assert (await c.get("/qa/", follow_redirects=False)).headers["location"] == "/qa"
    for bad in ("/static/../pages.py", "/static/%2e%2e/pages.py", "/static/nope.js"):
        assert (await c.get(bad)).status_code == 404, bad
    js = (await c.get("/static/qa/qa.js")).text + (await c.get("/static/api.js")).text
    assert "token=" not in js and "sessionStorage" in js                 # the token never rides in a URL


# -- the query language ------------------------------------------------------------------------------------------------
def test_fts_query_translation() -> None:
    assert fts_query("refund") == '"refund"'
    assert fts_query('"credit card" cancel*') == '"credit card" "cancel" *'
    assert fts_query("follow-up O'Brien") == '"follow up" "O Brien"'
    assert fts_query("(a OR b) NOT c") == '( "a" OR "b" ) NOT "c"'
    assert search_terms('"credit card" refund* OR x') == ["credit card", "refund*", "x"]
    for bad in ('"open', "", "  ", "*", "- -", "OR"):
        with pytest.raises(BadSearch):
            fts_query(bad)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*'ab "*()-:^+.{}é', " OR ", " NOT ", " AND ", "NEAR", "near"]), max_size=12))
def test_any_query_is_an_answer_or_a_bad_search(pieces: list[str]) -> None:
    """Whatever is typed, the search either runs or says why not (BadSearch -> 400); it never errors otherwise."""
    text = "".join(pieces)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(text)")
    conn.execute("INSERT INTO f VALUES ('a b near or not')")
    try:
        expr = fts_query(text)
    except BadSearch:
        return
    try:
        conn.execute("SELECT rowid FROM f WHERE f MATCH ?", (expr,)).fetchall()
    except sqlite3.OperationalError as exc:
        assert _bad_fts(exc), (text, expr, exc)
