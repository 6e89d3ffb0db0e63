"""In-band DTMF benchmark: what ``voice.dtmf.DtmfDetector`` costs per call, fed as the tap feeds it.

    .venv/bin/python bench/dtmf.py [--seconds 60] [--runs 7] [--chunk-ms 40] [--rate 8000]

One detector per simulated call is fed ``--seconds`` of call audio in ``--chunk-ms`` frames (the
media tap's 40 ms chunks by default): a "voice" (a 140 Hz pulse train through two formant
resonances, 3 Hz syllable rhythm, G.711-like noise floor) with a key pressed every 2 s, so the
detector both rejects speech and reports keys. CPU is this thread's own time
(``time.thread_time_ns``) around the feed calls only; the figure is the median over ``--runs``
runs, each on a fresh detector (every run must hear every key, or the benchmark fails).

Printed: microseconds of CPU per frame (median, with the runs' spread), CPU-milliseconds per
call-minute, and how many calls one core could run in-band detection for (frame length / cost
per frame). The same-run baseline is the floor of any per-frame numpy work: one ``np.dot`` of
the frame with itself, timed the same way; the ratio says how far above that floor the detector
is. Target: in-band detection for 400 concurrent calls (bench/capacity's figure) on one core,
i.e. <= 100 us per 40 ms frame. Results: bench/results/dtmf.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_CALLS = 400


def call_audio(seconds: float, rate: int) -> tuple[np.ndarray, str]:
    """A voice-like signal with a key every 2 s (80 ms tones at -12 dBm0), and the keys pressed."""
    from voice.tones import dtmf_tone

    rng = np.random.default_rng(1)
    n = int(seconds * rate)
    pulses = np.zeros(n)
    pulses[:: rate // 140] = 1.0
    voice = pulses
    for f, bw in ((700, 130), (1200, 150)):  # two formants: a damped resonator each
        r = np.exp(-np.pi * bw / rate)
        a1, a2 = 2 * r * np.cos(2 * np.pi * f / rate), -r * r
        y = np.zeros(n)
        for i in range(2, n):  # one-off set-up, not timed
            y[i] = voice[i] + a1 * y[i - 1] + a2 * y[i - 2]
        voice = y
    t = np.arange(n) / rate
    voice *= 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    voice *= 6000 / np.abs(voice).max()
    voice += rng.normal(0, 30, n)
    keys = ""
    digits = "0123456789*#"
    for k, start in enumerate(range(rate, n - rate, 2 * rate)):
        key = digits[k % len(digits)]
        tone = dtmf_tone(key, 80, rate, -12.0).astype(np.float64)
        voice[start:start + len(tone)] = tone + rng.normal(0, 30, len(tone))
        keys += key
    return np.clip(np.rint(voice), -32768, 32767).astype(np.int16), keys


def run_once(frames: list[np.ndarray], rate: int) -> tuple[float, str]:
    """CPU ns per frame for one fresh detector over all frames, and the keys it reported."""
    from voice.dtmf import DtmfDetector

    det = DtmfDetector(rate)
    heard: list[str] = []
    t0 = time.thread_time_ns()
    for frame in frames:
        heard += det.feed(frame)
    return (time.thread_time_ns() - t0) / len(frames), "".join(heard)


def baseline_once(frames: list[np.ndarray]) -> float:
    t0 = time.thread_time_ns()
    acc = 0
    for frame in frames:
        acc += int(np.dot(frame, frame))
    return (time.thread_time_ns() - t0) / len(frames) + 0 * acc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="call audio per run")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--chunk-ms", type=int, default=40, help="frame length fed per call (the tap's chunk)")
    ap.add_argument("--rate", type=int, default=8000)
    args = ap.parse_args()
    if args.runs < 1 or args.seconds < 4 or args.chunk_ms < 1:
        ap.error("--runs >= 1, --seconds >= 4, --chunk-ms >= 1")

    audio, pressed = call_audio(args.seconds, args.rate)
    chunk = args.rate * args.chunk_ms // 1000
    frames = [audio[i:i + chunk] for i in range(0, len(audio) - chunk + 1, chunk)]
    print(f"{args.runs} run(s) of {args.seconds:g} s of call audio at {args.rate} Hz in {args.chunk_ms} ms frames "
          f"({len(frames)} frames, {len(pressed)} keys pressed)", flush=True)
    run_once(frames[:50], args.rate)  # warm-up: imports, numpy's first calls
    costs, bases, misses = [], [], 0
    for _ in range(args.runs):
        ns, heard = run_once(frames, args.rate)
        costs.append(ns)
        bases.append(baseline_once(frames))
        misses += heard != pressed
        if heard != pressed:
            print(f"  run heard {heard!r}, expected {pressed!r}")
    us = statistics.median(costs) / 1000
    base_us = statistics.median(bases) / 1000
    frame_s = chunk / args.rate
    calls_per_core = int(frame_s / (us * 1e-6))
    cpu_ms_per_call_minute = us / 1000 * (60 / frame_s)
    ok = us <= frame_s / TARGET_CALLS * 1e6 and misses == 0
    result: dict[str, Any] = {
        "rate": args.rate, "chunk_ms": args.chunk_ms, "seconds": args.seconds, "runs": args.runs,
        "us_per_frame": [round(c / 1000, 2) for c in costs], "us_per_frame_median": round(us, 2),
        "baseline_np_dot_us_per_frame_median": round(base_us, 2), "ratio_to_baseline": round(us / base_us, 1),
        "cpu_ms_per_call_minute": round(cpu_ms_per_call_minute, 2), "calls_per_core": calls_per_core,
        "runs_missing_keys": misses,
    }
    print(f"\nin-band DTMF detection ({args.chunk_ms} ms frames):")
    print(f"  CPU per {args.chunk_ms} ms frame: median {us:.1f} microseconds "
          f"(runs: {', '.join(f'{c / 1000:.1f}' for c in costs)})")
    print(f"  same-run baseline (np.dot of the frame): {base_us:.2f} microseconds; detector = {us / base_us:.1f}x")
    print(f"  {cpu_ms_per_call_minute:.1f} CPU-ms per call-minute; one core could run in-band detection for "
          f"{calls_per_core} concurrent calls  target >= {TARGET_CALLS}: {'PASS' if ok else 'FAIL'}")
    print(f"  keys heard in every run: {'yes' if misses == 0 else f'NO ({misses} run(s) missed)'}")
    out = BENCH / "results" / "dtmf.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults in {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
