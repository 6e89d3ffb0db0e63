"""`callcenter recordings purge [--dry-run]` and `callcenter jobs list|retry ID`.

Both work on the data directory's database directly (SQLite in WAL mode lets them run beside a live server:
a purge deletes files and rows the server no longer needs; a retried job is picked up by the server's job
runner at its next poll). Retention comes from the settings: ``[recordings] retention_days`` (0 = keep
forever) and ``[recordings.retention] QUEUE = DAYS``.

Exit codes: 0 done; 1 the purge had to keep some files (each is printed with why); 2 anything else (bad
arguments, no data directory, a job that cannot be retried: only failed jobs can, ``done`` is terminal).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TypeVar

from recordings.retention import PurgeReport, purge

from .settings import Settings, check_data_dir, load_settings, with_overrides
from .storage.db import Database, run_with_database
from .storage.transcripts import JOB_STATES, Job, JobRepo, RecordingRepo

T = TypeVar("T")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``recordings`` and ``jobs`` commands to the top-level ``sub`` (``common`` adds --config/--data-dir)."""
    rec = sub.add_parser("recordings", help="call recordings: retention").add_subparsers(dest="action", required=True)
    rp = rec.add_parser("purge", help="delete recordings and transcripts older than their queue's retention days")
    common(rp)
    rp.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    rp.add_argument("--json", action="store_true", help="print JSON instead of lines")
    jobs = sub.add_parser("jobs", help="post-call transcription jobs").add_subparsers(dest="action", required=True)
    jl = jobs.add_parser("list", help="jobs, newest first, with the queue's counts")
    common(jl)
    jl.add_argument("--state", choices=JOB_STATES)
    jl.add_argument("--limit", type=int, default=50)
    jl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    jr = jobs.add_parser("retry", help="queue a failed job again (with fresh attempts)")
    common(jr)
    jr.add_argument("id", type=int, help="the job's id (see `callcenter jobs list`)")


def _settings(args: argparse.Namespace) -> Settings:
    return with_overrides(load_settings(args.config), data_dir=args.data_dir)


def _with_db(settings: Settings, fn: Callable[[Database], Awaitable[T]]) -> T:
    return run_with_database(check_data_dir(settings.data_dir), fn)


def purge_cmd(args: argparse.Namespace) -> int:
    settings = _settings(args)
    default_days, per_queue = settings.retention_days, dict(settings.retention_per_queue)
    report: PurgeReport = _with_db(settings, lambda db: purge(RecordingRepo(db), settings.data_dir,
                                                              default_days=default_days, per_queue=per_queue,
                                                              dry_run=args.dry_run))
    if args.json:
        print(json.dumps({"dry_run": report.dry_run, "deleted": [asdict(r) for r in report.deleted],
                          "missing": [asdict(r) for r in report.missing],
                          "kept": [{**asdict(r), "why": why} for r, why in report.kept],
                          "freed_bytes": report.freed_bytes}, indent=2))
    else:
        verb = "would delete" if report.dry_run else "deleted"
        for r in report.deleted:
            print(f"{verb}  {r.path}  ({r.leg}, call {r.call_id}, queue {r.queue or '-'}, {r.bytes} bytes, "
                  f"from {r.created_at})")
        for r in report.missing:
            print(f"missing  {r.path}  ({r.leg}, call {r.call_id}): row deleted")
        for r, why in report.kept:
            print(f"kept  {r.path}  ({r.leg}, call {r.call_id}): {why}", file=sys.stderr)
        if default_days == 0 and not any(per_queue.values()):
            print("retention is 0 (keep forever) for every queue: nothing to purge "
                  "(set [recordings] retention_days or [recordings.retention] QUEUE = DAYS)")
        else:
            print(report.summary())
    return 1 if report.kept else 0


def jobs_list(args: argparse.Namespace) -> int:
    async def go(db: Database) -> tuple[list[Job], dict[str, int]]:
        repo = JobRepo(db)
        return await repo.list(args.state, max(1, args.limit)), await repo.counts()
    jobs, counts = _with_db(_settings(args), go)
    if args.json:
        print(json.dumps({"counts": counts, "jobs": [asdict(j) for j in jobs]}, indent=2))
        return 0
    print("  ".join(f"{s} {n}" for s, n in counts.items()))
    print(f"{'id':>6}  {'call':<32}  {'state':<8}  {'tries':>5}  {'updated':<29}  error")
    for j in jobs:
        print(f"{j.id:>6}  {j.call_id:<32}  {j.state:<8}  {j.attempts:>5}  {j.updated_at:<29}  {j.error[:80]}")
    return 0


def jobs_retry(args: argparse.Namespace) -> int:
    job = _with_db(_settings(args), lambda db: JobRepo(db).retry(args.id))
    print(f"job {job.id} (call {job.call_id}) queued again")
    return 0


HANDLERS: dict[tuple[str, str], Callable[[argparse.Namespace], int]] = {
    ("recordings", "purge"): purge_cmd,
    ("jobs", "list"): jobs_list,
    ("jobs", "retry"): jobs_retry,
}
