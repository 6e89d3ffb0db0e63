"""Word error rate and word alignment of a recognizer's output against a reference text.

    r = wer("Please enter your password.", "please get your password")
    r.wer == 0.25; r.substitutions == 1; [op.kind for op in r.alignment] == ["ok", "sub", "ok", "ok"]

``normalize`` lower-cases, spells out numbers (0-99 as words, longer digit strings digit by digit),
splits hyphenated words and drops punctuation other than apostrophes inside words, so a prompt's written text
("Press 1", "Call-Forward") compares with what a recognizer outputs ("press one", "call forward").
The alignment is the Levenshtein one (substitution, deletion and insertion each cost 1; ties prefer a
substitution, then a deletion), so WER = (S + D + I) / N over the reference's N words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def _number(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    return [_ONES[int(d)] for d in str(n)]              # longer numbers are read digit by digit


def normalize(text: str) -> list[str]:
    """The words of ``text`` as a recognizer would spell them."""
    out: list[str] = []
    for token in _TOKEN.findall(text.lower().replace("-", " ")):
        if token.isdigit():
            out += _number(int(token)) if len(token) <= 2 else [_ONES[int(d)] for d in token]
        else:
            out.append(token)
    return out


@dataclass(frozen=True, slots=True)
class AlignOp:
    kind: Literal["ok", "sub", "del", "ins"]
    ref: str | None                 # None for an insertion
    hyp: str | None                 # None for a deletion


@dataclass(frozen=True, slots=True)
class WerResult:
    ref_words: int
    substitutions: int
    deletions: int
    insertions: int
    alignment: tuple[AlignOp, ...]

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors per reference word (can exceed 1 with many insertions); 0.0 for two empty texts."""
        if self.ref_words == 0:
            return 0.0 if self.insertions == 0 else float(self.insertions)
        return self.errors / self.ref_words


def align(ref: Sequence[str], hyp: Sequence[str]) -> tuple[AlignOp, ...]:
    """The minimum-edit alignment of two word sequences."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i
    for j in range(1, m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        row, prev, r = cost[i], cost[i - 1], ref[i - 1]
        for j in range(1, m + 1):
            row[j] = min(prev[j - 1] + (r != hyp[j - 1]), prev[j] + 1, row[j - 1] + 1)
    ops: list[AlignOp] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops.append(AlignOp("ok" if ref[i - 1] == hyp[j - 1] else "sub", ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            ops.append(AlignOp("del", ref[i - 1], None))
            i -= 1
        else:
            ops.append(AlignOp("ins", None, hyp[j - 1]))
            j -= 1
    ops.reverse()
    return tuple(ops)


def wer(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> WerResult:
    """WER of ``hypothesis`` against ``reference`` (texts are normalized; word lists are taken as they are)."""
    ref = normalize(reference) if isinstance(reference, str) else list(reference)
    hyp = normalize(hypothesis) if isinstance(hypothesis, str) else list(hypothesis)
    ops = align(ref, hyp)
    return WerResult(ref_words=len(ref), substitutions=sum(o.kind == "sub" for o in ops),
                     deletions=sum(o.kind == "del" for o in ops), insertions=sum(o.kind == "ins" for o in ops),
                     alignment=ops)


def corpus_wer(results: Iterable[WerResult]) -> float:
    """Total errors over total reference words (the usual corpus WER, not a mean of per-file rates)."""
    errors = words = 0
    for r in results:
        errors += r.errors
        words += r.ref_words
    return errors / words if words else 0.0


def format_alignment(ops: Sequence[AlignOp]) -> str:
    """Two aligned lines, reference above hypothesis, errors in upper case, gaps as ``*``."""
    top, bottom = [], []
    for op in ops:
        r, h = op.ref or "*", op.hyp or "*"
        if op.kind != "ok":
            r, h = r.upper(), h.upper()
        width = max(len(r), len(h))
        top.append(r.ljust(width))
        bottom.append(h.ljust(width))
    return "REF: " + " ".join(top) + "\nHYP: " + " ".join(bottom)
