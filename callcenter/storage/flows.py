"""Flow versions, number routing, voicemails and IVR paths: the SQL behind `callcenter flow` and /api/flows.

Versions are immutable rows (triggers refuse UPDATE and DELETE): deploying a flow stores its YAML text
exactly as given, as version 1, 2, 3... of its ``name``; text whose SHA-256 equals the latest version's
reuses that version. A number points at one (flow, version); every change of that pointer is written to
``number_history`` by a trigger in the same statement. Rollback reads the history as a stack: a deploy
(and a ``rollback --to``) pushes a target, a plain rollback pops one, so two rollbacks go two steps back.

The server shares one writer connection between every repository, and any of them may commit at any
await. So each change here is one statement (a version insert; a number upsert whose history row its
trigger writes), and a number is repointed only if it still points where the caller last saw it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..exceptions import CallCenterError
from .db import Database, utcnow

VOICEMAIL_DIR = "voicemail"     # under the data directory; voicemails.path starts with it
MAX_FLOW_BYTES = 256 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
NUMBER_RE = re.compile(r"^[A-Za-z0-9+*#_.-]{1,64}$")
RESERVED_NAMES = frozenset({"schema"})   # /api/flows/schema is the JSON Schema
IVR_EVENTS = ("IVR_NODE", "IVR_KEY", "IVR_SPEECH", "IVR_VAR", "IVR_HTTP", "IVR_TIMEOUT", "IVR_NOMATCH",
              "IVR_ERROR", "IVR_QUEUE", "IVR_TRANSFER", "IVR_VOICEMAIL")  # (the path lists every IVR_* event)


class FlowStoreError(CallCenterError):
    """A flow or number operation cannot be done (see the subclasses)."""


class NotFoundError(FlowStoreError):
    """No such flow, version, number or voicemail."""


class InvalidFlowError(FlowStoreError):
    """The flow text has errors (``errors``: ``file:line: message`` strings); nothing was changed."""

    def __init__(self, errors: list[str], warnings: list[str] | None = None) -> None:
        super().__init__(f"the flow has {len(errors)} error{'s' if len(errors) != 1 else ''}")
        self.errors = errors
        self.warnings = warnings or []


class ConflictError(FlowStoreError):
    """The number changed under this operation (another deploy won the race), or nothing to roll back to."""


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_number(number: str) -> str:
    if not NUMBER_RE.match(number):
        raise FlowStoreError(f"{number!r} is not a number (1-64 of: letters, digits, + * # _ . -)")
    return number


@dataclass(frozen=True, slots=True)
class FlowVersion:
    name: str
    version: int
    sha256: str
    created_at: str
    created_by: str
    comment: str
    source_dir: str = ""
    text: str | None = None          # None when listed without it


@dataclass(frozen=True, slots=True)
class FlowSummary:
    name: str
    latest: int
    versions: int
    updated_at: str                  # the latest version's created_at


@dataclass(frozen=True, slots=True)
class NumberTarget:
    number: str
    flow: str
    version: int
    updated_at: str
    updated_by: str
    action: str
    comment: str


@dataclass(frozen=True, slots=True)
class NumberChange:
    id: int
    number: str
    flow: str
    version: int
    action: str                      # deploy | rollback | rollback_to
    at: str
    by: str
    comment: str


@dataclass(frozen=True, slots=True)
class DeployResult:
    name: str
    version: int
    sha256: str
    created: bool                    # False: the text equals the latest version, which was reused
    number: str | None
    previous: tuple[str, int] | None  # the number's target before (None: new number, or no number)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Voicemail:
    id: int
    call_id: str
    mailbox: str
    path: str
    seconds: float
    sha256: str
    bytes: int
    created_at: str
    caller_number: str


_locks: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def _write_lock(db: Database) -> asyncio.Lock:
    """One lock per database for read-then-write operations of this process (deploy, rollback)."""
    lock = _locks.get(db)
    if lock is None:
        lock = _locks[db] = asyncio.Lock()
    return lock


_VERSION_META = "name, version, sha256, created_at, created_by, comment, source_dir"


def _version(row: Any, with_text: bool) -> FlowVersion:
    return FlowVersion(row["name"], row["version"], row["sha256"], row["created_at"], row["created_by"],
                       row["comment"], row["source_dir"], row["text"] if with_text else None)


def peek_name(text: str) -> str | None:
    """The flow's ``name:`` if the text is YAML with one (to let a flow call itself as a subflow)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def validate_text(text: str, file: str, base_dir: str | None, known_flows: set[str],
                  phrase_check: Any = None) -> tuple[str, list[str]]:
    """Check ``text`` as a flow: (its name, warnings); InvalidFlowError with every error otherwise."""
    from ivr.flow import check_flow  # the flow loader (ivr/), imported where it is needed

    if not text.strip():
        raise InvalidFlowError([f"{file}:1: the flow is empty"])
    if len(text.encode("utf-8")) > MAX_FLOW_BYTES:
        raise InvalidFlowError([f"{file}:1: the flow is larger than {MAX_FLOW_BYTES // 1024} KiB"])
    own = peek_name(text)
    known = set(known_flows) | ({own} if own else set())
    flow, problems = check_flow(text, file=file, base_dir=Path(base_dir) if base_dir else None, known_flows=known,
                                phrase_check=phrase_check)
    errors = [str(p) for p in problems if p.severity != "warning"]
    warnings = [str(p) for p in problems if p.severity == "warning"]  # str(): "file:line: warning: ..."
    if flow is None or errors:
        raise InvalidFlowError(errors or [f"{file}:1: the flow is invalid"], warnings)
    if not NAME_RE.match(flow.name) or flow.name in RESERVED_NAMES:
        raise InvalidFlowError([f"{file}:1: flow name {flow.name!r} cannot be deployed (use letters, digits, "
                                f"_ . - and not {', '.join(sorted(RESERVED_NAMES))})"], warnings)
    return flow.name, warnings


