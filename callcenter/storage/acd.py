"""The ACD's tables (migration 004): agents, queues, customers, callback requests. SQL stays here.

* ``AgentRepo`` / ``QueueRepo``: the configuration the live ACD loads (``routing.model`` specs,
  checked by ``routing.config``), plus each agent's *requested* state (logged_out, available,
  break + reason) so that a restart restores who was logged in.
* ``CustomerRepo``: phone number -> profile; ``import_csv`` checks every row before writing any
  (problems as ``FILE:LINE: message``) and upserts all rows in one statement, so an import is
  all or nothing; ``lookup`` adds the number's last five calls.
* ``CallbackRepo``: "press 1 to be called back" requests, which keep the caller's place in line
  (``entered_at``) across restarts.

Every change is one statement through the group-commit writer (db.py); reads flush first.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from routing.config import (
    AGENT_ID_RE,
    agent_from_dict,
    agent_to_dict,
    did_you_mean,
    queue_from_dict,
    queue_to_dict,
)
from routing.model import AgentSpec, Contact, QueueSpec

from ..exceptions import CallCenterError, UnknownAgent, UnknownQueue
from .db import Database, utcnow

RequestedState = Literal["logged_out", "available", "break"]
REQUESTED_STATES: tuple[RequestedState, ...] = ("logged_out", "available", "break")
CSV_COLUMNS = ("phone", "name", "vip_tier", "language", "last_agent", "notes")
MAX_CSV_LINES = 1_000_000
PHONE_RE = re.compile(r"^[A-Za-z0-9+*#_.@-]{1,64}$")
_PHONE_FORMATTING = re.compile(r"[\s().-]")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
REASON_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class AcdStoreError(CallCenterError):
    """An ACD storage operation cannot be done (see the subclasses)."""


class AlreadyExists(AcdStoreError):
    """An agent or queue with that id/name, or a callback for that call, exists already."""


class CsvInvalid(AcdStoreError):
    """A customers CSV has bad lines: ``problems`` lists every one as ``FILE:LINE: message``."""

    def __init__(self, problems: list[str], imported: bool = False) -> None:
        n = len(problems)
        super().__init__(f"{n} bad line{'s' if n != 1 else ''}" + ("" if imported else "; nothing was imported"))
        self.problems = problems


def normalize_phone(text: str) -> str:
    """A number as the caller's number arrives: formatting (spaces, dashes, dots, parentheses) removed
    from phone-like text ("+1 (555) 010-0100" -> "+15550100100"); other text (a SIP user) kept."""
    text = text.strip()
    bare = _PHONE_FORMATTING.sub("", text)
    return bare if re.fullmatch(r"\+?[0-9*#]+", bare) else text


# -- agents ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AgentRecord:
    spec: AgentSpec
    state: RequestedState       # what the agent last asked for (the live state is the ACD's)
    reason: str                 # the break reason
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {**agent_to_dict(self.spec), "state": self.state, "reason": self.reason,
                "created_at": self.created_at, "updated_at": self.updated_at}


class AgentRepo:
    COLUMNS = "id, name, team, uri, skills, wrap_up_s, max_offers, weight, ord, user_name, state, reason, " \
              "created_at, updated_at"

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _record(r: Any) -> AgentRecord:
        spec = AgentSpec(id=r["id"], name=r["name"], team=r["team"], uri=r["uri"], skills=json.loads(r["skills"]),
                         wrap_up_s=float(r["wrap_up_s"]), max_offers=int(r["max_offers"]), weight=int(r["weight"]),
                         order=int(r["ord"]), user=r["user_name"])
        return AgentRecord(spec, r["state"], r["reason"], r["created_at"], r["updated_at"])

    @staticmethod
    def _values(spec: AgentSpec) -> tuple[Any, ...]:
        return (spec.name, spec.team, spec.uri, json.dumps(dict(spec.skills), sort_keys=True), spec.wrap_up_s,
                spec.max_offers, spec.weight, spec.order, spec.user)

    async def add(self, spec: AgentSpec) -> AgentRecord:
        """Store a new agent (logged out); AlreadyExists if the id is taken."""
        now = utcnow()
        try:
            await self.db.write(
                "INSERT INTO agents (name, team, uri, skills, wrap_up_s, max_offers, weight, ord, user_name, id, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*self._values(spec), spec.id, now, now))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"agent {spec.id!r} exists already") from None
        return await self._must(spec.id)

    async def update(self, spec: AgentSpec) -> AgentRecord:
        """Replace an agent's configuration (its requested state is kept); UnknownAgent if none."""
        await self.db.write(
            "UPDATE agents SET name = ?, team = ?, uri = ?, skills = ?, wrap_up_s = ?, max_offers = ?, weight = ?, "
            "ord = ?, user_name = ?, updated_at = ? WHERE id = ?", (*self._values(spec), utcnow(), spec.id))
        return await self._must(spec.id)

    async def change(self, agent_id: str, changes: Mapping[str, Any]) -> AgentRecord:
        """Set the given fields (routing.config names), keep the others; ConfigInvalid, UnknownAgent."""
        old = await self._must(agent_id)
        if "id" in changes and changes["id"] != agent_id:
            from routing.exceptions import ConfigInvalid

            raise ConfigInvalid(f"agent {agent_id}", ["id: an agent's id cannot be changed (add a new agent)"])
        return await self.update(agent_from_dict({**agent_to_dict(old.spec), **changes}))

    async def get(self, agent_id: str) -> AgentRecord | None:
        await self.db.flush()
        async with self.db.conn.execute(f"SELECT {self.COLUMNS} FROM agents WHERE id = ?", (agent_id,)) as cur:
            row = await cur.fetchone()
        return self._record(row) if row else None

    async def _must(self, agent_id: str) -> AgentRecord:
        got = await self.get(agent_id)
        if got is None:
            raise UnknownAgent(f"no agent {agent_id!r} is configured")
        return got

    async def all(self, *, user: str | None = None) -> list[AgentRecord]:
        """Every agent by id (only those of API user ``user`` if given)."""
        await self.db.flush()
        where, params = ("WHERE user_name = ?", (user,)) if user is not None else ("", ())
        async with self.db.conn.execute(f"SELECT {self.COLUMNS} FROM agents {where} ORDER BY id", params) as cur:
            return [self._record(r) for r in await cur.fetchall()]

    async def delete(self, agent_id: str) -> AgentRecord:
        """Remove an agent; returns what it was. UnknownAgent if none."""
        old = await self._must(agent_id)
        await self.db.write("DELETE FROM agents WHERE id = ?", (agent_id,))
        return old

    async def set_state(self, agent_id: str, state: RequestedState, reason: str = "") -> AgentRecord:
        """Record the state the agent asked for (restored at start); the reason only with ``break``."""
        if state not in REQUESTED_STATES:
            raise ValueError(f"requested state {state!r} is not one of {', '.join(REQUESTED_STATES)}")
        await self.db.write("UPDATE agents SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                            (state, reason if state == "break" else "", utcnow(), agent_id))
        return await self._must(agent_id)


def requested_state(action: str, current: RequestedState, reason: str = "") -> tuple[RequestedState, str]:
    """The state to record for a login / logout / pause / resume request (resume of a logged-out agent: none)."""
    if action == "login":
        return "available", ""
    if action == "logout":
        return "logged_out", ""
    if action == "pause":
        if reason and not REASON_RE.match(reason):
            raise ValueError(f"reason {reason!r} is not a reason code (letters, digits, '_', '.', '-'; at most 64)")
        return "break", reason or "break"
    if action == "resume":
        return ("logged_out", "") if current == "logged_out" else ("available", "")
    raise ValueError(f"unknown action {action!r} (login, logout, pause or resume)")


# -- queues ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QueueRecord:
    spec: QueueSpec
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {**queue_to_dict(self.spec), "created_at": self.created_at, "updated_at": self.updated_at}


class QueueRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _config(spec: QueueSpec) -> str:
        d = queue_to_dict(spec)
        del d["name"]
        return json.dumps(d, sort_keys=True)

    @staticmethod
    def _record(r: Any) -> QueueRecord:
        return QueueRecord(queue_from_dict({**json.loads(r["config"]), "name": r["name"]}), r["created_at"],
                           r["updated_at"])

    async def add(self, spec: QueueSpec) -> QueueRecord:
        now = utcnow()
        try:
            await self.db.write("INSERT INTO queues (name, config, created_at, updated_at) VALUES (?, ?, ?, ?)",
                                (spec.name, self._config(spec), now, now))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"queue {spec.name!r} exists already") from None
        return await self._must(spec.name)

    async def update(self, spec: QueueSpec) -> QueueRecord:
        await self.db.write("UPDATE queues SET config = ?, updated_at = ? WHERE name = ?",
                            (self._config(spec), utcnow(), spec.name))
        return await self._must(spec.name)

    async def change(self, name: str, changes: Mapping[str, Any]) -> QueueRecord:
        """Set the given fields, keep the others; ConfigInvalid, UnknownQueue."""
        old = await self._must(name)
        if "name" in changes and changes["name"] != name:
            from routing.exceptions import ConfigInvalid

            raise ConfigInvalid(f"queue {name}", ["name: a queue's name cannot be changed (add a new queue)"])
        return await self.update(queue_from_dict({**queue_to_dict(old.spec), **changes}))

    async def get(self, name: str) -> QueueRecord | None:
        await self.db.flush()
        async with self.db.conn.execute("SELECT name, config, created_at, updated_at FROM queues WHERE name = ?",
                                        (name,)) as cur:
            row = await cur.fetchone()
        return self._record(row) if row else None

    async def _must(self, name: str) -> QueueRecord:
        got = await self.get(name)
        if got is None:
            raise UnknownQueue(f"no queue {name!r} is configured")
        return got

    async def all(self) -> list[QueueRecord]:
        await self.db.flush()
        async with self.db.conn.execute("SELECT name, config, created_at, updated_at FROM queues ORDER BY name") as cur:
            return [self._record(r) for r in await cur.fetchall()]

    async def delete(self, name: str) -> QueueRecord:
        old = await self._must(name)
        await self.db.write("DELETE FROM queues WHERE name = ?", (name,))
        return old


