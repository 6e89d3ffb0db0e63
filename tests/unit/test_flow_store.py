"""Versioned flow storage, number routing, voicemails and the flow directory, on real SQLite files."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.flow_directory import FlowDirectory
from callcenter.storage.db import Database
from callcenter.storage.flows import (
    ConflictError,
    FlowRepo,
    FlowStoreError,
    InvalidFlowError,
    IvrPathRepo,
    NotFoundError,
    NumberRepo,
    VoicemailRepo,
    text_sha256,
)
from callcenter.storage.repos import CallRepo, EventRepo
from ivr.flow import parse_flow


def menu_flow(name: str = "example", say: str = "Connecting you to sales.") -> str:
    return f"""name: {name}
start: main
nodes:
  main:
    type: menu
    prompt: "For sales press 1. To end this call press 2."
    options:
      "1": sales
      "2": bye
  sales:
    type: play
    say: "{say}"
    next: bye
  bye:
    type: hangup
"""


def caller_flow(name: str, sub: str) -> str:
    return f"""name: {name}
start: s
nodes:
  s:
    type: subflow
    flow: {sub}
    next: bye
  bye:
    type: hangup
"""


def helper_flow(say: str = "Hello from the helper.") -> str:
    return f"""name: helper
start: h
nodes:
  h:
    type: play
    say: "{say}"
"""


def warned_flow() -> str:
    """Valid, with one warning (a declared variable nobody uses)."""
    return menu_flow().replace("start: main\n", "start: main\nvariables:\n  unused: string\n")


BROKEN = """name: example
start: main
nodes:
  main:
    type: menu
    prompt: "Press 1."
    options:
      "1": nowhere
"""


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path)
    yield database
    await database.close()


async def _counts(db: Database) -> dict[str, int]:
    out = {}
    for table in ("flow_versions", "numbers", "number_history"):
        async with db.conn.execute(f"SELECT COUNT(*) FROM {table}") as cur:
            out[table] = (await cur.fetchone())[0]  # type: ignore[index]
    return out


async def test_deploy_versions_dedupe_and_number_pointer(db: Database) -> None:
    flows, numbers = FlowRepo(db), NumberRepo(db)
    r1 = await flows.deploy(menu_flow(), number="1000", comment="first", by="ann")
    assert (r1.name, r1.version, r1.created, r1.previous) == ("example", 1, True, None)
    r2 = await flows.deploy(menu_flow(say="Sales, one moment."), number="1000")
    assert (r2.version, r2.created, r2.previous) == (2, True, ("example", 1))
    # The same text as the latest: no new version, but the number is pointed at it.
    await numbers.rollback("1000")
    assert (await numbers.get("1000")).version == 1  # type: ignore[union-attr]
    r3 = await flows.deploy(menu_flow(say="Sales, one moment."), number="1000")
    assert (r3.version, r3.created, r3.previous) == (2, False, ("example", 1))
    assert (await numbers.get("1000")).version == 2  # type: ignore[union-attr]
    # ...and an unchanged pointer writes no history row.
    before = await _counts(db)
    r4 = await flows.deploy(menu_flow(say="Sales, one moment."), number="1000")
    assert (r4.version, r4.created, r4.previous) == (2, False, ("example", 2))
    assert await _counts(db) == before
    stored = await flows.get("example", 1)
    assert stored is not None and stored.text == menu_flow() and stored.sha256 == text_sha256(menu_flow())
    assert stored.created_by == "ann" and stored.comment == "first"
    assert [v.version for v in await flows.versions("example")] == [1, 2]
    assert [v.text for v in await flows.versions("example")] == [None, None]  # listed without texts
    assert [(s.name, s.latest, s.versions) for s in await flows.summaries()] == [("example", 2, 2)]


async def test_warnings_do_not_block_a_deploy(db: Database) -> None:
    r = await FlowRepo(db).deploy(warned_flow(), file="w.yaml", number="1000")
    assert r.version == 1 and len(r.warnings) == 1 and r.warnings[0].startswith("w.yaml:4: warning: ")


AUDIO = """name: greet
start: p
nodes:
  p:
    type: play
    audio: hello.wav
    next: bye
  bye:
    type: hangup