class FlowRepo:
    def __init__(self, db: Database, phrase_check: Any = None) -> None:
        """``phrase_check``: ivr.flow.PhraseCheck, the speech recognizer's vocabulary (None: not checked)."""
        self.db = db
        self.phrase_check = phrase_check

    async def get(self, name: str, version: int) -> FlowVersion | None:
        async with self.db.conn.execute(
            f"SELECT {_VERSION_META}, text FROM flow_versions WHERE name = ? AND version = ?", (name, version)
        ) as cur:
            row = await cur.fetchone()
        return _version(row, True) if row else None

    async def latest(self, name: str) -> FlowVersion | None:
        async with self.db.conn.execute(
            f"SELECT {_VERSION_META}, text FROM flow_versions WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
        ) as cur:
            row = await cur.fetchone()
        return _version(row, True) if row else None

    async def versions(self, name: str) -> list[FlowVersion]:
        """Every version of ``name``, oldest first, without their texts."""
        async with self.db.conn.execute(
            f"SELECT {_VERSION_META} FROM flow_versions WHERE name = ? ORDER BY version", (name,)
        ) as cur:
            return [_version(r, False) for r in await cur.fetchall()]

    async def summaries(self) -> list[FlowSummary]:
        async with self.db.conn.execute(
            "SELECT name, MAX(version) AS latest, COUNT(*) AS n, MAX(created_at) AS at "
            "FROM flow_versions GROUP BY name ORDER BY name"
        ) as cur:
            return [FlowSummary(r["name"], r["latest"], r["n"], r["at"]) for r in await cur.fetchall()]

    async def names(self) -> set[str]:
        async with self.db.conn.execute("SELECT DISTINCT name FROM flow_versions") as cur:
            return {r[0] for r in await cur.fetchall()}

    async def latest_versions(self) -> dict[str, int]:
        async with self.db.conn.execute("SELECT name, MAX(version) FROM flow_versions GROUP BY name") as cur:
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def store(self, name: str, text: str, *, by: str = "", comment: str = "",
                    source_dir: str = "") -> tuple[FlowVersion, bool]:
        """Store ``text`` as the next version of ``name`` (unchecked: see deploy); reuse an equal latest."""
        sha = text_sha256(text)
        latest = await self.latest(name)
        if latest is not None and latest.sha256 == sha:
            return latest, False
        # One statement: the version number is taken under SQLite's write lock (UNIQUE backs it up).
        cur = await self.db.conn.execute(
            "INSERT INTO flow_versions (name, version, text, sha256, source_dir, created_at, created_by, comment) "
            "SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ?, ?, ?, ? FROM flow_versions WHERE name = ?",
            (name, text, sha, source_dir, utcnow(), by, comment, name),
        )
        await self.db.conn.commit()
        async with self.db.conn.execute(
            f"SELECT {_VERSION_META}, text FROM flow_versions WHERE id = ?", (cur.lastrowid,)
        ) as read:
            row = await read.fetchone()
        return _version(row, True), True

    async def deploy(self, text: str, *, file: str = "<flow>", number: str | None = None, comment: str = "",
                     by: str = "", source_dir: str = "") -> DeployResult:
        """Validate ``text``, store it as a version (or reuse an equal latest) and point ``number`` at it.

        A flow with errors raises InvalidFlowError and changes nothing; warnings are returned. Subflow
        nodes may name any deployed flow, or this flow itself.
        """
        if number is not None:
            check_number(number)
        async with _write_lock(self.db):
            # (in a thread: checking a large flow takes milliseconds, and calls are running on this loop)
            name, warnings = await asyncio.to_thread(validate_text, text, file, source_dir or None, await self.names(),
                                                     self.phrase_check)
            stored, created = await self.store(name, text, by=by, comment=comment, source_dir=source_dir)
            previous = None
            if number is not None:
                numbers = NumberRepo(self.db)
                before = await numbers.get(number)
                previous = (before.flow, before.version) if before else None
                if previous != (stored.name, stored.version):
                    await numbers.point(number, stored.name, stored.version, by=by, action="deploy",
                                        comment=comment, expect=previous)
        return DeployResult(stored.name, stored.version, stored.sha256, created, number, previous, warnings)


