"""QA scorecards (asr/scorecard.py) on crafted transcripts, and asr.analysis.analyze tying everything together."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from asr.analysis import analyze
from asr.rules import load_rules, parse_rules
from asr.scorecard import (
    ItemScore,
    ScorecardError,
    load_scorecards,
    measure,
    override,
    parse_scorecards,
    score,
    total,
    totals,
)
from asr.transcript import Speaker, Transcript, Utterance, Word

CONFIG = Path(__file__).parents[2] / "config"


def utt(speaker: Speaker, start: float, end: float, text: str) -> Utterance:
    parts = text.split()
    step = (end - start) / max(1, len(parts))
    words = tuple(Word(w, start + i * step, start + (i + 1) * step, 0.9) for i, w in enumerate(parts))
    return Utterance(speaker, start, end, text, 0.9, words)


def call(*utts: Utterance, duration: float) -> Transcript:
    return Transcript("c1", duration, "pocketsphinx", utterances=tuple(sorted(utts, key=lambda u: u.start)))


RULES = parse_rules("""rules:
  - {name: greeting, speaker: agent, phrases: [thank you for calling]}
  - {name: disclosure, speaker: agent, phrases: [this call may be recorded]}
  - {name: forbidden, speaker: agent, phrases: [damn, whatever]}
""", "r.yaml")

CARD = parse_scorecards("""scorecards:
  - name: basic
    pass_mark: 0.8
    items:
      - {name: greeting, weight: 2, rule: greeting, first_s: 15}
      - {name: disclosure, weight: 3, rule: disclosure}
      - {name: clean, weight: 3, absent: forbidden}
      - {name: talk, measure: agent_talk_ratio, min: 0.3, max: 0.7}
      - {name: silence, measure: silence_ratio, max: 0.25}
      - {name: overtalk, measure: overtalk_ratio, max: 0.05}
      - {name: empathy, weight: 2, manual: true}
