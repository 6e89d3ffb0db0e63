"""Redaction: digit sequences that look like card or account numbers, masked in transcripts, with the time
intervals to silence in each speaker's audio (recordings.redact.silence makes the redacted copy).

A *run* is a speaker's digits in a row, written ("4512", "4512-3456") or spoken ("four five one two", "oh" and
"zero" for 0, "double five" for 55, "triple oh" for 000, "twenty three" for 23, "fifteen" for 15), across
utterance boundaries of that speaker as long as consecutive digits are at most ``max_gap_s`` apart; "uh",
"um", "dash" and the like between digits do not break a run. A run is masked whole, as

* **card** when its 13..19 digits pass the Luhn check, or, in a longer run, a stretch of whole tokens with
  13..19 digits does (the rest of the run goes too: an expiry date or a security code read along with it);
* **account** when it has ``account_min``..``account_max`` digits (6..12 by default);
* **long** when it has more digits than that and no card (``mask_long``, on by default: one misrecognized
  digit breaks a card's Luhn check, and the number must not leak for it).

Masked tokens keep their punctuation and separators, each digit becoming ``#`` ("4512-3456" -> "####-####";
a spoken digit word -> "#", "twenty" -> "##"). Intervals run from the first masked word's start to the last's
end, widened by ``pad_s`` and merged per speaker. Shorter runs (prices, counts, dates) stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from asr.rules import normalize
from asr.transcript import SPEAKERS, Speaker, Transcript, Utterance

Kind = Literal["card", "account", "long"]

UNITS = {"zero": "0", "oh": "0", "o": "0", "nought": "0", "nil": "0", "one": "1", "two": "2", "three": "3",
         "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15",
         "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19"}
TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7", "eighty": "8",
        "ninety": "9"}
REPEATS = {"double": 2, "triple": 3}
FILLERS = frozenset({"uh", "um", "er", "erm", "ah", "hmm", "dash", "hyphen", "space"})
_WRITTEN = re.compile(r"\d(?:[\d\-]*\d)?")


@dataclass(frozen=True, slots=True)
class RedactPolicy:
    account_min: int = 6
    account_max: int = 12
    card_min: int = 13
    card_max: int = 19
    mask_long: bool = True
    max_gap_s: float = 2.5          # seconds between two digits of one run, at most
    pad_s: float = 0.2              # silence this much before and after
    mask: str = "#"

    def __post_init__(self) -> None:
        if not 1 <= self.account_min <= self.account_max:
            raise ValueError(f"account lengths {self.account_min}..{self.account_max}: need 1 <= min <= max")
        if not 1 <= self.card_min <= self.card_max:
            raise ValueError(f"card lengths {self.card_min}..{self.card_max}: need 1 <= min <= max")
        if self.max_gap_s < 0 or self.pad_s < 0 or len(self.mask) != 1:
            raise ValueError("max_gap_s and pad_s must be >= 0 and mask one character")


@dataclass(frozen=True, slots=True)
class Span:
    speaker: Speaker
    start: float
    end: float
    kind: Kind
    digits: int                     # how many digits were masked


@dataclass(frozen=True, slots=True)
class Redaction:
    transcript: Transcript
    intervals: dict[Speaker, list[tuple[float, float]]]
    spans: tuple[Span, ...]


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a card number's digits."""
    if not digits.isdigit():
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass(slots=True)
class _Tok:
    utt: int                        # index of its utterance (-1: free text)
    pos: int                        # index of the token in the utterance's text/words
    raw: str
    start: float
    end: float
    digits: str = ""
    digit: bool = False             # part of a number (digits, or "double" before a digit)
    filler: bool = False


def _classify(toks: list[_Tok]) -> None:
    """Set each token's digits (with one token of look-ahead for "twenty three" and "double five")."""
    words = [normalize(t.raw) for t in toks]
    for i, (t, w) in enumerate(zip(toks, words, strict=True)):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if _WRITTEN.fullmatch(w):
            t.digits, t.digit = re.sub(r"\D", "", w), True
        elif w in UNITS:
            t.digits, t.digit = UNITS[w], True
        elif w in TEENS:
            t.digits, t.digit = TEENS[w], True
        elif w in TENS:
            t.digits, t.digit = TENS[w] + ("" if nxt in UNITS and UNITS[nxt] != "0" else "0"), True
        elif w in REPEATS and (nxt in UNITS or _WRITTEN.fullmatch(nxt)):
            t.digit = True
        else:
            t.filler = w in FILLERS
    for i, t in enumerate(toks):
        if i and words[i - 1] in REPEATS and toks[i - 1].digit and t.digits:
            t.digits = t.digits[0] * (REPEATS[words[i - 1]] - 1) + t.digits


def _runs(toks: list[_Tok], max_gap_s: float) -> list[list[_Tok]]:
    runs: list[list[_Tok]] = []
    run: list[_Tok] = []
    pending: list[_Tok] = []
    for t in toks:
        if t.digit:
            if run and t.start - run[-1].end > max_gap_s:
                runs.append(run)
                run, pending = [], []
            run += pending + [t]
            pending = []
        elif t.filler and run:
            pending.append(t)
        else:
            if run:
                runs.append(run)
            run, pending = [], []
    if run:
        runs.append(run)
    return runs