class NumberRepo:
    _COLS = "number, flow, version, updated_at, updated_by, action, comment"

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _target(r: Any) -> NumberTarget:
        return NumberTarget(r["number"], r["flow"], r["version"], r["updated_at"], r["updated_by"], r["action"],
                            r["comment"])

    async def get(self, number: str) -> NumberTarget | None:
        async with self.db.conn.execute(f"SELECT {self._COLS} FROM numbers WHERE number = ?", (number,)) as cur:
            row = await cur.fetchone()
        return self._target(row) if row else None

    async def all(self) -> list[NumberTarget]:
        async with self.db.conn.execute(f"SELECT {self._COLS} FROM numbers ORDER BY number") as cur:
            return [self._target(r) for r in await cur.fetchall()]

    async def for_flow(self, name: str) -> list[NumberTarget]:
        async with self.db.conn.execute(
            f"SELECT {self._COLS} FROM numbers WHERE flow = ? ORDER BY number", (name,)
        ) as cur:
            return [self._target(r) for r in await cur.fetchall()]

    async def history(self, number: str) -> list[NumberChange]:
        """Every change of ``number``'s target, oldest first."""
        async with self.db.conn.execute(
            "SELECT id, number, flow, version, action, at, by, comment FROM number_history "
            "WHERE number = ? ORDER BY id", (number,)
        ) as cur:
            return [NumberChange(r["id"], r["number"], r["flow"], r["version"], r["action"], r["at"], r["by"],
                                 r["comment"]) for r in await cur.fetchall()]

    async def point(self, number: str, flow: str, version: int, *, by: str = "", action: str = "deploy",
                    comment: str = "", expect: tuple[str, int] | None = None) -> None:
        """Point ``number`` at (flow, version) if it still points at ``expect`` (None: it has no target yet)."""
        now = utcnow()
        if expect is None:
            cur = await self.db.conn.execute(
                "INSERT INTO numbers (number, flow, version, updated_at, updated_by, action, comment) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (number) DO NOTHING",
                (number, flow, version, now, by, action, comment),
            )
        else:
            cur = await self.db.conn.execute(
                "UPDATE numbers SET flow = ?, version = ?, updated_at = ?, updated_by = ?, action = ?, comment = ? "
                "WHERE number = ? AND flow = ? AND version = ?",
                (flow, version, now, by, action, comment, number, *expect),
            )
        changed = cur.rowcount
        await self.db.conn.commit()
        if changed != 1:
            raise ConflictError(f"number {number} was changed by someone else meanwhile: look again and retry")

    async def rollback(self, number: str, to: int | None = None, *, by: str = "",
                       comment: str = "") -> tuple[NumberTarget, NumberTarget]:
        """Point ``number`` back: at its target before the current one, or at version ``to`` of its flow.

        Returns (before, after).
        """
        async with _write_lock(self.db):
            before = await self.get(number)
            if before is None:
                raise NotFoundError(f"number {number} has no flow deployed")
            if to is not None:
                if await FlowRepo(self.db).get(before.flow, to) is None:
                    raise NotFoundError(f"flow {before.flow} has no version {to}")
                target, action = (before.flow, to), "rollback_to"
            else:
                stack: list[tuple[str, int]] = []
                for change in await self.history(number):
                    if change.action == "rollback":
                        if stack:
                            stack.pop()
                    else:
                        stack.append((change.flow, change.version))
                if len(stack) < 2:
                    raise ConflictError(f"number {number} has no earlier version to roll back to")
                target, action = stack[-2], "rollback"
            if target != (before.flow, before.version):
                await self.point(number, *target, by=by, action=action, comment=comment,
                                 expect=(before.flow, before.version))
            after = await self.get(number)
            assert after is not None
            return before, after


