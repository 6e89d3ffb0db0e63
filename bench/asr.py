"""Throughput of the post-call transcription pipeline against a bare engine loop, in the same run.

    .venv/bin/python bench/asr.py [--files 40] [--rounds 3] [--no-accuracy]

The audio: ``--files`` human prompts of Debian's asterisk-core-sounds-en-wav (8 kHz), spread evenly by name.
Each round measures, in this order (bare x2 last):

- bare: one ``asr.transcribe.FileTranscriber`` (pocketsphinx, loaded beforehand) decoding every file in this
  process, one after the other: no database, no processes, no files written;
- bare x2: two processes, each such a loop over half the files, side by side: what this machine's two cores
  give at best, the ceiling for the pipeline's scaling;
- pipeline with 1 and with 2 workers: each file is the caller leg of a finished call (registered, mixed to
  stereo, queued by callcenter/post_call.py beforehand); the clock runs from waking a JobRunner whose worker
  processes are already warm (model loaded, by a warm-up call each) until every job is done: leasing, the
  worker processes, JSON/VTT files, the transcript rows.

Prints audio seconds transcribed per wall second (median over the rounds) for each, then the ratios:
pipeline overhead against bare (1 worker: target under 10%) and the scaling from 1 to 2 workers (target near 2x
on two free cores). Also the cold start (spawning the workers and loading the model). The machine's other load
counts against every figure alike, since they alternate within each round. With bench/asr_accuracy.py present
(and without --no-accuracy), it is run afterwards with ``--files`` and ``--no-vosk``: word error rate and
keyword recall on the same kind of audio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)            # this file is bench/asr.py: never let it shadow the asr package
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SOUNDS = Path("/usr/share/asterisk/sounds/en")


def prompts(n: int) -> list[Path]:
    files = sorted(p for p in SOUNDS.glob("*.wav") if _seconds(p) >= 1.0)
    if not files:
        raise SystemExit(f"no prompts in {SOUNDS}: install asterisk-core-sounds-en-wav (./run does)")
    step = max(1, len(files) // n)
    return files[::step][:n]


def _seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def bare(files: list[Path]) -> tuple[float, float, float]:
    """(audio seconds, wall seconds, CPU seconds) of one FileTranscriber decoding ``files`` in this process."""
    from asr.transcribe import FileTranscriber
    t = _bare_engine.get("t")
    if t is None:                      # loaded and warmed by one file, as the pipeline's workers are
        t = _bare_engine["t"] = FileTranscriber("pocketsphinx")
        t.transcribe_call({"customer": files[0]})
    audio = 0.0
    started, cpu = time.perf_counter(), time.process_time()
    for f in files:
        audio += t.transcribe_call({"customer": f}).duration_s
    return audio, time.perf_counter() - started, time.process_time() - cpu


_bare_engine: dict[str, Any] = {}


def _bare_chunk(files: list[Path]) -> tuple[float, float]:
    """In a worker process of ``bare_parallel``: (audio seconds, CPU seconds) of decoding ``files``."""
    audio, _, cpu = bare(files)
    return audio, cpu


def bare_parallel(files: list[Path], n: int) -> tuple[float, float, float]:
    """The machine's own ceiling: ``n`` processes, each a bare loop over its share of the files, started
    together once every one has its model loaded. (audio seconds, wall seconds, CPU seconds)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_bare_chunk, [files[:1]] * n))          # load and warm (each process takes one)
        started = time.perf_counter()
        parts = list(pool.map(_bare_chunk, [files[i::n] for i in range(n)]))
        wall = time.perf_counter() - started
    return sum(a for a, _ in parts), wall, sum(c for _, c in parts)