# -- customers ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ImportReport:
    inserted: int                   # new phone numbers
    updated: int                    # numbers that had a profile (the file's columns replaced theirs)
    skipped: list[str] = field(default_factory=list)   # FILE:LINE: message of the lines left out (skip_bad)
    columns: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"inserted": self.inserted, "updated": self.updated, "skipped": self.skipped,
                "columns": list(self.columns)}


def _has_control(text: str, allow_newlines: bool = False) -> bool:
    ok = "\n\r\t" if allow_newlines else ""
    return any((ord(c) < 32 or ord(c) == 127) and c not in ok for c in text)


def _check_row(cells: dict[str, str]) -> tuple[list[Any], list[str]]:
    """([phone, name, vip_tier, language, last_agent, notes], problems) of one row's cells."""
    problems: list[str] = []
    phone = normalize_phone(cells.get("phone", ""))
    if not phone:
        problems.append("phone: required")
    elif not PHONE_RE.match(phone):
        problems.append(f"phone: {phone[:40]!r} is not a phone number (digits, '+', '*', '#'; no spaces inside)")
    name = cells.get("name", "").strip()
    if len(name) > 200 or _has_control(name):
        problems.append("name: longer than 200 characters or has control characters")
    tier_text = cells.get("vip_tier", "").strip()
    tier = 0
    if tier_text:
        try:
            tier = int(tier_text)
        except ValueError:
            problems.append(f"vip_tier: {tier_text[:20]!r} is not a whole number 0..9")
        else:
            if not 0 <= tier <= 9:
                problems.append(f"vip_tier: {tier} is outside 0..9")
    language = cells.get("language", "").strip()
    if language and not LANGUAGE_RE.match(language):
        problems.append(f"language: {language[:20]!r} is not a language tag (e.g. en, en-US, ko)")
    last_agent = cells.get("last_agent", "").strip()
    if last_agent and not AGENT_ID_RE.match(last_agent):
        problems.append(f"last_agent: {last_agent[:40]!r} is not an agent id")
    notes = cells.get("notes", "")
    if len(notes) > 4000 or _has_control(notes, allow_newlines=True):
        problems.append("notes: longer than 4000 characters or has control characters")
    return [phone, name, tier, language, last_agent, notes], problems