class VoicemailRepo:
    _COLS = "id, call_id, mailbox, path, seconds, sha256, bytes, created_at, caller_number"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, call_id: str, mailbox: str, path: str, seconds: float, sha256: str, size: int,
                  caller_number: str = "", at: str | None = None) -> int:
        """Record a saved voicemail; ``path`` is relative to the data directory, under ``voicemail/``."""
        if not path.startswith(f"{VOICEMAIL_DIR}/") or ".." in path.split("/"):
            raise ValueError(f"voicemail path {path!r} must be relative to the data directory, under {VOICEMAIL_DIR}/")
        cur = await self.db.conn.execute(
            "INSERT INTO voicemails (call_id, mailbox, path, seconds, sha256, bytes, created_at, caller_number) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, mailbox, path, seconds, sha256, size, at or utcnow(), caller_number),
        )
        await self.db.conn.commit()
        return int(cur.lastrowid or 0)

    async def get(self, voicemail_id: int) -> Voicemail | None:
        async with self.db.conn.execute(f"SELECT {self._COLS} FROM voicemails WHERE id = ?", (voicemail_id,)) as cur:
            row = await cur.fetchone()
        return Voicemail(*row) if row else None

    async def latest(self, limit: int = 50, mailbox: str | None = None) -> list[Voicemail]:
        """Newest first, optionally of one mailbox."""
        where, args = ("WHERE mailbox = ?", (mailbox,)) if mailbox is not None else ("", ())
        async with self.db.conn.execute(
            f"SELECT {self._COLS} FROM voicemails {where} ORDER BY id DESC LIMIT ?", (*args, limit)
        ) as cur:
            return [Voicemail(*r) for r in await cur.fetchall()]


class IvrPathRepo:
    """What a caller did in the IVR: the call's IVR_* events, and the flow version it ran."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def path(self, call_id: str) -> list[dict[str, Any]]:
        await self.db.flush()  # events are written through the group-commit queue
        async with self.db.conn.execute(  # every IVR_* event: NODE, KEY, QUEUE, TRANSFER, VOICEMAIL...
            "SELECT at, event, data FROM events WHERE call_id = ? AND event LIKE 'IVR\\_%' ESCAPE '\\' ORDER BY id",
            (call_id,),
        ) as cur:
            return [{"at": r["at"], "event": r["event"], "data": json.loads(r["data"])} for r in await cur.fetchall()]

    async def flow_version(self, call_id: str) -> int | None:
        await self.db.flush()
        async with self.db.conn.execute("SELECT flow_version FROM calls WHERE id = ?", (call_id,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None
