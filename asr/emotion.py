"""Emotion per speaker and per quarter of a call: a lexicon score on the words plus prosody from the audio.

For each speaker and each quarter of the call (by word midpoints and utterance times):

* ``lexicon`` = S / sqrt(S^2 + 15), in (-1, 1), where S sums the valences (-3..3, :data:`LEXICON`) of the
  quarter's words; a negator (``not``, ``never``, ``don't``...) up to 3 words before a word multiplies its
  valence by -0.75 ("not happy" is negative, "not bad" mildly positive); an intensifier (``very``, ``so``...)
  right before it multiplies it by 1.3. (The normalization is VADER's.)
* prosody within the speaker's utterances in that quarter, from the speaker's own channel (asr/prosody.py):
  ``pitch_hz`` (median F0), ``energy_db``, and ``rate_wps`` (words per second of speech, from the transcript).
* ``arousal`` = the mean of the available terms, each relative to the speaker's own first quarter with speech
  (the baseline; its own arousal is 0): clip((pitch/base - 1) / 0.25), clip((energy - base) / 6 dB),
  clip((rate/base - 1) / 0.30), each clipped to [-1, 1]. So +25% pitch, +6 dB or +30% speaking rate is 1.
* ``score`` = clip(lexicon - 0.6 * max(arousal, 0) * (1 - lexicon) / 2, -1, 1): a calmer-than-baseline quarter
  scores its words; an agitated one is pulled down, the more so the more negative its words already are
  (arousal alone, with neutral words, at most -0.3).

``ends_angry(rows)``: the customer's last quarter with speech, if it is the third or the fourth, scores at or
below :data:`ANGRY_SCORE` (-0.5).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.exceptions import BadAudio
from asr.prosody import Pcm, measure, read_wav
from asr.rules import normalize
from asr.transcript import SPEAKERS, Speaker, Transcript

log = logging.getLogger("asr.emotion")

ANGRY_SCORE = -0.5
AROUSAL_WEIGHT = 0.6
NEGATION_FACTOR = -0.75
INTENSIFIER_FACTOR = 1.3
NEGATION_REACH = 3            # words after a negator that it flips
VADER_ALPHA = 15.0

# A small English valence lexicon for contact-center speech, -3 (very negative) .. 3 (very positive).
LEXICON: dict[str, float] = {
    # negative
    "angry": -3, "furious": -3, "outraged": -3, "hate": -3, "horrible": -3, "terrible": -3, "awful": -3,
    "disgusting": -3, "worst": -3, "useless": -2.5, "pathetic": -2.5, "ridiculous": -2.5, "unacceptable": -2.5,
    "disgraceful": -2.5, "incompetent": -2.5, "scam": -2.5, "fraud": -2.5, "liar": -2.5, "lied": -2.5,
    "lying": -2.5, "rude": -2, "mad": -2, "upset": -2, "annoyed": -2, "annoying": -2, "frustrated": -2,
    "frustrating": -2, "disappointed": -2, "disappointing": -2, "unhappy": -2, "sick": -1.5, "tired": -1,
    "fed": -1, "bad": -2, "poor": -1.5, "wrong": -1.5, "broken": -1.5, "fail": -1.5, "failed": -1.5,
    "failure": -2, "problem": -1, "problems": -1, "issue": -0.5, "issues": -0.5, "complaint": -1.5,
    "complain": -1.5, "never": -0.5, "nobody": -1, "nothing": -0.5, "waste": -2, "wasted": -2, "waiting": -0.5,
    "delay": -1, "delayed": -1, "late": -1, "overcharged": -2, "charged": -0.5, "unfair": -2, "stupid": -2.5,
    "crap": -2.5, "damn": -2, "hell": -2, "sucks": -2.5, "shame": -1.5, "sorry": -0.5, "worried": -1.5,
    "confused": -1, "confusing": -1, "lost": -1, "cancel": -1, "cancelling": -1, "canceling": -1, "leave": -0.5,
    "lawyer": -1.5, "sue": -2, "ignored": -2, "hung": -1, "unbelievable": -1.5, "joke": -1, "nightmare": -2.5,
    "hopeless": -2.5, "impossible": -1.5, "difficult": -1, "slow": -1, "mess": -2, "messed": -2,
    # positive
    "good": 2, "great": 3, "excellent": 3, "perfect": 3, "wonderful": 3, "fantastic": 3, "amazing": 3,
    "awesome": 3, "brilliant": 3, "love": 3, "lovely": 2.5, "happy": 2.5, "glad": 2, "pleased": 2,
    "satisfied": 2, "thanks": 2, "thank": 2, "appreciate": 2, "appreciated": 2, "helpful": 2, "help": 1,
    "helped": 1.5, "nice": 2, "kind": 2, "fine": 1, "okay": 0.5, "ok": 0.5, "sure": 0.5, "yes": 0.5,
    "resolved": 2, "solved": 2, "fixed": 1.5, "works": 1, "working": 0.5, "easy": 1.5, "quick": 1,
    "quickly": 1, "fast": 1, "friendly": 2, "polite": 2, "welcome": 1.5, "pleasure": 2, "best": 2.5,
    "better": 1.5, "right": 0.5, "correct": 1, "clear": 1, "understand": 0.5, "understood": 1,
    "absolutely": 1, "wow": 1.5, "relieved": 2, "calm": 1, "patient": 1.5,
}
NEGATORS = frozenset({
    "not", "no", "never", "don't", "doesn't", "didn't", "isn't", "wasn't", "aren't", "weren't", "won't",
    "wouldn't", "can't", "cannot", "couldn't", "shouldn't", "haven't", "hasn't", "hadn't", "nor", "neither",
    "without", "dont", "doesnt", "didnt", "isnt", "wasnt", "cant", "wont",
})
INTENSIFIERS = frozenset({
    "very", "really", "so", "extremely", "totally", "completely", "absolutely", "incredibly", "truly", "too",
    "utterly", "super", "seriously",
})


@dataclass(frozen=True, slots=True)
class EmotionRow:
    speaker: Speaker
    quarter: int                # 1..4
    lexicon: float              # -1..1 from the words
    pitch_hz: float             # 0: not measured (no audio or no voiced speech)
    energy_db: float            # 0: not measured
    rate_wps: float             # 0: no speech
    score: float                # combined -1..1
    arousal: float = 0.0        # -1..1 relative to the speaker's baseline quarter
    words: int = 0
    speech_s: float = 0.0


def valence_sum(words: Sequence[str]) -> float:
    """S: the summed valence of ``words`` with negation and intensifiers applied."""
    total, last_negator, boost = 0.0, -NEGATION_REACH - 1, 1.0
    for i, raw in enumerate(words):
        w = normalize(raw)
        if w in NEGATORS:
            last_negator = i
            if w not in LEXICON:
                continue
        if w in INTENSIFIERS and w not in LEXICON:
            boost = INTENSIFIER_FACTOR
            continue
        v = LEXICON.get(w, 0.0)
        if v:
            if 0 < i - last_negator <= NEGATION_REACH:
                v *= NEGATION_FACTOR
            total += v * boost
        boost = 1.0
    return total


def lexicon_score(words: Sequence[str]) -> float:
    """S / sqrt(S^2 + 15): -1..1 (0 for no sentiment words)."""
    s = valence_sum(words)
    return s / math.sqrt(s * s + VADER_ALPHA)


def _clip(x: float) -> float:
    return max(-1.0, min(1.0, x))


def _quarter_spans(duration: float, q: int) -> tuple[float, float]:
    return duration * (q - 1) / 4, duration * q / 4


def _in_quarter(t: float, lo: float, hi: float, q: int) -> bool:
    return lo <= t < hi or (q == 4 and t >= hi) or (q == 1 and t < lo)


def _channel(paths: Mapping[Speaker, Path] | None, speaker: Speaker) -> Pcm | None:
    """The speaker's audio: a mono file, or its side of a stereo one (left customer, right agent)."""
    if not paths or speaker not in paths:
        return None
    try:
        return read_wav(Path(paths[speaker]), channel=SPEAKERS.index(speaker))
    except BadAudio as exc:
        log.warning("emotion: no prosody for the %s: %s", speaker, exc)
        return None


