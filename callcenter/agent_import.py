"""Bulk agent import: upsert many agents from one CSV (`callcenter agent import`, `POST /api/agents/import`).

The CSV's first line names its columns, in any order: ``id`` (required) and any other agent field
of ``routing.config`` (``name, team, uri, skills, wrap_up_s, max_offers, weight, order, user``; the
set is ``routing.config.AGENT_FIELDS``, so a field added there is a column here). ``skills`` is
``skill:level`` pairs separated by ``;`` or ``,`` (a comma inside a CSV cell needs quotes; skill names
never hold either character, so both mean the same).

A row for a known id changes only the cells that are non-empty in it (like ``agent add --update``); a
new id is added with the defaults for its empty cells. Every row is checked first, each merged with
the stored agent and passed through ``routing.config.agent_from_dict`` (the one place agent fields
are checked); text cells become numbers here only so that those checks see the types they expect.
Any bad row (or a duplicate id: every row with that id is bad) raises ``CsvInvalid`` with one line
per bad row (``FILE:LINE: agent ID: field: message; field: message``) and nothing is written, unless
``skip_bad``: then the good rows are written and the bad ones reported. A bad header (no ``id``, an
unknown or repeated column) or an empty file always refuses the whole file.

The writes are ``AgentRepo.add`` / ``AgentRepo.update`` issued together, so the group-commit writer
(storage/db.py) commits them in one transaction (up to its batch size, 256). Rows that change nothing
are not written (``unchanged``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routing.config import AGENT_FIELDS, agent_from_dict, agent_to_dict, did_you_mean
from routing.exceptions import ConfigInvalid
from routing.model import AgentSpec

from .exceptions import CallCenterError, ConfigError
from .storage.acd import AgentRepo, CsvInvalid

COLUMNS: tuple[str, ...] = AGENT_FIELDS
MAX_ROWS = 100_000
_HINTS = typing.get_type_hints(AgentSpec)
Problem = tuple[int, str, str]      # (line, "FILE:LINE: agent ID: ", "field: message")


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One data row: its first line in the file, its id and its non-empty cells, typed for routing.config."""

    line: int
    id: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AgentImportReport:
    added: list[str] = field(default_factory=list)        # ids, in file order
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: int = 0                                      # bad rows left out (skip_bad)
    problems: list[str] = field(default_factory=list)     # FILE:LINE: message, for each skipped row
    columns: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "changed": self.changed, "unchanged": self.unchanged, "skipped": self.skipped,
                "problems": self.problems, "columns": list(self.columns)}


# -- reading ---------------------------------------------------------------------------------------------

def decode_csv(raw: bytes, file: str = "<csv>") -> str:
    """``raw`` as UTF-8 text (a BOM is dropped); CsvInvalid naming the line and byte that are not UTF-8."""
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problem = f"{file}:{line}: not UTF-8 text (at byte offset {exc.start}); save the file as UTF-8"
        raise CsvInvalid([problem]) from None