def parse_customers_csv(text: str, file: str = "<csv>") -> tuple[tuple[str, ...], list[list[Any]], list[str]]:
    """(the header's columns, the good rows, FILE:LINE problems of the other lines); CsvInvalid for a bad header."""
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvInvalid([f"{file}:1: the file is empty (expected a header line: {','.join(CSV_COLUMNS)})"]) from None
    except csv.Error as exc:
        raise CsvInvalid([f"{file}:1: {exc}"]) from None
    columns = tuple(h.strip().lower() for h in header)
    bad = [f"{file}:1: unknown column {c!r}" + did_you_mean(c, CSV_COLUMNS) for c in columns if c not in CSV_COLUMNS]
    bad += [f"{file}:1: column {c!r} appears twice" for i, c in enumerate(columns) if c in columns[:i]]
    if "phone" not in columns:
        bad.append(f"{file}:1: no 'phone' column (the header must name the columns: {','.join(CSV_COLUMNS)})")
    if bad:
        raise CsvInvalid(bad)
    rows: list[list[Any]] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"{file}:{line}: {exc}; the lines after it were not read")
            break  # (the reader cannot resynchronise after a broken quote)
        if line > MAX_CSV_LINES:
            problems.append(f"{file}:{line}: more than {MAX_CSV_LINES} lines; split the file")
            break
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(columns):
            problems.append(f"{file}:{line}: expected {len(columns)} fields ({','.join(columns)}), got {len(cells)}")
            continue
        row, errs = _check_row(dict(zip(columns, cells, strict=True)))
        if not errs and row[0] in seen:
            errs = [f"phone: {row[0]} is also on line {seen[row[0]]}"]
        problems += [f"{file}:{line}: {e}" for e in errs]
        if not errs:
            seen[row[0]] = line
            rows.append(row)
    return columns, rows, problems


