"""Benchmark of the IVR's grammar recognizer (asr/): decoder costs, real-time factor, concurrent listeners.

    .venv/bin/python bench/asr_stream.py [--quick]

Prints medians: model load, creating a pocketsphinx Decoder vs. reusing a pooled one (grammar compiled once,
then only re-activated), RSS per decoder; the real-time factor of one grammar session (audio seconds decoded
per CPU second) on a silent turn and on a spoken turn; how many speech-menu listeners one StreamingRecognizer
(one worker thread, one core: pocketsphinx holds the GIL) sustains fed in real time with 20 ms frames and no
dropped audio; and the false-accept rate on out-of-grammar words. Audio is espeak-ng through 8 kHz mu-law.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.config import AsrConfig  # noqa: E402
from asr.engines import load_engine  # noqa: E402
from asr.pocketsphinx_engine import PocketsphinxEngine, jsgf  # noqa: E402
from asr.session import PhraseHeard, open_phrase_session  # noqa: E402
from asr.streaming import StreamingRecognizer  # noqa: E402

MENU = ["sales", "billing", "support", "opening hours"]
OUT_OF_GRAMMAR = ["banana", "hello there how are you", "thank you", "cancel", "yes", "seven", "technical",
                  "my account balance", "i want to pay", "report", "filling", "cells"]


def say(msg: str = "") -> None:
    print(msg, flush=True)


def phone_speech(text: str) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-s", "150", "--stdout", text], capture_output=True, check=True).stdout
    ulaw = subprocess.run(["sox", "-t", "wav", "-", "-r", "8000", "-e", "mu-law", "-t", "wav", "-"],
                          input=wav, capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-t", "wav", "-", "-e", "signed", "-b", "16", "-t", "raw", "-"],
                         input=ulaw, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


def line_noise(seconds: float, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 30, int(8000 * seconds)).astype(np.int16)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.2f} ms"


def decoder_costs(config: AsrConfig, n: int) -> None:
    started = time.perf_counter()
    engine = load_engine(config)
    assert isinstance(engine, PocketsphinxEngine)
    say(f"engine load (first decoder, dictionary): {time.perf_counter() - started:.3f} s")
    create, compile_, rss = [], [], []
    keep = []
    for _ in range(n):
        before = rss_kib()
        t = time.perf_counter()
        pooled = engine._new_decoder()
        create.append(time.perf_counter() - t)
        t = time.perf_counter()
        pooled.activate(tuple(MENU))
        compile_.append(time.perf_counter() - t)
        rss.append(rss_kib() - before)
        keep.append(pooled)
    reuse = []
    for _ in range(n * 5):
        t = time.perf_counter()
        open_phrase_session(config, MENU).close()
        reuse.append(time.perf_counter() - t)
    say(f"new Decoder: {median_ms(create)}   RSS per decoder: {statistics.median(rss) / 1024:.1f} MiB")
    say(f"first grammar on a decoder (JSGF compile, {len(jsgf(MENU))} chars): {median_ms(compile_)}")
    say(f"open+close a session on a pooled decoder (validate, re-activate grammar, reset features): "
        f"{median_ms(reuse)}   -> reuse is {statistics.median(create) / statistics.median(reuse):.0f}x cheaper")


def realtime_factor(config: AsrConfig, turns: dict[str, np.ndarray], runs: int) -> dict[str, float]:
    out = {}
    for name, audio in turns.items():
        rtf = []
        for _ in range(runs):
            session = open_phrase_session(config, MENU)
            t = time.process_time()
            for i in range(0, len(audio), 160):
                session.feed(audio[i:i + 160])
            session.close()
            rtf.append(len(audio) / 8000 / max(time.process_time() - t, 1e-9))
        out[name] = statistics.median(rtf)
        say(f"real-time factor, {name} ({len(audio) / 8000:.1f} s, 20 ms chunks): "
            f"{out[name]:.0f}x (audio s per CPU s, median of {runs})")
    return out


async def concurrent(config: AsrConfig, n: int, audio: np.ndarray, stagger: float = 1.0,
                     ) -> tuple[bool, float, int, float, float]:
    """n listeners fed in real time (one 20 ms frame each per tick); listener k's turn starts k/n * ``stagger``
    seconds late (callers do not all stop talking in the same 20 ms; ``stagger=0`` is that worst case).

    ok: nothing dropped, the loop's feeding ticks late by < 100 ms (p99), every result correct. The result
    delay (when PhraseHeard reached the loop, minus the moment the audio up to its ``at`` had been fed) is
    printed, not judged.
    """
    async with StreamingRecognizer(config) as recognizer:
        loop = asyncio.get_running_loop()
        arrivals: list[tuple[float, float]] = []

        def on_event(event: object) -> None:
            if isinstance(event, PhraseHeard):
                arrivals.append((loop.time(), event.at))   # at: seconds into that listener's audio

        listeners = [await recognizer.open(MENU, on_event=on_event) for _ in range(n)]
        # each listener's audio clock starts at ``start``; its speech is shifted by its offset, so ``at`` is too
        offsets = [int(k / n * stagger * 50) for k in range(n)]          # in 20 ms frames
        silence = np.zeros(160, np.int16)
        frames = len(audio) // 160 + max(offsets)
        start = loop.time()
        cpu = time.process_time()
        lateness = []
        for k in range(frames):
            deadline = start + k * 0.02
            lateness.append(loop.time() - deadline)
            for listener, offset in zip(listeners, offsets, strict=True):
                j = k - offset
                listener.feed(audio[j * 160:(j + 1) * 160] if 0 <= j < len(audio) // 160 else silence)
            await asyncio.sleep(max(0.0, deadline + 0.02 - loop.time()))
        wall_end = loop.time()
        finals = 0
        for listener in listeners:
            if listener.result is None:
                await listener.close()
            finals += isinstance(listener.result, PhraseHeard) and listener.result.phrase == "support"
        # result latency: when the PhraseHeard reached the loop, after the frame that ended the utterance was fed
        delay = max((arrived - (start + at) for arrived, at in arrivals), default=float("inf"))
        cpu_share = (time.process_time() - cpu) / (wall_end - start)
        dropped = sum(listener.dropped for listener in listeners)
        late = float(np.percentile(lateness, 99))
        ok = dropped == 0 and late < 0.1 and finals == n
        return ok, cpu_share, dropped, late, delay


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    config = AsrConfig()
    say("== decoder costs")
    decoder_costs(config, 3 if args.quick else 8)
    say("== real-time factor (one session, one thread)")
    speech = phone_speech("support")
    turn = np.concatenate((line_noise(1.0), speech, line_noise(2.0, 2)))
    rtf = realtime_factor(config, {"silent turn": line_noise(5.0), "spoken turn": turn}, 3 if args.quick else 7)
    say(f"-> one core could decode ~{rtf['spoken turn']:.0f} callers speaking at once, "
        f"~{rtf['silent turn']:.0f} silent ones")
    say("== concurrent listeners on one StreamingRecognizer, fed in real time (a 4 s turn, 'support')")
    turn = np.concatenate((line_noise(1.0), speech, line_noise(4.0 - 1.0 - len(speech) / 8000, 3)))
    ok, _, _, _, delay = asyncio.run(concurrent(config, 25, turn, stagger=0.0))
    say(f"  25 listeners ending their utterance in the same 20 ms: worst result delay {delay * 1000:.0f} ms "
        f"({'ok' if ok else 'FAIL'})")
    sustained = 0
    for n in (10, 25, 50, 100, 150, 200):
        ok, cpu_share, dropped, late, delay = asyncio.run(concurrent(config, n, turn))
        say(f"{n:4d} listeners: {'ok  ' if ok else 'FAIL'} process CPU {cpu_share * 100:5.1f}% of one core, "
            f"dropped {dropped} chunks, loop tick lateness p99 {late * 1000:.0f} ms, "
            f"worst result delay {delay * 1000:.0f} ms")
        if not ok:
            break
        sustained = n
    say(f"-> sustained: {sustained} concurrent speech-menu listeners with no drop (one worker, one core)")
    say("== out-of-grammar words (espeak-ng, 8 kHz mu-law)")
    accepted = []
    for word in OUT_OF_GRAMMAR:
        session = open_phrase_session(config, MENU)
        audio = np.concatenate((line_noise(1.0), phone_speech(word), line_noise(1.5)))
        events = [e for i in range(0, len(audio), 160) for e in session.feed(audio[i:i + 160])]
        heard = [e for e in events if isinstance(e, PhraseHeard)]
        if heard and heard[0].phrase is not None:
            accepted.append((word, heard[0].phrase, heard[0].confidence))
    say(f"accepted as a menu phrase: {len(accepted)}/{len(OUT_OF_GRAMMAR)}; "
        f"with confidence >= 0.9: {sum(c >= 0.9 for *_, c in accepted)}: "
        + ", ".join(f"{w!r}->{p!r} {c:.2f}" for w, p, c in accepted))


if __name__ == "__main__":
    main()
