"""routing/config.py (dicts <-> specs, every validation error names its field) and the ACD's tables
(callcenter/storage/acd.py) on a real SQLite database in a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.exceptions import UnknownAgent, UnknownQueue
from callcenter.storage.acd import (
    AgentRepo,
    AlreadyExists,
    CallbackRepo,
    CsvInvalid,
    CustomerRepo,
    QueueRepo,
    normalize_phone,
    requested_state,
)
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo
from routing.config import (
    agent_from_dict,
    agent_to_dict,
    format_skills,
    parse_skills,
    queue_from_dict,
    queue_to_dict,
)
from routing.exceptions import ConfigInvalid, RoutingError
from routing.model import STRATEGIES, AgentSpec, Contact, EscalationStep, QueueSpec


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    d = await Database.open(tmp_path)
    yield d
    await d.close()


def problems(fn: Callable[[dict[str, Any]], object], d: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigInvalid) as info:
        fn(d)
    assert isinstance(info.value, RoutingError)
    return info.value.problems


# -- routing/config.py ------------------------------------------------------------------------------------

def test_defaults_match_the_model() -> None:
    assert queue_from_dict({"name": "sales"}) == QueueSpec(name="sales")
    assert agent_from_dict({"id": "alice"}) == AgentSpec(id="alice")


def test_queue_fields_are_read() -> None:
    q = queue_from_dict({
        "name": "support", "skills": "support:3,english", "strategy": "ring-all", "priority": 5,
        "ring_timeout_s": 20, "max_wait_s": 300, "max_length": 10, "overflow": "voicemail:support",
        "wrap_up_s": None, "callback": False,
        "escalation": [{"after_s": 60, "add_queues": "billing,sales"}, {"after_s": 30, "skills": {"support": 1}}],
    })
    assert q.skills == {"support": 3, "english": 1}
    assert (q.strategy, q.priority, q.ring_timeout_s, q.max_wait_s, q.max_length) == ("ring-all", 5, 20.0, 300.0, 10)
    assert q.overflow == "voicemail:support" and q.callback is False and q.wrap_up_s is None
    assert q.escalation == (EscalationStep(30.0, {"support": 1}, ()),            # sorted by after_s
                            EscalationStep(60.0, None, ("billing", "sales")))


def test_unknown_strategy_suggests_the_nearest() -> None:
    (p,) = problems(queue_from_dict, {"name": "q", "strategy": "longest_idle"})
    assert p.startswith("strategy: unknown strategy 'longest_idle' (did you mean 'longest-idle'?)")
    (p,) = problems(queue_from_dict, {"name": "q", "strategy": "roundrobin"})
    assert "did you mean 'round-robin'?" in p
    (p,) = problems(queue_from_dict, {"name": "q", "strategy": "xyz"})
    assert "did you mean" not in p and "one of: ring-all" in p


def test_every_bad_field_is_named_at_once() -> None:
    got = problems(queue_from_dict, {
        "name": "q", "skills": {"support": 6, "english": 0}, "ring_timeout_s": -1, "max_wait_s": -0.5,
        "max_length": -1, "overflow": "queue:q", "strategi": "ring-all", "callback": "yes",
        "service_level_s": 0, "announce_every_s": float("nan"),
    })
    assert "skills: support: proficiency 6 is outside 1..5" in got
    assert "skills: english: proficiency 0 is outside 1..5" in got
    assert "ring_timeout_s: -1 is negative (times are seconds, 0 or more)" in got
    assert "max_wait_s: -0.5 is negative (times are seconds, 0 or more)" in got
    assert "max_length: -1 is below the minimum 0" in got
    assert "overflow: queue 'q' cannot overflow into itself" in got
    assert "strategi: unknown field (did you mean 'strategy'?)" in got
    assert any(p.startswith("callback: expected true or false") for p in got)
    assert "service_level_s: must be more than 0" in got
    assert "announce_every_s: nan is not a finite number" in got
    assert len(got) == 10


@pytest.mark.parametrize("target", ["", "callback", "queue:billing", "voicemail:sales-box"])
def test_overflow_targets(target: str) -> None:
    assert queue_from_dict({"name": "q", "overflow": target}).overflow == target


@pytest.mark.parametrize(("target", "message"), [
    ("queue:", "is not a valid queue name"),
    ("voicemail:a b", "is not a valid mailbox"),
    ("voicemal:x", "did you mean 'voicemail'?"),
    ("callbak", "is not an overflow target"),
    ("sip:x@y", "is not an overflow target"),
])
def test_bad_overflow_targets(target: str, message: str) -> None:
    (p,) = problems(queue_from_dict, {"name": "q", "overflow": target})
    assert p.startswith("overflow: ") and message in p, p


def test_escalation_steps_are_checked_each_by_index() -> None:
    got = problems(queue_from_dict, {"name": "q", "escalation": [
        {"after_s": 30, "skills": {"x": 9}},
        {"skills": {"x": 1}},
        {"after_s": 10},
        {"after_s": -5, "add_queues": ["ok", "not ok"], "colour": 1},
        "nope",
    ]})
    assert "escalation[0].skills: x: proficiency 9 is outside 1..5" in got
    assert "escalation[1].after_s: required (seconds of waiting before this step applies)" in got
    assert "escalation[2]: changes nothing: give skills, add_queues or both" in got
    assert "escalation[3].after_s: -5 is negative (times are seconds, 0 or more)" in got
    assert "escalation[3].add_queues: 'not ok' is not a valid queue name" in got
    assert "escalation[3].colour: unknown field" in got
    assert "escalation[4]: expected a mapping of fields, got str" in got
    assert problems(queue_from_dict, {"name": "q", "escalation": 5}) == [
        "escalation: expected a list of {after_s, skills, add_queues}, got int 5"]


def test_agent_validation() -> None:
    got = problems(agent_from_dict, {"id": "bad id", "uri": "http://x", "skills": {"a": 7}, "wrap_up_s": -1,
                                     "max_offers": 0, "weight": True, "nmae": "x"})
    assert got[0] == "nmae: unknown field (did you mean 'name'?)"
    assert any(p.startswith("id: 'bad id' is not a valid agent id") for p in got)
    assert "uri: 'http://x' is not a SIP URI (e.g. sip:alice@10.0.0.5:5060) or \"desk\" (the browser desk)" in got
    assert "skills: a: proficiency 7 is outside 1..5" in got
    assert "wrap_up_s: -1 is negative (times are seconds, 0 or more)" in got
    assert "max_offers: 0 is below the minimum 1" in got
    assert "weight: expected a whole number, got bool True" in got
    assert problems(agent_from_dict, {"name": "no id"}) == ["id: required"]
    assert problems(queue_from_dict, {"name": "stats"})[0].startswith("name: 'stats' is reserved")


def test_parse_and_format_skills() -> None:
    assert parse_skills("support:3, english , billing:5") == {"support": 3, "english": 1, "billing": 5}
    assert format_skills({"b": 2, "a": 1}) == "a:1,b:2"
    with pytest.raises(ConfigInvalid) as info:
        parse_skills("support:x,english:9")
    assert info.value.problems == ["skills: 'support:x': the proficiency after ':' must be a whole number 1..5",
                                   "skills: english: proficiency 9 is outside 1..5"]


_names = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
_secs = st.floats(min_value=0, max_value=10_000, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(name=_names, skills=st.dictionaries(_names, st.integers(1, 5), max_size=4),
       strategy=st.sampled_from(STRATEGIES), wait=_secs, ring=st.floats(0.5, 600), wrap=st.none() | _secs,
       steps=st.lists(st.tuples(st.floats(1, 5000), st.none() | st.dictionaries(_names, st.integers(1, 5)),
                                st.lists(_names, unique=True, max_size=3)), max_size=3),
       overflow=st.sampled_from(["", "callback", "queue:zz-other", "voicemail:box"]))
def test_queue_round_trip(name: str, skills: dict[str, int], strategy: str, wait: float, ring: float,
                          wrap: float | None, steps: list[Any], overflow: str) -> None:
    escalation = [{"after_s": a, "skills": s, "add_queues": q} for a, s, q in steps if s is not None or q]
    spec = queue_from_dict({"name": name, "skills": skills, "strategy": strategy, "max_wait_s": wait,
                            "ring_timeout_s": ring, "wrap_up_s": wrap, "escalation": escalation,
                            "overflow": overflow})
    assert queue_from_dict(queue_to_dict(spec)) == spec
    assert [s.after_s for s in spec.escalation] == sorted(s.after_s for s in spec.escalation)


@settings(max_examples=40, deadline=None)
@given(agent_id=st.from_regex(r"[a-z0-9][a-z0-9_.@-]{0,10}", fullmatch=True),
       skills=st.dictionaries(_names, st.integers(1, 5), max_size=4), wrap=_secs,
       offers=st.integers(1, 100), weight=st.integers(1, 1000), order=st.integers(-50, 50))
def test_agent_round_trip(agent_id: str, skills: dict[str, int], wrap: float, offers: int, weight: int,
                          order: int) -> None:
    spec = agent_from_dict({"id": agent_id, "skills": skills, "wrap_up_s": wrap, "max_offers": offers,
                            "weight": weight, "order": order, "uri": f"sip:{agent_id}@10.0.0.1", "user": "u"})
    assert agent_from_dict(agent_to_dict(spec)) == spec


# -- agents and queues ------------------------------------------------------------------------------------

async def test_agents_crud_and_requested_state(db: Database) -> None:
    repo = AgentRepo(db)
    spec = agent_from_dict({"id": "alice", "name": "Alice", "skills": {"support": 3}, "uri": "sip:alice@10.0.0.5",
                            "order": 2, "user": "alice-user"})
    rec = await repo.add(spec)
    assert rec.spec == spec and rec.state == "logged_out" and rec.reason == ""
    with pytest.raises(AlreadyExists):
        await repo.add(spec)
    await repo.add(AgentSpec(id="bob"))
    rec = await repo.set_state("alice", "break", "lunch")
    assert (rec.state, rec.reason) == ("break", "lunch")
    changed = await repo.change("alice", {"skills": {"support": 5, "billing": 1}, "wrap_up_s": 3})
    assert changed.spec.skills == {"support": 5, "billing": 1} and changed.spec.wrap_up_s == 3.0
    assert changed.spec.name == "Alice" and changed.spec.order == 2          # the other fields stay
    assert (changed.state, changed.reason) == ("break", "lunch")             # ... and the requested state
    with pytest.raises(ConfigInvalid) as info:
        await repo.change("alice", {"max_offers": 0})
    assert info.value.problems == ["max_offers: 0 is below the minimum 1"]
    assert (await repo.get("alice")).spec.max_offers == 1  # type: ignore[union-attr]
    with pytest.raises(ConfigInvalid):
        await repo.change("alice", {"id": "carol"})
    with pytest.raises(UnknownAgent):
        await repo.change("nobody", {"name": "x"})
    with pytest.raises(UnknownAgent):
        await repo.set_state("nobody", "available")
    assert [a.spec.id for a in await repo.all()] == ["alice", "bob"]
    assert [a.spec.id for a in await repo.all(user="alice-user")] == ["alice"]
    assert (await repo.delete("bob")).spec.id == "bob"
    assert await repo.get("bob") is None
    with pytest.raises(UnknownAgent):
        await repo.delete("bob")


def test_requested_state_transitions() -> None:
    assert requested_state("login", "logged_out") == ("available", "")
    assert requested_state("pause", "available", "lunch") == ("break", "lunch")
    assert requested_state("pause", "available") == ("break", "break")
    assert requested_state("resume", "break") == ("available", "")
    assert requested_state("resume", "logged_out") == ("logged_out", "")     # resuming does not log in
    assert requested_state("logout", "break") == ("logged_out", "")
    with pytest.raises(ValueError, match="not a reason code"):
        requested_state("pause", "available", "two words")
    with pytest.raises(ValueError, match="unknown action"):
        requested_state("dance", "available")


async def test_queues_crud(db: Database) -> None:
    repo = QueueRepo(db)
    spec = queue_from_dict({"name": "support", "skills": {"support": 2}, "escalation": [
        {"after_s": 30, "skills": {"support": 1}, "add_queues": ["billing"]}]})
    assert (await repo.add(spec)).spec == spec
    with pytest.raises(AlreadyExists):
        await repo.add(spec)
    rec = await repo.change("support", {"strategy": "ring-all", "max_wait_s": 120})
    assert rec.spec.strategy == "ring-all" and rec.spec.escalation == spec.escalation
    with pytest.raises(ConfigInvalid):
        await repo.change("support", {"strategy": "ringall"})
    assert (await repo.get("support")).spec.strategy == "ring-all"  # type: ignore[union-attr]
    with pytest.raises(UnknownQueue):
        await repo.change("nope", {})
    assert [q.spec.name for q in await repo.all()] == ["support"]
    await repo.delete("support")
    assert await repo.all() == []


# -- customers --------------------------------------------------------------------------------------------

CSV = """phone,name,vip_tier,language,last_agent,notes
+15550100,Ada Lovelace,2,en,alice,likes tea
"+1 (555) 010-0101",Bob,0,en-US,,"two
lines"
+15550102,Carol,,ko,,
"""


async def test_import_and_lookup(db: Database) -> None:
    repo = CustomerRepo(db)
    report = await repo.import_csv(CSV, file="crm.csv")
    assert (report.inserted, report.updated, report.skipped) == (3, 0, [])
    bob = await repo.get("+15550100101")
    assert bob is not None and bob["name"] == "Bob" and bob["notes"] == "two\nlines" and bob["language"] == "en-US"
    assert (await repo.get("+1 555 010 0101")) == bob                                  # looked up the same way
    carol = await repo.get("+15550102")
    assert carol is not None and carol["vip_tier"] == 0

    # Upsert by phone; columns the file leaves out keep their values.
    report = await repo.import_csv("phone,vip_tier\n+15550100,5\n+15550199,1\n")
    assert (report.inserted, report.updated) == (1, 1)
    ada = await repo.get("+15550100")
    assert ada is not None and (ada["vip_tier"], ada["name"], ada["notes"], ada["last_agent"]) == \
        (5, "Ada Lovelace", "likes tea", "alice")


async def test_a_bad_file_imports_nothing_and_reports_every_line(db: Database) -> None:
    repo = CustomerRepo(db)
    text = ("phone,name,vip_tier,language\n"
            "+15550100,Ada,1,en\n"
            ",Nobody,0,en\n"                   # line 3: no phone
            "+15550101,Bob,12,en\n"            # line 4: tier out of range
            "+15550102,Carol,x,english!\n"     # line 5: two problems
            "+15550100,Ada again,1,en\n"       # line 6: duplicate
            "+15550103,Dan\n"                  # line 7: wrong field count
            "\n"
            "+15550104,Eve,0,fr\n")
    with pytest.raises(CsvInvalid) as info:
        await repo.import_csv(text, file="crm.csv")
    assert info.value.problems == [
        "crm.csv:3: phone: required",
        "crm.csv:4: vip_tier: 12 is outside 0..9",
        "crm.csv:5: vip_tier: 'x' is not a whole number 0..9",
        "crm.csv:5: language: 'english!' is not a language tag (e.g. en, en-US, ko)",
        "crm.csv:6: phone: +15550100 is also on line 2",
        "crm.csv:7: expected 4 fields (phone,name,vip_tier,language), got 2",
    ]
    assert "nothing was imported" in str(info.value)
    assert await repo.get("+15550100") is None and await repo.get("+15550104") is None

    report = await repo.import_csv(text, file="crm.csv", skip_bad=True)
    assert (report.inserted, report.updated) == (2, 0)
    assert report.skipped == info.value.problems
    assert await repo.get("+15550104") is not None


@pytest.mark.parametrize(("text", "message"), [
    ("", "crm.csv:1: the file is empty"),
    ("name,vip_tier\nAda,1\n", "crm.csv:1: no 'phone' column"),
    ("phone,nmae\n1,x\n", "crm.csv:1: unknown column 'nmae' (did you mean 'name'?)"),
    ("phone,name,name\n1,x,y\n", "crm.csv:1: column 'name' appears twice"),
])
async def test_a_bad_header_is_refused_even_with_skip_bad(db: Database, text: str, message: str) -> None:
    with pytest.raises(CsvInvalid) as info:
        await CustomerRepo(db).import_csv(text, file="crm.csv", skip_bad=True)
    assert info.value.problems[0].startswith(message), info.value.problems


async def test_a_broken_quote_is_reported_with_its_line(db: Database) -> None:
    text = 'phone,name\n+1,ok\n+2,"unterminated\n+3,x\n'
    with pytest.raises(CsvInvalid) as info:
        await CustomerRepo(db).import_csv(text, file="f.csv")
    assert info.value.problems[0].startswith("f.csv:3: ") and "not read" in info.value.problems[0]


def test_normalize_phone() -> None:
    assert normalize_phone(" +1 (555) 010-0100 ") == "+15550100100"
    assert normalize_phone("alice.smith") == "alice.smith"        # a SIP user, not a number: kept
    assert normalize_phone("1000") == "1000"


async def test_lookup_includes_the_last_five_calls(db: Database) -> None:
    customers, calls = CustomerRepo(db), CallRepo(db)
    await customers.import_csv("phone,name,vip_tier\n+15550100,Ada,3\n")
    for i in range(7):
        await calls.create(f"call{i}", f"sip{i}", "+15550100", "1000", "127.0.0.1", "main")
        await calls.update(f"call{i}", started_at=f"2024-01-0{i + 1}T10:00:00.000+00:00", queue="support",
                           agent="alice" if i % 2 else "", disposition="completed")
    await calls.create("other", "sipx", "+15550999", "1000", "127.0.0.1", "main")
    got = await customers.lookup("+15550100")
    assert got is not None and got["known"] and got["name"] == "Ada" and got["vip_tier"] == 3
    assert [c["id"] for c in got["calls"]] == ["call6", "call5", "call4", "call3", "call2"]
    assert got["calls"][1]["agent"] == "alice" and got["calls"][0]["queue"] == "support"

    stranger = await customers.lookup("+15550999")          # has called, has no profile
    assert stranger is not None and not stranger["known"] and [c["id"] for c in stranger["calls"]] == ["other"]
    assert await customers.lookup("+10000000") is None

    await customers.set_last_agent("+15550100", "bob")
    await customers.set_last_agent("+15550777", "bob")
    assert (await customers.get("+15550100"))["last_agent"] == "bob"  # type: ignore[index]
    assert (await customers.get("+15550777"))["last_agent"] == "bob"  # type: ignore[index]


# -- callbacks --------------------------------------------------------------------------------------------

async def test_callbacks_keep_their_place_across_a_reopen(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    repo = CallbackRepo(db)
    late = Contact(id="c2", queue="support", entered_at=2000.5, skills={"support": 2}, priority=5, vip_tier=1,
                   caller="+15550102", callback=True)
    early = Contact(id="c1", queue="support", entered_at=1000.25, caller="+15550101", callback=True)
    await repo.add(late)
    await repo.add(early, number="+15550111")
    with pytest.raises(AlreadyExists):
        await repo.add(early)
    await repo.dialling("c1", agent="alice", result_call="out1", attempts=1)
    await repo.retry("c1", attempts=1, not_before=3000.0)
    await db.close()

    db = await Database.open(tmp_path)                          # a restart
    try:
        repo = CallbackRepo(db)
        open_ = await repo.open()
        assert [r.call_id for r in open_] == ["c1", "c2"]      # oldest place in line first
        c1 = open_[0].contact()
        assert (c1.entered_at, c1.caller, c1.attempts, c1.not_before, c1.callback) == \
            (1000.25, "+15550111", 1, 3000.0, True)
        assert open_[1].contact() == late
        await repo.done("c1")
        await repo.failed("c2", attempts=3)
        assert await repo.open() == []
        got = await repo.get("c2")
        assert got is not None and (got.state, got.attempts) == ("failed", 3)
    finally:
        await db.close()
