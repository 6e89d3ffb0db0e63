"""A call's transcript: utterances per speaker with words, times and confidences; JSON and WebVTT.

Produced by asr/transcribe.py (each channel of a call transcribed on its own, split into
utterances by voice-activity detection), read by the keyword rules, the scorecards, the QA page.
Times are seconds from the start of the call's recording.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Speaker = Literal["customer", "agent"]
SPEAKERS: tuple[Speaker, ...] = ("customer", "agent")


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float                   # 0..1


@dataclass(frozen=True, slots=True)
class Utterance:
    speaker: Speaker
    start: float
    end: float
    text: str
    confidence: float                   # 0..1: the mean of its words'
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class Transcript:
    call_id: str                        # "" for a file transcribed outside a call
    duration_s: float
    engine: str                         # pocketsphinx | vosk
    model: str = ""
    language: str = "en"
    utterances: tuple[Utterance, ...] = ()   # in order of start
    channels: dict[str, str] = field(default_factory=dict)  # speaker -> source file (as given)

    @property
    def text(self) -> str:
        return " ".join(u.text for u in self.utterances if u.text)

    def words(self, speaker: Speaker | None = None) -> list[tuple[Speaker, Word]]:
        """Every word in time order (optionally of one speaker)."""
        out = [(u.speaker, w) for u in self.utterances for w in u.words if speaker is None or u.speaker == speaker]
        out.sort(key=lambda sw: sw[1].start)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transcript:
        utts = tuple(
            Utterance(speaker=u["speaker"], start=float(u["start"]), end=float(u["end"]), text=u["text"],
                      confidence=float(u.get("confidence", 0.0)),
                      words=tuple(Word(w["word"], float(w["start"]), float(w["end"]), float(w.get("confidence", 0.0)))
                                  for w in u.get("words", ())))
            for u in d.get("utterances", ())
        )
        return cls(call_id=d.get("call_id", ""), duration_s=float(d.get("duration_s", 0.0)), engine=d["engine"],
                   model=d.get("model", ""), language=d.get("language", "en"), utterances=utts,
                   channels=dict(d.get("channels", {})))

    @classmethod
    def from_json(cls, text: str) -> Transcript:
        return cls.from_dict(json.loads(text))

    def to_vtt(self) -> str:
        """WebVTT with one cue per utterance and the speaker as a voice span (<v customer>)."""
        lines = ["WEBVTT", ""]
        for i, u in enumerate(self.utterances, 1):
            lines += [str(i), f"{_ts(u.start)} --> {_ts(max(u.end, u.start + 0.001))}",
                      f"<v {u.speaker}>{_vtt_text(u.text)}", ""]
        return "\n".join(lines)


def _ts(seconds: float) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "->")