""", "s.yaml", RULES)


def good_call() -> Transcript:
    return call(utt("agent", 1, 5, "thank you for calling this call may be recorded"),
                utt("customer", 5, 12, "hi my internet is down since yesterday"),
                utt("agent", 12, 18, "sorry to hear that let me check"),
                utt("customer", 18, 22, "thanks"),
                utt("agent", 22, 28, "it is fixed now"),
                duration=30)


def by_item(items: list[ItemScore]) -> dict[str, ItemScore]:
    return {i.item: i for i in items}


def test_measures_from_utterance_times() -> None:
    t = call(utt("agent", 0, 10, "a"), utt("customer", 8, 20, "b"), utt("agent", 30, 35, "c"),
             utt("agent", 34, 36, "d"), duration=50)
    m = measure(t)
    assert m.agent_talk_s == pytest.approx(10 + 6)           # 0-10 and the union 30-36
    assert m.customer_talk_s == pytest.approx(12)
    assert m.overtalk_s == pytest.approx(2)                  # 8-10
    assert m.silence_s == pytest.approx(50 - 20 - 6)         # 20-30 and 36-50
    assert m.longest_silence_s == pytest.approx(14)
    assert m.value("agent_talk_ratio") == pytest.approx(16 / 28)
    assert m.value("overtalk_ratio") == pytest.approx(2 / 50)
    assert measure(call(duration=0)).value("silence_ratio") is None


def test_a_good_call_scores_every_automatic_item() -> None:
    items = by_item(score(good_call(), RULES.evaluate(good_call()), CARD))
    assert {k: v.auto_score for k, v in items.items()} == {
        "greeting": 1, "disclosure": 1, "clean": 1, "talk": 1, "silence": 1, "overtalk": 1, "empathy": None}
    assert items["greeting"].evidence == ("'greeting' at 0:01.0 by the agent: \"thank you for calling\" "
                                          "(in the first 15 s)")
    assert items["clean"].evidence == "no 'forbidden' hit"
    assert items["talk"].evidence == "agent_talk_ratio 59% (within 30% to 70%)"      # 16 s of 27 s
    assert items["empathy"].evidence == "scored by a reviewer"
    assert items["greeting"].weight == 2 and items["greeting"].scorecard == "basic"
    assert total(list(items.values())) == pytest.approx(1.0)          # the manual item does not count yet


def test_a_bad_call_fails_items_with_evidence() -> None:
    t = call(utt("agent", 16, 20, "thank you for calling"),                   # greeting too late
             utt("customer", 17, 40, "my internet is down and nobody helps me at all this is bad"),
             utt("agent", 41, 45, "whatever I said damn"),                    # two forbidden words
             duration=100)                                                    # mostly silence
    items = by_item(score(t, RULES.evaluate(t), CARD))
    assert items["greeting"].auto_score == 0 and items["greeting"].evidence == "no 'greeting' hit (in the first 15 s)"
    assert items["disclosure"].auto_score == 0
    assert items["clean"].auto_score == 0
    assert items["clean"].evidence == "'forbidden' at 0:41.0 by the agent: \"whatever\" (+1 more)"
    assert items["talk"].auto_score == 0 and "outside" in items["talk"].evidence     # 8 s of 31 s: 26%
    assert items["silence"].auto_score == 0 and items["silence"].evidence == "silence_ratio 72% (outside at most 25%)"
    assert items["overtalk"].auto_score == 1                                       # 3 s of 100 s
    assert total(list(items.values())) == pytest.approx(1 / 11)


def test_total_applies_overrides() -> None:
    items = score(good_call(), RULES.evaluate(good_call()), CARD)
    # weights: greeting 2, disclosure 3, clean 3, talk/silence/overtalk 1 each, empathy 2 (manual)
    assert total(items, {"empathy": 0.0}) == pytest.approx(11 / 13)
    assert total(items, {"disclosure": 0.0, "empathy": 0.5}) == pytest.approx((11 - 3 + 1) / 13)
    reviewed = override(items, "empathy", 0.5, reviewer="qa1", comment="a bit cold")
    assert by_item(reviewed)["empathy"].effective == 0.5 and by_item(reviewed)["empathy"].reviewer == "qa1"
    assert total(reviewed) == pytest.approx(12 / 13)
    assert total(reviewed, {"empathy": None}) == pytest.approx(12 / 13)      # None: no new override
    assert totals(reviewed) == {"basic": pytest.approx(12 / 13)}
    assert total([]) is None
    with pytest.raises(ValueError, match="from 0 to 1"):
        total(items, {"empathy": 2})
    with pytest.raises(ValueError, match="not an item"):
        total(items, {"empthy": 1})
    with pytest.raises(ValueError, match="one scorecard"):
        total([*items, ItemScore("other", "x", 1, 1.0, "")])


def test_scorecard_errors_name_the_file_and_line() -> None:
    def problems(text: str) -> list[str]:
        with pytest.raises(ScorecardError) as exc:
            parse_scorecards(text, "s.yaml", RULES)
        return exc.value.problems

    head = "scorecards:\n  - name: a\n    items:\n"
    assert problems(head + "      - {name: g, rule: greting}\n") == ["s.yaml:4: no rule named 'greting' in r.yaml"]
    assert problems(head + "      - {name: g, measure: talk, max: 1}\n")[0].startswith(
        "s.yaml:4: unknown measure 'talk' (one of: agent_talk_ratio")
    assert problems(head + "      - {name: g, measure: silence_ratio}\n") == [
        "s.yaml:4: measure item 'g' needs `min` and/or `max`"]
    assert problems(head + "      - {name: g, rule: greeting, max: 1}\n") == [
        "s.yaml:4: `max` belongs to a measure item"]
    assert problems(head + "      - {name: g, rule: greeting, absent: forbidden}\n") == [
        "s.yaml:4: item 'g' needs exactly one of rule, absent, measure, manual (it has rule, absent)"]
    assert problems(head + "      - {name: g, weight: 0, manual: true}\n") == ["s.yaml:4: weight must be above 0"]
    assert problems(head + "      - {name: g, measure: silence_ratio, max: 2}\n") == [
        "s.yaml:4: max must be a number from 0 to 1"]
    assert problems(head + "      - {name: g, manual: true}\n      - {name: g, manual: true}\n") == [
        "s.yaml:5: duplicate item name 'g' in scorecard 'a'"]
    assert problems(head + "      - {name: g, manual: true, colour: red}\n")[0].startswith(
        "s.yaml:4: unknown key 'colour' in a scorecard item")


def test_the_default_scorecard_loads_against_the_default_rules() -> None:
    rules = load_rules(CONFIG / "keywords.yaml")
    (card,) = load_scorecards(CONFIG / "scorecards.yaml", rules)
    assert card.name == "standard" and card.pass_mark == 0.8
    items = by_item(score(good_call(), rules.evaluate(good_call()), [card]))
    assert items["greeting"].auto_score == 1 and items["recording_disclosure"].auto_score == 1
    assert items["no_forbidden_words"].auto_score == 1 and items["empathy"].auto_score is None


def _tone_wav(path: Path, seconds: float, f0: float, rate: int = 8000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros(len(t))
    for k in range(4):
        x += 4000 * 0.5 ** k * np.sin(2 * np.pi * f0 * (k + 1) * t)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.astype("<i2").tobytes())
    return path


def test_analyze_ties_hits_scores_emotion_and_redaction_together(tmp_path: Path) -> None:
    t = call(utt("agent", 1, 5, "thank you for calling this call may be recorded"),
             utt("customer", 5, 12, "my card is 4111 1111 1111 1111 thanks"),
             utt("agent", 12, 18, "great that is all done"),
             duration=20)
    channels: dict[Speaker, Path] = {"customer": _tone_wav(tmp_path / "c.wav", 20, 200),
                                     "agent": _tone_wav(tmp_path / "a.wav", 20, 110)}
    a = analyze(t, channels, rules=RULES, scorecards=CARD, spotted=[])
    assert {h.rule for h in a.hits} == {"greeting", "disclosure"}
    assert by_item(a.scores)["disclosure"].auto_score == 1
    assert len(a.emotion) == 8 and not a.ends_angry
    first_agent = next(r for r in a.emotion if r.speaker == "agent" and r.quarter == 1)
    assert first_agent.pitch_hz == pytest.approx(110, rel=0.03)
    assert "4111" not in a.redacted.text and "#### #### #### ####" in a.redacted.text
    assert list(a.redact_intervals) == ["customer"]
    assert a.spotted == [] and a.notes == []


def test_analyze_without_spotting_results_and_a_missing_channel(tmp_path: Path) -> None:
    t = call(utt("agent", 1, 5, "thank you for calling"), duration=10)
    a = analyze(t, {"agent": tmp_path / "gone.wav"}, rules=RULES, scorecards=CARD)
    assert [h.rule for h in a.hits] == ["greeting"]
    assert len(a.notes) == 1        # spotting unavailable, or the file is missing: said, not raised
    assert all(r.pitch_hz == 0 for r in a.emotion)


PROMPT = Path("/usr/share/asterisk/sounds/en/conf-now-recording.wav")     # "The conference is now being recorded."


def test_analyze_spots_rule_phrases_the_transcript_missed() -> None:
    rules = parse_rules("""rules:
  - {name: disclosure, speaker: agent, phrases: [now being recorded, this call may be recorded]}
""", "r.yaml")
    card = parse_scorecards("scorecards:\n  - {name: s, items: [{name: d, rule: disclosure}]}\n", "s.yaml", rules)
    # Free transcription got nothing useful; the agent's leg starts 5 s into the call.
    t = call(utt("agent", 5.5, 8.0, "the conference is"), duration=10)
    a = analyze(t, {"agent": PROMPT}, rules=rules, scorecards=card, offsets={"agent": 5.0})
    (hit,) = a.hits
    assert (hit.rule, hit.source, hit.phrase, hit.speaker) == ("disclosure", "spotting", "now being recorded", "agent")
    assert 5.5 < hit.start < hit.end < 8.0                              # in the call's time, not the file's
    assert a.scores[0].auto_score == 1 and "by the agent" in a.scores[0].evidence
    assert [s.phrase for s in a.spotted] == ["now being recorded"]