def emotion(transcript: Transcript, channels: Mapping[Speaker, Path] | None = None, *,
            offsets: Mapping[Speaker, float] | None = None) -> list[EmotionRow]:
    """Eight rows (two speakers x four quarters). ``channels``: each speaker's audio (a missing or unreadable
    file gives 0 pitch and energy); ``offsets``: where a channel's file starts in the call (the agent's leg
    starts late), so transcript time t is file time t - offset."""
    duration = transcript.duration_s or max((u.end for u in transcript.utterances), default=0.0)
    rows: list[EmotionRow] = []
    for speaker in SPEAKERS:
        pcm = _channel(channels, speaker)
        offset = (offsets or {}).get(speaker, 0.0)
        words = [w for sp, w in transcript.words(speaker)]
        utts = [u for u in transcript.utterances if u.speaker == speaker]
        raw: list[tuple[float, float, float, float, int, float]] = []
        for q in range(1, 5):
            lo, hi = _quarter_spans(duration, q)
            qwords = [w.word for w in words if _in_quarter((w.start + w.end) / 2, lo, hi, q)]
            if not words:   # utterances without word times: by utterance midpoint
                qwords = [t for u in utts if _in_quarter((u.start + u.end) / 2, lo, hi, q) for t in u.text.split()]
            spans = [(max(lo, u.start), min(hi, u.end)) for u in utts if u.end > lo and u.start < hi]
            spans = [(s, e) for s, e in spans if e > s]
            speech = sum(e - s for s, e in spans)
            rate = len(qwords) / speech if speech > 0 and qwords else 0.0
            pitch = energy = 0.0
            if pcm is not None and spans:
                p = measure(pcm, [(s - offset, e - offset) for s, e in spans])
                pitch, energy = p.pitch_hz, p.energy_db
            raw.append((lexicon_score(qwords), pitch, energy, rate, len(qwords), speech))
        base = next((r for r in raw if r[5] > 0), None)
        for q, (lex, pitch, energy, rate, n, speech) in enumerate(raw, 1):
            terms = []
            if base is not None and speech > 0:
                if pitch > 0 and base[1] > 0:
                    terms.append(_clip((pitch / base[1] - 1) / 0.25))
                if energy > 0 and base[2] > 0:
                    terms.append(_clip((energy - base[2]) / 6.0))
                if rate > 0 and base[3] > 0:
                    terms.append(_clip((rate / base[3] - 1) / 0.30))
            arousal = sum(terms) / len(terms) if terms else 0.0
            score = _clip(lex - AROUSAL_WEIGHT * max(arousal, 0.0) * (1 - lex) / 2)
            rows.append(EmotionRow(speaker, q, round(lex, 4), round(pitch, 2), round(energy, 2), round(rate, 3),
                                   round(score, 4), round(arousal, 4), n, round(speech, 3)))
    return rows


def ends_angry(rows: Sequence[EmotionRow]) -> bool:
    """The customer's last quarter with speech is the 3rd or 4th and scores <= ANGRY_SCORE."""
    spoken = [r for r in rows if r.speaker == "customer" and (r.words or r.speech_s > 0)]
    if not spoken:
        return False
    last = max(spoken, key=lambda r: r.quarter)
    return last.quarter >= 3 and last.score <= ANGRY_SCORE