async def pipeline(files: list[Path], workers: int, work: Path) -> tuple[float, float, float, float]:
    """(audio seconds, wall seconds with warm workers, CPU seconds of the workers and this process, cold start
    seconds) of the job pipeline."""
    from callcenter.post_call import LegInfo, PostCall
    from callcenter.storage.db import Database
    from callcenter.storage.repos import CallRepo
    from callcenter.storage.transcripts import JobRepo
    from callcenter.transcription_jobs import JobRunner

    data = Path(tempfile.mkdtemp(prefix=f"bench-asr-{workers}w-", dir=work))
    db = await Database.open(data)
    post, calls, jobs = PostCall(db, data), CallRepo(db), JobRepo(db)

    async def add(call_id: str, src: Path) -> None:
        leg = data / "recordings" / f"{call_id}.caller.wav"
        leg.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, leg)
        await calls.create(call_id, call_id, "+1555", "100", "", "bench")
        assert await post.call_finished(call_id, {"caller": LegInfo(leg)}, "bench")

    async def until_done(runner: JobRunner, n: int) -> None:
        while runner.stats.done + runner.stats.failed < n:   # noqa: ASYNC110 - polls memory, not the database
            await asyncio.sleep(0.01)

    try:
        for i in range(workers):                       # one warm-up call per worker process
            await add(f"warm{i}", files[i % len(files)])
        for i, f in enumerate(files):
            await add(f"c{i}", f)
        # the calls are registered and mixed; their jobs are queued again below, all at once, once the workers
        # are warm, so the clock sees the pipeline only
        await db.write("DELETE FROM transcription_jobs WHERE call_id NOT LIKE 'warm%'")
        runner = JobRunner(db, data, workers=workers, poll_s=0.02, lease_s=300)
        cold = time.perf_counter()
        task = asyncio.create_task(runner.run())
        await until_done(runner, workers)
        cold = time.perf_counter() - cold
        if len(runner.stats.pids) < workers:
            print(f"  (warm-up ran on {len(runner.stats.pids)} of {workers} workers)")
        audio_before, cpu_before, work_before = runner.stats.audio_s, runner.stats.cpu_s, runner.stats.work_s
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(len(files)):
            await jobs.enqueue(f"c{i}")
        runner.wake()
        await until_done(runner, workers + len(files))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        cpu_parent = cpu
        if runner.stats.failed:
            raise SystemExit(f"{runner.stats.failed} jobs failed: see `callcenter jobs list --data-dir {data}`")
        audio = runner.stats.audio_s - audio_before
        cpu += runner.stats.cpu_s - cpu_before
        busy = (runner.stats.work_s - work_before) / wall
        print(f"  {workers} worker(s): {len(files)} jobs in {wall:.2f} s, workers busy {busy:.2f} on average "
              f"(of {workers}), the server process {cpu_parent:.2f} CPU s", flush=True)
        await runner.stop()
        await task
        return audio, wall, cpu, cold
    finally:
        await db.close()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-accuracy", action="store_true", help="do not run bench/asr_accuracy.py afterwards")
    args = ap.parse_args()
    files = prompts(args.files)
    total = sum(_seconds(f) for f in files)
    print(f"{len(files)} prompts, {total:.1f} s of audio; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    speeds: dict[str, list[float]] = {"bare": [], "1 worker": [], "2 workers": [], "bare x2": []}
    per_cpu: dict[str, list[float]] = {k: [] for k in speeds}
    colds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        for r in range(args.rounds):
            audio, wall, cpu = bare(files)
            speeds["bare"].append(audio / wall)
            per_cpu["bare"].append(audio / cpu)
            line = [f"bare {audio / wall:6.2f}"]
            for n in (1, 2):
                audio, wall, cpu, cold = asyncio.run(pipeline(files, n, Path(tmp)))
                key = f"{n} worker{'s' if n > 1 else ''}"
                speeds[key].append(audio / wall)
                per_cpu[key].append(audio / cpu)
                colds.append(cold)
                line.append(f"{n}w {audio / wall:6.2f}")
            audio, wall, cpu = bare_parallel(files, 2)
            speeds["bare x2"].append(audio / wall)
            per_cpu["bare x2"].append(audio / cpu)
            line.append(f"bare x2 {audio / wall:6.2f}")
            print(f"round {r + 1}: audio s per wall s: " + "  ".join(line))
    med = {k: statistics.median(v) for k, v in speeds.items()}
    print()
    cmed = {k: statistics.median(v) for k, v in per_cpu.items()}
    print(f"audio seconds transcribed per wall second (median of {args.rounds} rounds), and per CPU second "
          "(every process of the pipeline counted: less sensitive to the machine's other load):")
    for k, v in med.items():
        print(f"  {k:<10} {v:6.2f} per wall s (real-time factor {1 / v:.3f})   {cmed[k]:6.2f} per CPU s")
    print(f"pipeline overhead vs bare, 1 worker: {100 * (1 - med['1 worker'] / med['bare']):+.1f}% "
          f"(ratio {med['1 worker'] / med['bare']:.3f}; target: overhead under 10%)")
    print(f"pipeline CPU overhead vs bare: 1 worker {100 * (cmed['bare'] / cmed['1 worker'] - 1):+.1f}%, "
          f"2 workers {100 * (cmed['bare'] / cmed['2 workers'] - 1):+.1f}% (CPU spent per audio second)")
    print(f"scaling 1 -> 2 workers: {med['2 workers'] / med['1 worker']:.2f}x (target: near 2x on 2 free cores); "
          f"the machine's own, two bare loops in two processes: {med['bare x2'] / med['bare']:.2f}x")
    print(f"2 workers vs bare: {med['2 workers'] / med['bare']:.2f}x")
    print(f"cold start (spawn the workers, load the model, one warm-up call each): median "
          f"{statistics.median(colds):.2f} s")
    accuracy = ROOT / "bench" / "asr_accuracy.py"
    if accuracy.exists() and not args.no_accuracy:
        print(f"\n--- {accuracy.relative_to(ROOT)} --files {args.files} --no-vosk ---", flush=True)
        subprocess.run([sys.executable, str(accuracy), "--files", str(args.files), "--no-vosk"], check=False)


if __name__ == "__main__":
    main()
