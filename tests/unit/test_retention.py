"""recordings.retention.purge over a real database (RecordingRepo) and real files in a data directory."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asr.transcript import Transcript, Utterance, Word
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo
from callcenter.storage.transcripts import RecordingRepo, TranscriptRepo
from recordings.retention import purge


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path)
    yield database
    await database.close()


async def call_with_files(db: Database, data_dir: Path, call_id: str, queue: str,
                          legs: tuple[str, ...] = ("caller", "agent", "stereo")) -> list[Path]:
    calls = CallRepo(db)
    await calls.create(call_id, f"sip-{call_id}", "+15550100", "100", "127.0.0.1", "demo")
    rec = RecordingRepo(db)
    paths = []
    for leg in legs:
        rel = Path("recordings/2024/01/02") / f"{call_id}.{leg}.wav"
        (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / rel).write_bytes(b"RIFF" + bytes(100))
        await rec.add(call_id, leg, str(rel), "0" * 64, 104, 1.0)
        paths.append(data_dir / rel)
    fields: dict[str, object] = {"queue": queue, "recording_path": str(paths[0].relative_to(data_dir))}
    if "agent" in legs:
        fields["agent_recording_path"] = str(paths[1].relative_to(data_dir))
    await calls.update(call_id, **fields)
    return paths


async def scalar(db: Database, sql: str) -> object:
    async with db.conn.execute(sql) as cur:
        row = await cur.fetchone()
    assert row is not None
    return row[0]


def later(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


async def test_each_queue_keeps_its_recordings_for_its_own_days(db: Database, tmp_path: Path) -> None:
    sales = await call_with_files(db, tmp_path, "c-sales", "sales")
    support = await call_with_files(db, tmp_path, "c-support", "support")
    ivr_only = await call_with_files(db, tmp_path, "c-ivr", "", legs=("caller", "stereo"))
    repo = RecordingRepo(db)
    per_queue = {"sales": 30, "support": 0}

    report = await purge(repo, tmp_path, default_days=7, per_queue=per_queue, now=later(10))
    assert sorted((r.call_id, r.leg) for r in report.deleted) == [("c-ivr", "caller"), ("c-ivr", "stereo")]
    assert not any(p.exists() for p in ivr_only)
    assert all(p.exists() for p in sales + support)
    assert await repo.for_call("c-ivr") == {}
    assert (await CallRepo(db).get("c-ivr") or {})["recording_path"] is None

    report = await purge(repo, tmp_path, default_days=7, per_queue=per_queue, now=later(31))
    assert {r.call_id for r in report.deleted} == {"c-sales"} and report.freed_bytes == 3 * 104
    assert not any(p.exists() for p in sales) and all(p.exists() for p in support)
    row = await CallRepo(db).get("c-sales") or {}
    assert row["recording_path"] is None
    assert await scalar(db, "SELECT agent_recording_path FROM calls WHERE id = 'c-sales'") is None

    report = await purge(repo, tmp_path, default_days=7, per_queue=per_queue, now=later(10_000))
    assert report.deleted == [] and all(p.exists() for p in support)      # support keeps them forever
    assert set(await repo.for_call("c-support")) == {"caller", "agent", "stereo"}


async def test_dry_run_lists_and_deletes_nothing(db: Database, tmp_path: Path) -> None:
    paths = await call_with_files(db, tmp_path, "c1", "sales")
    report = await purge(RecordingRepo(db), tmp_path, default_days=1, per_queue={}, now=later(2), dry_run=True)
    assert len(report.deleted) == 3 and report.summary().startswith("would delete 3 recording(s) and 0 transcript(s)")
    assert all(p.exists() for p in paths) and len(await RecordingRepo(db).for_call("c1")) == 3


async def test_nothing_is_due_before_its_time_or_when_kept_forever(db: Database, tmp_path: Path) -> None:
    paths = await call_with_files(db, tmp_path, "c1", "sales")
    repo = RecordingRepo(db)
    assert (await purge(repo, tmp_path, default_days=7, per_queue={}, now=later(6.9))).deleted == []
    assert (await purge(repo, tmp_path, default_days=0, per_queue={}, now=later(10_000))).deleted == []
    assert all(p.exists() for p in paths)
    with pytest.raises(ValueError, match="whole numbers >= 0"):
        await purge(repo, tmp_path, default_days=7, per_queue={"sales": -1})


async def test_a_missing_file_is_logged_and_its_row_deleted(db: Database, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    paths = await call_with_files(db, tmp_path, "c1", "")
    paths[0].unlink()
    with caplog.at_level(logging.INFO, logger="recordings.retention"):
        report = await purge(RecordingRepo(db), tmp_path, default_days=1, per_queue={}, now=later(2))
    assert [r.leg for r in report.missing] == ["caller"] and len(report.deleted) == 2
    assert await RecordingRepo(db).for_call("c1") == {}
    assert any("already missing" in r.message and getattr(r, "call_id", "") == "c1" for r in caplog.records)
    assert sum(r.message == "retention: deleted" for r in caplog.records) == 2
    assert not (tmp_path / "recordings" / "2024").exists()          # the emptied day folders went too
    assert (tmp_path / "recordings").is_dir()                       # (but not the recordings folder)


async def test_a_file_that_cannot_be_deleted_keeps_its_row(db: Database, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside.wav"
    outside.write_bytes(b"keep me")
    rec = RecordingRepo(db)
    await CallRepo(db).create("c1", "s", "a", "b", "", "f")
    await rec.add("c1", "caller", str(Path("..") / outside.name), "0" * 64, 7, 1.0)   # a row pointing outside
    (tmp_path / "recordings").mkdir()
    await rec.add("c1", "stereo", "recordings", "0" * 64, 0, 1.0)                        # a directory, not a file
    try:
        report = await purge(rec, tmp_path, default_days=1, per_queue={}, now=later(2))
        assert sorted(r.leg for r, _ in report.kept) == ["caller", "stereo"] and report.deleted == []
        assert "outside the data directory" in dict((r.leg, why) for r, why in report.kept)["caller"]
        assert outside.read_bytes() == b"keep me" and (tmp_path / "recordings").is_dir()
        assert set(await rec.for_call("c1")) == {"caller", "stereo"}
    finally:
        outside.unlink()


async def test_many_rows_are_purged_in_batches(db: Database, tmp_path: Path) -> None:
    paths = []
    for i in range(5):
        paths += await call_with_files(db, tmp_path, f"c{i}", "", legs=("caller",))
    report = await purge(RecordingRepo(db), tmp_path, default_days=1, per_queue={}, now=later(2), batch=2)
    assert len(report.deleted) == 5 and not any(p.exists() for p in paths)
    assert await scalar(db, "SELECT COUNT(*) FROM recordings") == 0


async def test_transcripts_go_with_their_queue_s_retention_and_the_reports_data_stays(db: Database,
                                                                                       tmp_path: Path) -> None:
    await call_with_files(db, tmp_path, "c1", "sales", legs=("caller",))
    await call_with_files(db, tmp_path, "c2", "support", legs=("caller",))
    for call_id in ("c1", "c2"):
        day = tmp_path / "transcripts" / "2024" / "01" / "02"
        day.mkdir(parents=True, exist_ok=True)
        t = Transcript(call_id, 3.0, "pocketsphinx", utterances=(
            Utterance("customer", 0.5, 1.0, "refund please", 0.9, (Word("refund", 0.5, 0.7, 0.9),
                                                                  Word("please", 0.7, 1.0, 0.9))),))
        (day / f"{call_id}.json").write_text(t.to_json())
        (day / f"{call_id}.vtt").write_text(t.to_vtt())
        hits = [{"rule": "refund", "category": "billing", "speaker": "customer", "start": 0.5, "end": 0.7,
                 "phrase": "refund", "source": "transcript"}]
        await TranscriptRepo(db).store(call_id, t, {"hits": hits}, f"transcripts/2024/01/02/{call_id}.json",
                                       f"transcripts/2024/01/02/{call_id}.vtt")
    report = await purge(RecordingRepo(db), tmp_path, default_days=0, per_queue={"sales": 5}, now=later(6))
    assert sorted((r.call_id, r.leg) for r in report.deleted) == [("c1", "caller"), ("c1", "transcript")]
    assert not (tmp_path / "transcripts/2024/01/02/c1.json").exists()
    assert not (tmp_path / "transcripts/2024/01/02/c1.vtt").exists()
    assert (tmp_path / "transcripts/2024/01/02/c2.vtt").exists()
    c1, c2 = await TranscriptRepo(db).counts("c1"), await TranscriptRepo(db).counts("c2")
    assert c1["transcripts"] == c1["utterances"] == 0 and c1["keyword_hits"] == 1
    assert c2["transcripts"] == c2["utterances"] == c2["keyword_hits"] == 1
    # the search index forgot c1's words too
    assert await scalar(db, "SELECT COUNT(*) FROM utterances_fts WHERE utterances_fts MATCH 'refund'") == 1


def test_the_cli_purges_by_the_settings_and_lists_and_retries_jobs(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import asyncio

    from callcenter import recordings_cli
    from callcenter.storage.transcripts import JobRepo

    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "callcenter.toml"
    config.write_text(f'[server]\ndata_dir = "{data}"\n[recordings]\nretention_days = 0\n'
                      '[recordings.retention]\nsales = 3\n')

    async def setup() -> int:
        db = await Database.open(data)
        try:
            await call_with_files(db, data, "old", "sales", legs=("caller",))
            await call_with_files(db, data, "keep", "support", legs=("caller",))
            await db.write("UPDATE recordings SET created_at = '2000-01-01T00:00:00.000+00:00'")
            jobs = JobRepo(db, max_attempts=1)
            await jobs.enqueue("old")
            job = await jobs.lease("w", 30, 0)
            assert job is not None
            await jobs.fail(job.id, "w", "boom")
            return job.id
        finally:
            await db.close()
    job_id = asyncio.run(setup())

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path)
        p.add_argument("--data-dir", type=Path)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    recordings_cli.add_parsers(sub, common)

    def run(*argv: str) -> int:
        args = parser.parse_args([*argv, "--config", str(config)])
        return recordings_cli.HANDLERS[(args.command, args.action)](args)

    assert run("recordings", "purge", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would delete  recordings/2024/01/02/old.caller.wav" in out and "keep" not in out
    assert (data / "recordings/2024/01/02/old.caller.wav").exists()
    assert run("recordings", "purge") == 0
    assert "deleted 1 recording(s)" in capsys.readouterr().out
    assert not (data / "recordings/2024/01/02/old.caller.wav").exists()
    assert (data / "recordings/2024/01/02/keep.caller.wav").exists()

    assert run("jobs", "list") == 0
    out = capsys.readouterr().out
    assert "failed 1" in out and "boom" in out
    assert run("jobs", "retry", str(job_id)) == 0
    assert "queued again" in capsys.readouterr().out
    assert run("jobs", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["state"] == "queued"
    from callcenter.storage.transcripts import JobStateError
    with pytest.raises(JobStateError, match="only a failed job"):
        run("jobs", "retry", str(job_id))
