"""Post-call analytics on one transcript: keyword hits, QA item scores, emotion, redaction, in one call.

``analyze`` ties asr/rules.py, asr/scorecard.py, asr/emotion.py and asr/redact.py together. When keyword
spotting is available (asr/spotting.py, pocketsphinx over the audio) and no ``spotted`` list is given, the rule
phrases are spotted in each speaker's channel first, so a rule does not depend on free transcription alone; a
channel that cannot be spotted (missing file, words the engine does not know) is logged and skipped.
Rules, scorecards and emotion see the original words; ``redacted`` is what gets stored and shown.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr.emotion import EmotionRow, emotion, ends_angry
from asr.exceptions import AsrError, UnknownWords
from asr.redact import RedactPolicy, Span, redact
from asr.rules import Hit, RuleSet, SpottedLike
from asr.scorecard import ItemScore, Scorecard, score
from asr.transcript import SPEAKERS, Speaker, Transcript

log = logging.getLogger("asr.analysis")


@dataclass(frozen=True, slots=True)
class Analysis:
    hits: list[Hit]
    scores: list[ItemScore]
    emotion: list[EmotionRow]
    ends_angry: bool
    redacted: Transcript
    redact_intervals: dict[Speaker, list[tuple[float, float]]]
    redact_spans: tuple[Span, ...] = ()
    spotted: list[Any] = field(default_factory=list)     # what keyword spotting found (asr.spotting.Spotted)
    notes: list[str] = field(default_factory=list)       # what could not be done (spotting unavailable...)


def _spotting() -> Any | None:
    """asr.spotting if it is installed in this tree (written separately), else None."""
    if importlib.util.find_spec("asr.spotting") is None:
        return None
    return importlib.import_module("asr.spotting")


def spot_channels(channels: Mapping[Speaker, Path], phrases: Sequence[str], *,
                  offsets: Mapping[Speaker, float] | None = None,
                  notes: list[str] | None = None) -> list[Any] | None:
    """Keyword-spot ``phrases`` in each speaker's channel; None when spotting is not available."""
    mod = _spotting()
    if mod is None:
        if notes is not None:
            notes.append("keyword spotting unavailable (no asr.spotting): rules ran on the transcript only")
        return None
    found: list[Any] = []
    if not phrases:
        return found
    for speaker in SPEAKERS:
        path = channels.get(speaker)
        if path is None:
            continue
        if not Path(path).is_file():
            msg = f"spotting skipped for the {speaker}: {path} does not exist"
            log.warning(msg)
            if notes is not None:
                notes.append(msg)
            continue
        todo = list(phrases)
        strict = spotting_thresholds(todo, mod.DEFAULT_THRESHOLD)
        try:
            try:
                found += mod.spot(Path(path), todo, speaker=speaker, offset_s=(offsets or {}).get(speaker, 0.0),
                                  thresholds=strict)
            except UnknownWords as exc:     # spot the phrases the engine knows, once more
                unknown = set(exc.words)
                todo = [p for p in todo if not unknown & set(p.split())]
                msg = f"spotting for the {speaker}: {len(phrases) - len(todo)} phrases left out ({exc})"
                log.info(msg)
                if notes is not None:
                    notes.append(msg)
                if todo:
                    found += mod.spot(Path(path), todo, speaker=speaker, offset_s=(offsets or {}).get(speaker, 0.0),
                                      thresholds=strict)
        except AsrError as exc:
            msg = f"spotting failed for the {speaker} ({path}): {exc}"
            log.warning(msg)
            if notes is not None:
                notes.append(msg)
    return found


def analyze(transcript: Transcript, channels: Mapping[Speaker, Path], *, rules: RuleSet,
            scorecards: Sequence[Scorecard], spotted: Sequence[SpottedLike] | None = None,
            offsets: Mapping[Speaker, float] | None = None, redact_policy: RedactPolicy | None = None) -> Analysis:
    """Everything the QA page and the reports need about one call.

    ``channels``: each speaker's audio (a stereo file may be given for both: left customer, right agent);
    ``spotted``: keyword-spotting results to use (None: spot now if asr.spotting exists; ``[]``: none);
    ``offsets``: where each channel's file starts in the call's timeline (seconds; default 0).
    """
    notes: list[str] = []
    if spotted is None:
        spotted = spot_channels(channels, rules.phrases(), offsets=offsets, notes=notes) or []
    hits = rules.evaluate(transcript, spotted)
    scores = score(transcript, hits, scorecards)
    rows = emotion(transcript, channels, offsets=offsets)
    red = redact(transcript, redact_policy)
    return Analysis(hits=hits, scores=scores, emotion=rows, ends_angry=ends_angry(rows), redacted=red.transcript,
                    redact_intervals=red.intervals, redact_spans=red.spans, spotted=list(spotted), notes=notes)


SINGLE_WORD_MARGIN = 1.5  # single words need a ratio this much better than phrases to count (see below)


def spotting_thresholds(phrases: Sequence[str], default: float) -> dict[str, float]:
    """Per-phrase spotting thresholds: a single word is held to a stricter one than a phrase.

    A short word ("damn", "idiot") matches some stretch of almost any minute of speech: with the
    default threshold the single words of config/keywords.yaml fired several times per call on a
    human prompt that says none of them (and, winning the search there, hid a real phrase nearby).
    Phrases of two words or more keep the engine's default (docs/analytics.md)."""
    return {p: (default + SINGLE_WORD_MARGIN if len(p.split()) < 2 else default) for p in phrases}