"""


async def test_audio_paths_are_checked_and_resolved_against_the_source_folder(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    with pytest.raises(InvalidFlowError, match="error"):
        await FlowRepo(db).deploy(AUDIO, file="greet.yaml", number="1000", source_dir=str(folder))
    (folder / "hello.wav").write_bytes(b"RIFF")
    await FlowRepo(db).deploy(AUDIO, file="greet.yaml", number="1000", source_dir=str(folder))
    directory = FlowDirectory(db)
    await directory.load()
    got = directory.resolve("1000")
    assert got is not None and got.flow_dir == folder


async def test_text_is_stored_exactly(db: Database) -> None:
    text = "# a comment the loader ignores\r\n" + menu_flow().replace("\n", "\r\n") + "\r\n\r\n"
    r = await FlowRepo(db).deploy(text)
    got = await FlowRepo(db).get(r.name, r.version)
    assert got is not None and got.text == text


async def test_invalid_deploy_changes_nothing(db: Database) -> None:
    flows = FlowRepo(db)
    await flows.deploy(menu_flow(), number="1000")
    before = await _counts(db)
    with pytest.raises(InvalidFlowError) as info:
        await flows.deploy(BROKEN, file="broken.yaml", number="1000")
    assert info.value.errors and all(e.startswith("broken.yaml:") for e in info.value.errors)
    assert any("nowhere" in e for e in info.value.errors)
    for bad in ("", "   \n", "name: [unclosed\n", "just text\n"):
        with pytest.raises(InvalidFlowError):
            await flows.deploy(bad, number="1000")
    with pytest.raises(InvalidFlowError, match="error"):  # a subflow nobody deployed
        await flows.deploy(caller_flow("main", "helper"), number="2000")
    with pytest.raises(InvalidFlowError) as info:  # the API's path /api/flows/schema is taken
        await flows.deploy(menu_flow(name="schema"))
    assert "cannot be deployed" in info.value.errors[0]
    with pytest.raises(FlowStoreError, match="is not a number"):
        await flows.deploy(menu_flow(), number="10 00")
    assert await _counts(db) == before
    assert (await NumberRepo(db).get("1000")).version == 1  # type: ignore[union-attr]


async def test_versions_and_history_are_immutable(db: Database) -> None:
    await FlowRepo(db).deploy(menu_flow(), number="1000")
    for sql in ("UPDATE flow_versions SET text = 'x'", "DELETE FROM flow_versions",
                "UPDATE number_history SET version = 9", "DELETE FROM number_history", "DELETE FROM numbers"):
        with pytest.raises(sqlite3.DatabaseError, match="immutable|append-only|repointed"):
            await db.conn.execute(sql)
    with pytest.raises(sqlite3.IntegrityError):  # a number can only point at a stored version
        await db.conn.execute("UPDATE numbers SET version = 7")


async def test_subflows_may_name_deployed_flows_and_themselves(db: Database) -> None:
    flows = FlowRepo(db)
    await flows.deploy(helper_flow())
    assert (await flows.deploy(caller_flow("main", "helper"), number="2000")).version == 1
    assert (await flows.deploy(caller_flow("loop", "loop"))).version == 1


async def test_rollback_is_a_stack_and_to_a_version(db: Database) -> None:
    flows, numbers = FlowRepo(db), NumberRepo(db)
    for i in range(3):
        await flows.deploy(menu_flow(say=f"v{i + 1}"), number="1000")
    with pytest.raises(NotFoundError):
        await numbers.rollback("999")
    before, after = await numbers.rollback("1000", by="bob")
    assert (before.version, after.version, after.action, after.updated_by) == (3, 2, "rollback", "bob")
    assert (await numbers.rollback("1000"))[1].version == 1      # two rollbacks: two steps back
    with pytest.raises(ConflictError, match="no earlier version"):
        await numbers.rollback("1000")
    assert (await numbers.rollback("1000", to=3))[1].version == 3  # --to pushes
    assert (await numbers.rollback("1000"))[1].version == 1        # and a rollback undoes it
    with pytest.raises(NotFoundError, match="no version 9"):
        await numbers.rollback("1000", to=9)
    same = await numbers.rollback("1000", to=1)                    # already there: nothing written
    assert same[0] == same[1]
    assert [(h.action, h.version) for h in await numbers.history("1000")] == [
        ("deploy", 1), ("deploy", 2), ("deploy", 3), ("rollback", 2), ("rollback", 1), ("rollback_to", 3),
        ("rollback", 1)]
    # A number moved to another flow rolls back to the first flow.
    await flows.deploy(menu_flow(name="other"), number="1000")
    assert (await numbers.rollback("1000"))[1].flow == "example"


async def test_point_refuses_a_stale_expectation(db: Database) -> None:
    await FlowRepo(db).deploy(menu_flow(), number="1000")
    await FlowRepo(db).deploy(menu_flow(say="two"))
    numbers = NumberRepo(db)
    with pytest.raises(ConflictError):
        await numbers.point("1000", "example", 2, expect=("example", 2))   # it points at 1
    with pytest.raises(ConflictError):
        await numbers.point("1000", "example", 2, expect=None)             # it exists already
    await numbers.point("1000", "example", 2, expect=("example", 1))
    assert (await numbers.get("1000")).version == 2  # type: ignore[union-attr]


async def test_a_second_connection_sees_versions_in_order(tmp_path: Path, db: Database) -> None:
    """Two writers (a server and a CLI) share the version sequence of a name."""
    other = await Database.open(tmp_path)
    try:
        a = await FlowRepo(db).deploy(menu_flow(say="a"))
        b = await FlowRepo(other).deploy(menu_flow(say="b"))
        c = await FlowRepo(db).deploy(menu_flow(say="c"))
        assert (a.version, b.version, c.version) == (1, 2, 3)
    finally:
        await other.close()


async def test_voicemails(db: Database) -> None:
    vm = VoicemailRepo(db)
    first = await vm.add("c1", "sales", "voicemail/2026/01/01/c1.wav", 3.5, "ab" * 32, 56000, "1001")
    await vm.add("c2", "support", "voicemail/2026/01/01/c2.wav", 1.0, "cd" * 32, 16000)
    assert [v.call_id for v in await vm.latest()] == ["c2", "c1"]
    assert [v.call_id for v in await vm.latest(mailbox="sales")] == ["c1"]
    got = await vm.get(first)
    assert got is not None and got.seconds == 3.5 and got.caller_number == "1001" and got.bytes == 56000
    assert await vm.get(999) is None
    for bad in ("/etc/passwd", "recordings/x.wav", "voicemailx/a.wav", "voicemail/../x.wav"):
        with pytest.raises(ValueError, match="under voicemail/"):
            await vm.add("c3", "sales", bad, 1.0, "", 0)


async def test_ivr_path_and_flow_version(db: Database) -> None:
    calls, events = CallRepo(db), EventRepo(db)
    await calls.create("c1", "s1", "1001", "1000", "", "example")
    await calls.update("c1", flow_version=2)
    await events.append("CALLSTART", "c1")
    await events.append("IVR_NODE", "c1", node="main")
    await events.append("IVR_KEY", "c1", key="1", node="main")
    await events.append("IVR_VAR", "c2", name="x")              # another call's
    await events.append("IVR_NODE", "c1", node="sales")
    await events.append("CALLEND", "c1")
    paths = IvrPathRepo(db)
    steps = await paths.path("c1")
    assert [(s["event"], s["data"]) for s in steps] == [
        ("IVR_NODE", {"node": "main"}), ("IVR_KEY", {"key": "1", "node": "main"}), ("IVR_NODE", {"node": "sales"})]
    assert await paths.flow_version("c1") == 2
    assert await paths.flow_version("nope") is None


# -- the flow directory ---------------------------------------------------------------------------

async def test_directory_resolves_new_versions_and_calls_keep_theirs(db: Database) -> None:
    flows = FlowRepo(db)
    await flows.deploy(menu_flow(say="old"), number="1000")
    directory = FlowDirectory(db)
    await directory.load()
    in_progress = directory.resolve("1000")
    assert in_progress is not None and (in_progress.name, in_progress.version) == ("example", 1)
    assert directory.resolve("2000") is None
    await flows.deploy(menu_flow(say="new"), number="1000")
    assert directory.resolve("1000") is in_progress  # not reloaded yet
    await directory.deployed()
    new = directory.resolve("1000")
    assert new is not None and new.version == 2
    sales = new.flow.nodes["sales"]
    assert sales.prompt.say == "new"
    assert in_progress.flow.nodes["sales"].prompt.say == "old"  # the call in progress keeps v1
    await NumberRepo(db).rollback("1000")
    await directory.deployed()
    back = directory.resolve("1000")
    assert back is not None and back.version == 1 and back.flow is in_progress.flow  # parsed once, cached


async def test_directory_subflows_are_the_latest_at_call_start(db: Database) -> None:
    flows = FlowRepo(db)
    await flows.deploy(helper_flow("one"))
    await flows.deploy(caller_flow("main", "helper"), number="2000")
    directory = FlowDirectory(db)
    await directory.load()
    r1 = directory.resolve("2000")
    assert r1 is not None and set(r1.subflows) == {"helper"}
    await flows.deploy(helper_flow("two"))                  # a subflow's new version, no number
    await directory.deployed()
    r2 = directory.resolve("2000")
    assert r2 is not None and r2.version == 1
    assert r2.subflows["helper"].nodes["h"].prompt.say == "two"
    assert r1.subflows["helper"].nodes["h"].prompt.say == "one"


async def test_directory_notices_a_deploy_by_another_connection(tmp_path: Path, db: Database) -> None:
    directory = FlowDirectory(db)
    await directory.load()
    assert await directory.refresh() is False              # nothing changed: no reload
    cli = await Database.open(tmp_path)                    # `callcenter flow deploy` with no server
    try:
        await FlowRepo(cli).deploy(menu_flow(), number="1000")
    finally:
        await cli.close()
    assert directory.resolve("1000") is None
    assert await directory.refresh() is True
    assert directory.resolve("1000") is not None
    assert await directory.refresh() is False


async def test_directory_run_picks_up_cli_deploys(tmp_path: Path, db: Database) -> None:
    directory = FlowDirectory(db)
    await directory.load()
    task = asyncio.create_task(directory.run(interval=0.02), name="flow-refresh")
    try:
        cli = await Database.open(tmp_path)
        try:
            await FlowRepo(cli).deploy(menu_flow(), number="1000")
        finally:
            await cli.close()
        for _ in range(200):
            if directory.resolve("1000") is not None:
                break
            await asyncio.sleep(0.01)
        assert directory.resolve("1000") is not None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_directory_default_and_a_broken_stored_version(db: Database) -> None:
    # A version the loader refuses (written past validation, e.g. by an older release) is skipped, not fatal.
    await db.conn.execute(
        "INSERT INTO flow_versions (name, version, text, sha256, created_at) VALUES ('bad', 1, 'x: [', '', '')")
    await db.conn.execute(
        "INSERT INTO numbers (number, flow, version, updated_at) VALUES ('3000', 'bad', 1, '')")
    await db.conn.commit()
    await FlowRepo(db).deploy(helper_flow())
    directory = FlowDirectory(db)
    await directory.load()
    assert directory.resolve("3000") is None and directory.default is None
    fallback = parse_flow(caller_flow("fallback", "helper"), file="fallback.yaml")
    await directory.set_default(fallback)
    got = directory.resolve("3000")
    assert got is not None and got.flow is fallback and got.version == 0 and set(got.subflows) == {"helper"}
    assert directory.deployed_route("3000") is None