class CustomerRepo:
    PROFILE = ("phone", "name", "vip_tier", "language", "last_agent", "notes", "updated_at")

    def __init__(self, db: Database) -> None:
        self.db = db

    async def import_csv(self, text: str, *, file: str = "<csv>", skip_bad: bool = False) -> ImportReport:
        """Upsert the customers of a CSV (columns: phone[,name,vip_tier,language,last_agent,notes]).

        Every line is checked first; any bad line raises CsvInvalid (``problems``: every one as
        ``FILE:LINE: message``) and nothing is imported, unless ``skip_bad`` (then the good lines are
        imported and the bad ones reported in ``skipped``; a bad header still raises). Columns the
        file leaves out keep their stored values for numbers already known.
        """
        columns, rows, problems = parse_customers_csv(text, file)
        if problems and not skip_bad:
            raise CsvInvalid(problems)
        if not rows:
            return ImportReport(0, 0, problems, columns)
        phones = json.dumps([r[0] for r in rows])
        await self.db.flush()
        async with self.db.conn.execute("SELECT count(*) FROM customers WHERE phone IN "
                                        "(SELECT value FROM json_each(?))", (phones,)) as cur:
            known = int((await cur.fetchone() or (0,))[0])
        sets = ", ".join(f"{c} = excluded.{c}" for c in CSV_COLUMNS[1:] if c in columns)
        sets = f"{sets}, updated_at = excluded.updated_at" if sets else "updated_at = excluded.updated_at"
        pick = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(CSV_COLUMNS)))
        await self.db.write(
            f"INSERT INTO customers ({', '.join(CSV_COLUMNS)}, updated_at) SELECT {pick}, ? FROM json_each(?) "
            f"WHERE true ON CONFLICT (phone) DO UPDATE SET {sets}",
            (utcnow(), json.dumps(rows, ensure_ascii=False)))
        return ImportReport(len(rows) - known, known, problems, columns)

    async def get(self, phone: str) -> dict[str, Any] | None:
        await self.db.flush()
        async with self.db.conn.execute(f"SELECT {', '.join(self.PROFILE)} FROM customers WHERE phone = ?",
                                        (normalize_phone(phone),)) as cur:
            row = await cur.fetchone()
        return dict(row) if row else None

    async def lookup(self, phone: str, calls: int = 5) -> dict[str, Any] | None:
        """The profile of ``phone`` with its last ``calls`` calls (newest first, inbound and callbacks);
        ``known`` False (and empty fields) for a number with calls but no profile; None for neither."""
        number = normalize_phone(phone)
        profile = await self.get(number)
        async with self.db.conn.execute(
            "SELECT id, direction, started_at, answered_at, ended_at, disposition, queue, agent, flow FROM calls "
            "WHERE caller IN (?, ?) OR (direction = 'callback' AND callee IN (?, ?)) "
            "ORDER BY started_at DESC, rowid DESC LIMIT ?", (number, phone, number, phone, calls)) as cur:
            history = [dict(r) for r in await cur.fetchall()]
        if profile is None and not history:
            return None
        base = profile or {"phone": number, "name": "", "vip_tier": 0, "language": "", "last_agent": "",
                           "notes": "", "updated_at": None}
        return {**base, "known": profile is not None, "calls": history}

    async def set_last_agent(self, phone: str, agent: str) -> None:
        """An agent answered ``phone``: remember them (creating a bare profile for a new number)."""
        await self.db.write("INSERT INTO customers (phone, last_agent, updated_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (phone) DO UPDATE SET last_agent = excluded.last_agent, "
                            "updated_at = excluded.updated_at", (normalize_phone(phone), agent, utcnow()))