def read_csv_file(path: Path) -> str:
    """The file's text; ConfigError if it cannot be read, CsvInvalid if it is not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_csv(raw, str(path))


def _where(file: str, line: int, agent_id: str) -> str:
    return f"{file}:{line}: agent {agent_id}: " if agent_id else f"{file}:{line}: "


def _typed(name: str, text: str) -> Any:
    """A cell as routing.config expects it: numbers for number fields (text it cannot read stays text, so
    agent_from_dict names it), ``a:3;b:1`` as ``a:3,b:1`` for skills, other text as is."""
    hint = _HINTS.get(name)
    if name == "skills":
        return text.replace(";", ",")
    if hint in (int, float):
        for kind in (hint, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return text


def _header(reader: Any, file: str) -> tuple[str, ...]:
    try:
        header = next(reader)
    except StopIteration:
        raise CsvInvalid([f"{file}:1: the file is empty (expected a header line such as "
                          f"{','.join(COLUMNS)})"]) from None
    except csv.Error as exc:
        raise CsvInvalid([f"{file}:1: {exc}"]) from None
    columns = tuple(h.strip().lower() for h in header)
    unknown = [f"{c!r}" + did_you_mean(c, COLUMNS) for c in columns if c not in COLUMNS]
    bad = [f"{file}:1: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; the columns are: "
           f"{', '.join(COLUMNS)}"] if unknown else []
    bad += [f"{file}:1: column {c!r} appears twice" for i, c in enumerate(columns) if c in columns[:i]]
    if "id" not in columns:
        bad.append(f"{file}:1: no 'id' column (the first line must name the columns, 'id' among them)")
    if bad:
        raise CsvInvalid(bad)
    return columns


def parse_agents_csv(text: str, file: str = "<csv>") -> tuple[tuple[str, ...], list[AgentRow], list[Problem]]:
    """(the header's columns, the rows that parsed, problems of the others); CsvInvalid for a bad header.

    Only the file's shape is checked here (field counts, quoting, duplicate ids); the values are
    checked by :func:`plan_import`. Blank lines are ignored.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    columns = _header(reader, file)
    rows: list[AgentRow] = []
    problems: list[Problem] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append((line, f"{file}:{line}: ", f"{exc}; the lines after it were not read"))
            break  # (the reader cannot resynchronise after a broken quote)
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(rows) + len(problems) >= MAX_ROWS:
            problems.append((line, f"{file}:{line}: ", f"more than {MAX_ROWS} rows; split the file"))
            break
        named = dict(zip(columns, (c.strip() for c in cells), strict=False))
        agent_id = named.get("id", "")
        if len(cells) != len(columns):
            problems.append((line, _where(file, line, agent_id),
                             f"expected {len(columns)} fields ({','.join(columns)}), got {len(cells)}"))
            continue
        rows.append(AgentRow(line, agent_id, {k: _typed(k, v) for k, v in named.items() if v}))
    lines: dict[str, list[int]] = {}
    for row in rows:
        if row.id:
            lines.setdefault(row.id, []).append(row.line)
    twice = {i: ls for i, ls in lines.items() if len(ls) > 1}
    for row in rows:
        if row.id in twice:
            others = ", ".join(str(n) for n in twice[row.id] if n != row.line)
            problems.append((row.line, _where(file, row.line, row.id),
                             f"id {row.id} is also on line {others} (each id once per file)"))
    return columns, [r for r in rows if r.id not in twice], problems


# -- planning and writing ---------------------------------------------------------------------------------

@dataclass(slots=True)
class ImportPlan:
    added: list[AgentSpec] = field(default_factory=list)
    changed: list[AgentSpec] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def plan_import(rows: list[AgentRow], existing: Mapping[str, AgentSpec], file: str = "<csv>") -> ImportPlan:
    """What ``rows`` do to the ``existing`` agents: each row's cells over the stored agent (or the
    defaults), checked by ``routing.config.agent_from_dict``; a row that fails it is a problem."""
    plan = ImportPlan()
    for row in rows:
        old = existing.get(row.id) if row.id else None
        try:
            spec = agent_from_dict({**(agent_to_dict(old) if old else {}), **row.fields})
        except ConfigInvalid as exc:
            plan.problems += [(row.line, _where(file, row.line, row.id), p) for p in exc.problems]
            continue
        if old is None:
            plan.added.append(spec)
        elif spec != old:
            plan.changed.append(spec)
        else:
            plan.unchanged.append(spec.id)
    return plan


def one_line_per_row(problems: list[Problem]) -> list[str]:
    """``FILE:LINE: agent ID: a; b`` for each row with problems, in line order."""
    rows: dict[int, tuple[str, list[str]]] = {}
    for line, where, what in sorted(problems, key=lambda p: p[0]):
        rows.setdefault(line, (where, []))[1].append(what)
    return [where + "; ".join(whats) for where, whats in rows.values()]


async def import_agents(repo: AgentRepo, text: str, *, file: str = "<csv>",
                        skip_bad: bool = False) -> AgentImportReport:
    """Upsert the agents of a CSV (see the module docstring). CsvInvalid (nothing written) if a row is
    bad and not ``skip_bad``; the report lists the ids added, changed and unchanged."""
    columns, rows, problems = parse_agents_csv(text, file)
    plan = plan_import(rows, {r.spec.id: r.spec for r in await repo.all()}, file)
    messages = one_line_per_row(problems + plan.problems)
    if messages and not skip_bad:
        raise CsvInvalid(messages)
    results = await asyncio.gather(*(repo.add(s) for s in plan.added), *(repo.update(s) for s in plan.changed),
                                   return_exceptions=True)
    # (Only a concurrent change between the read above and these writes makes one fail: another
    # client adding or removing the same id. The others are written; the failed ones are reported.)
    failed: set[str] = set()
    line_of = {r.id: r.line for r in rows}
    for spec, got in zip([*plan.added, *plan.changed], results, strict=True):
        if isinstance(got, BaseException):
            if not isinstance(got, CallCenterError | ConfigInvalid):
                raise got
            failed.add(spec.id)
            messages.append(f"{_where(file, line_of[spec.id], spec.id)}not written: {got}")
    return AgentImportReport(
        added=[s.id for s in plan.added if s.id not in failed],
        changed=[s.id for s in plan.changed if s.id not in failed],
        unchanged=plan.unchanged, skipped=len(messages), problems=messages,
        columns=columns)