def _kind(run: list[_Tok], p: RedactPolicy) -> Kind | None:
    """What a run of digit tokens is: a card when its digits pass Luhn, or (a run longer than a card) when a
    stretch of its whole tokens with card_min..card_max digits does: the whole run is masked then."""
    digits = [t.digits for t in run]
    n = sum(len(d) for d in digits)
    if n < p.card_min:
        return "account" if p.account_min <= n <= p.account_max else None
    if n <= p.card_max and luhn_ok("".join(digits)):
        return "card"
    for i in range(len(run) if n > p.card_max else 0):     # longer: a card inside, with more digits read along
        s = ""
        for j in range(i, len(run)):
            s += digits[j]
            if len(s) > p.card_max:
                break
            if len(s) >= p.card_min and luhn_ok(s):
                return "card"
    if p.account_min <= n <= p.account_max:
        return "account"
    return "long" if p.mask_long else None


def _mask_token(raw: str, tok: _Tok, mask: str) -> str:
    if any(c.isdigit() for c in raw):
        return re.sub(r"\d", mask, raw)
    core = normalize(raw)
    n = max(1, len(tok.digits))
    return raw.replace(core, mask * n, 1) if core and core in raw.lower() else mask * n


def _mark(toks: list[_Tok], p: RedactPolicy) -> tuple[list[tuple[_Tok, _Tok, Kind, int]], set[int]]:
    """The masked stretches (first token, last token, kind, digits) and the ids of every masked token."""
    _classify(toks)
    found: list[tuple[_Tok, _Tok, Kind, int]] = []
    masked: set[int] = set()
    for run in _runs(toks, p.max_gap_s):
        dig = [t for t in run if t.digit]
        kind = _kind(dig, p)
        if kind is not None:
            found.append((dig[0], dig[-1], kind, sum(len(t.digits) for t in dig)))
            masked.update(id(t) for t in dig)
    return found, masked


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def redact(transcript: Transcript, policy: RedactPolicy | None = None) -> Redaction:
    """The transcript with card and account numbers masked, the intervals to silence, what was masked."""
    p = policy or RedactPolicy()
    duration = transcript.duration_s or max((u.end for u in transcript.utterances), default=0.0)
    utts = list(transcript.utterances)
    by_utt: dict[int, list[_Tok]] = {}
    spans: list[Span] = []
    intervals: dict[Speaker, list[tuple[float, float]]] = {}
    for speaker in SPEAKERS:
        toks: list[_Tok] = []
        for ui, u in enumerate(utts):
            if u.speaker != speaker:
                continue
            if u.words:
                toks += [_Tok(ui, wi, w.word, w.start, w.end) for wi, w in enumerate(u.words)]
            else:
                parts = u.text.split()
                step = (u.end - u.start) / len(parts) if parts else 0.0
                toks += [_Tok(ui, i, w, u.start + i * step, u.start + (i + 1) * step) for i, w in enumerate(parts)]
        toks.sort(key=lambda t: (t.start, t.utt, t.pos))
        found, masked = _mark(toks, p)
        for first, last, kind, n in found:
            spans.append(Span(speaker, first.start, last.end, kind, n))
            lo, hi = max(0.0, first.start - p.pad_s), last.end + p.pad_s
            intervals.setdefault(speaker, []).append((lo, min(duration, hi) if duration else hi))
        for t in toks:
            if id(t) in masked:
                by_utt.setdefault(t.utt, []).append(t)
    for ui, masked_toks in by_utt.items():
        utts[ui] = _rewrite(utts[ui], masked_toks, p.mask)
    spans.sort(key=lambda s: s.start)
    merged = {sp: _merge(v) for sp, v in intervals.items()}
    return Redaction(replace(transcript, utterances=tuple(utts)), merged, tuple(spans))


def _rewrite(u: Utterance, toks: list[_Tok], mask: str) -> Utterance:
    at = {t.pos: t for t in toks}
    parts = u.text.split()
    if not u.words:
        return replace(u, text=" ".join(_mask_token(w, at[i], mask) if i in at else w for i, w in enumerate(parts)))
    words = tuple(replace(w, word=_mask_token(w.word, at[i], mask)) if i in at else w for i, w in enumerate(u.words))
    if len(parts) == len(u.words):
        text = " ".join(_mask_token(w, at[i], mask) if i in at else w for i, w in enumerate(parts))
    else:
        text = " ".join(w.word for w in words)
    return replace(u, text=text, words=words)


def redact_text(text: str, policy: RedactPolicy | None = None) -> str:
    """Free text (a note, a search result) with its card and account numbers masked (no times: no gap rule)."""
    p = replace(policy or RedactPolicy(), max_gap_s=float("inf"))
    found = list(re.finditer(r"\S+", text))
    toks = [_Tok(-1, i, m.group(), float(i), float(i) + 1) for i, m in enumerate(found)]
    _, masked = _mark(toks, p)
    out, at = [], 0
    for m, t in zip(found, toks, strict=True):
        out += [text[at: m.start()], _mask_token(t.raw, t, p.mask) if id(t) in masked else t.raw]
        at = m.end()
    return "".join(out) + text[at:]


def mask_count(r: Redaction) -> int:
    """How many digits were masked."""
    return sum(s.digits for s in r.spans)


__all__: Sequence[str] = ("RedactPolicy", "Redaction", "Span", "luhn_ok", "redact", "redact_text", "mask_count")