# -- callbacks ------------------------------------------------------------------------------------------

CallbackState = Literal["waiting", "dialling", "done", "failed"]


@dataclass(frozen=True, slots=True)
class CallbackRow:
    id: int
    call_id: str
    queue: str
    number: str
    entered_at: float
    priority: int
    vip_tier: int
    skills: dict[str, int]
    attempts: int
    not_before: float
    state: CallbackState
    agent: str
    result_call: str
    created_at: str
    updated_at: str

    def contact(self) -> Contact:
        """The waiting contact this request is, for ``Router.enqueue`` after a restart."""
        return Contact(id=self.call_id, queue=self.queue, entered_at=self.entered_at, skills=self.skills,
                       priority=self.priority, vip_tier=self.vip_tier, caller=self.number, callback=True,
                       attempts=self.attempts, not_before=self.not_before)


class CallbackRepo:
    COLUMNS = ("id, call_id, queue, number, entered_at, priority, vip_tier, skills, attempts, not_before, state, "
               "agent, result_call, created_at, updated_at")

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _row(r: Any) -> CallbackRow:
        return CallbackRow(**{**dict(r), "skills": json.loads(r["skills"])})

    async def add(self, contact: Contact, number: str = "") -> CallbackRow:
        """Store the request of ``contact`` (its id, queue, place in line...); AlreadyExists for the same call."""
        now = utcnow()
        try:
            await self.db.write(
                "INSERT INTO callbacks (call_id, queue, number, entered_at, priority, vip_tier, skills, attempts, "
                "not_before, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (contact.id, contact.queue, number or contact.caller, contact.entered_at, contact.priority,
                 contact.vip_tier, json.dumps(dict(contact.skills), sort_keys=True), contact.attempts,
                 contact.not_before, now, now))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"call {contact.id!r} has a callback request already") from None
        got = await self.get(contact.id)
        assert got is not None
        return got

    async def get(self, call_id: str) -> CallbackRow | None:
        await self.db.flush()
        async with self.db.conn.execute(f"SELECT {self.COLUMNS} FROM callbacks WHERE call_id = ?", (call_id,)) as cur:
            row = await cur.fetchone()
        return self._row(row) if row else None

    async def open(self) -> list[CallbackRow]:
        """Requests still to serve (waiting or dialling), oldest place in line first."""
        await self.db.flush()
        async with self.db.conn.execute(
            f"SELECT {self.COLUMNS} FROM callbacks WHERE state IN ('waiting', 'dialling') ORDER BY entered_at, id"
        ) as cur:
            return [self._row(r) for r in await cur.fetchall()]

    async def _set(self, call_id: str, **fields: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        await self.db.write(f"UPDATE callbacks SET {cols}, updated_at = ? WHERE call_id = ?",
                            (*fields.values(), utcnow(), call_id))

    async def dialling(self, call_id: str, *, agent: str, result_call: str, attempts: int) -> None:
        """An agent was reserved and the customer is being dialled (``result_call``: the outbound call's id)."""
        await self._set(call_id, state="dialling", agent=agent, result_call=result_call, attempts=attempts)

    async def retry(self, call_id: str, *, attempts: int, not_before: float) -> None:
        """The attempt failed; back in line (same place) from ``not_before`` on."""
        await self._set(call_id, state="waiting", attempts=attempts, not_before=not_before, agent="")

    async def done(self, call_id: str) -> None:
        """The customer answered the callback."""
        await self._set(call_id, state="done")

    async def failed(self, call_id: str, *, attempts: int) -> None:
        """Given up after ``attempts``."""
        await self._set(call_id, state="failed", attempts=attempts)
