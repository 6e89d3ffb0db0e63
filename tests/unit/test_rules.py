"""Keyword rules (asr/rules.py) on crafted transcripts: every operator, speaker filters, time windows, spotting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from asr.rules import RulesError, load_rules, parse_rules
from asr.transcript import Speaker, Transcript, Utterance, Word

WORD_S = 0.4


def utt(speaker: Speaker, start: float, text: str, word_s: float = WORD_S, words: bool = True) -> Utterance:
    parts = text.split()
    ws = tuple(Word(w, start + i * word_s, start + (i + 1) * word_s - 0.05, 0.9) for i, w in enumerate(parts))
    end = start + len(parts) * word_s
    return Utterance(speaker, start, end, text, 0.9, ws if words else ())


def call(*utts: Utterance, duration: float = 60.0) -> Transcript:
    return Transcript("c1", duration, "pocketsphinx", utterances=tuple(sorted(utts, key=lambda u: u.start)))


@dataclass(frozen=True)
class Spot:
    """Shaped like asr.spotting.Spotted (phrase, speaker, start, end, score)."""

    phrase: str
    speaker: str
    start: float
    end: float
    score: float = 1.0


def rules(body: str) -> object:
    return parse_rules("rules:\n" + body, "t.yaml")


def hits_of(text: str, transcript: Transcript, spotted: tuple[Spot, ...] = ()) -> list:
    return parse_rules("rules:\n" + text, "t.yaml").evaluate(transcript, spotted)


# -- phrases ---------------------------------------------------------------------------------------

def test_exact_phrase_ignores_case_and_punctuation() -> None:
    t = call(utt("agent", 1.0, "Thank you for CALLING, Acme! How can I help?"))
    hits = hits_of("- {name: g, category: greeting, phrases: [thank you for calling, how can i help]}", t)
    assert [(h.rule, h.category, h.speaker, h.phrase, h.source) for h in hits] == [
        ("g", "greeting", "agent", "thank you for calling", "transcript"),
        ("g", "greeting", "agent", "how can i help", "transcript")]
    assert hits[0].start == pytest.approx(1.0) and hits[0].end == pytest.approx(1.0 + 4 * WORD_S - 0.05)


def test_phrase_words_must_be_in_a_row_within_one_utterance() -> None:
    split = call(utt("agent", 1.0, "thank you"), utt("agent", 3.0, "for calling"))
    gap = call(utt("agent", 1.0, "thank you very much for calling"))
    rule = "- {name: g, phrases: [thank you for calling]}"
    assert hits_of(rule, split) == [] and hits_of(rule, gap) == []


def test_wildcards() -> None:
    t = call(utt("customer", 1, "I was refunded but the refunds were wrong and the fund is empty"),
             utt("customer", 10, "so I cannot cancel it, can you cancel my account"),
             utt("customer", 20, "can i cancel"))
    found = {h.phrase for h in hits_of("- {name: r, phrases: ['refund*']}", t)}
    assert found == {"refunded", "refunds"}                     # not "fund"
    phrases = [h.phrase for h in hits_of("- {name: c, phrases: ['can* cancel']}", t)]
    assert phrases == ["cannot cancel"]                         # "can you cancel", "can i cancel": not in a row
    phrases = [h.phrase for h in hits_of("- {name: c, phrases: ['cancel * account']}", t)]
    assert phrases == ["cancel my account"]                     # a lone * is exactly one word
    phrases = [h.phrase for h in hits_of("- {name: c, phrases: ['fun?']}", t)]
    assert phrases == ["fund"]


def test_utterances_without_word_times_still_match_inside_their_span() -> None:
    t = call(utt("customer", 10.0, "please give me a refund now", words=False))
    (h,) = hits_of("- {name: r, phrases: [a refund]}", t)
    assert 10.0 < h.start < h.end < 10.0 + 5 * WORD_S + 0.01


# -- speaker filters and time windows ----------------------------------------------------------------

def test_speaker_filter() -> None:
    t = call(utt("agent", 1, "we can give you a refund"), utt("customer", 5, "I want a refund"))
    assert [h.speaker for h in hits_of("- {name: r, speaker: customer, phrases: [refund]}", t)] == ["customer"]
    assert [h.speaker for h in hits_of("- {name: r, speaker: agent, phrases: [refund]}", t)] == ["agent"]
    assert [h.speaker for h in hits_of("- {name: r, speaker: any, phrases: [refund]}", t)] == ["agent", "customer"]
    assert [h.speaker for h in hits_of("- {name: r, phrases: [refund]}", t)] == ["agent", "customer"]


def test_first_seconds_is_by_start_time() -> None:
    rule = "- {name: g, speaker: agent, first_s: 15, phrases: [hello there]}"
    assert hits_of(rule, call(utt("agent", 14.9, "hello there"))) != []        # ends after 15 s: still counts
    assert hits_of(rule, call(utt("agent", 15.0, "hello there"))) == []


def test_last_seconds_is_by_end_time() -> None:
    rule = "- {name: bye, last_s: 10, phrases: [goodbye]}"
    ends_at = 50.0 + WORD_S - 0.05               # a one-word phrase ends 0.35 s after it starts
    assert hits_of(rule, call(utt("agent", 50.0 - (WORD_S - 0.05) + 0.01, "goodbye"), duration=60)) != []
    assert hits_of(rule, call(utt("agent", 50.0 - (WORD_S - 0.05), "goodbye"), duration=60)) == []
    assert hits_of(rule, call(utt("agent", 50.0, "goodbye"), duration=60))[0].end == pytest.approx(ends_at)


def test_inner_speaker_overrides_outer_and_windows_add_up() -> None:
    t = call(utt("agent", 2, "hello"), utt("customer", 3, "hello"), utt("customer", 30, "hello"))
    hits = hits_of("""- name: h
  speaker: agent
  first_s: 20
  match: {phrase: hello, speaker: customer, first_s: 40}""", t)
    assert [(h.speaker, h.start) for h in hits] == [("customer", 3)]     # customer (inner), before 20 s (outer)


# -- AND / OR / NOT ----------------------------------------------------------------------------------

def test_any_all_not() -> None:
    t = call(utt("customer", 5, "I want to cancel"), utt("agent", 8, "I can offer a discount"))
    any_rule = "- {name: x, match: {any: [refund, cancel]}}"
    assert [h.phrase for h in hits_of(any_rule, t)] == ["cancel"]
    all_rule = "- {name: x, match: {all: [cancel, discount]}}"
    assert [h.phrase for h in hits_of(all_rule, t)] == ["cancel", "discount"]        # both occurrences
    assert hits_of("- {name: x, match: {all: [cancel, refund]}}", t) == []
    saved = "- {name: x, match: {all: [cancel, {not: {phrase: discount, speaker: agent}}]}}"
    assert hits_of(saved, t) == []
    unsaved = "- {name: x, match: {all: [cancel, {not: {phrase: discount, speaker: customer}}]}}"
    assert [h.phrase for h in hits_of(unsaved, t)] == ["cancel"]
    assert [h.phrase for h in hits_of("- {name: x, match: [refund, cancel]}", t)] == ["cancel"]   # a list is OR
    assert hits_of("- {name: x, match: {not: {not: cancel}}}", t) != []


def test_a_not_rule_hits_over_its_window_with_no_phrase() -> None:
    t = call(utt("agent", 30, "hello"), duration=90)
    (h,) = hits_of("- {name: no_greeting, category: script, speaker: agent, first_s: 15, match: {not: hello}}", t)
    assert (h.rule, h.category, h.speaker, h.start, h.end, h.phrase) == ("no_greeting", "script", "agent", 0, 15, "")
    (h,) = hits_of("- {name: silent_end, last_s: 20, match: {not: goodbye}}", t)
    assert (h.speaker, h.start, h.end) == ("", 70, 90)
    assert hits_of("- {name: x, speaker: agent, match: {not: hello}}", t) == []


# -- near -------------------------------------------------------------------------------------------

def test_near_counts_the_words_between() -> None:
    t = call(utt("customer", 1, "please cancel my account today"))
    assert hits_of("- {name: n, match: {near: [cancel, account], within: 0}}", t) == []
    (h,) = hits_of("- {name: n, match: {near: [cancel, account], within: 1}}", t)
    assert h.phrase == "cancel ~ account" and h.speaker == "customer"
    assert h.start == pytest.approx(1 + WORD_S) and h.end == pytest.approx(1 + 4 * WORD_S - 0.05)
    assert hits_of("- {name: n, match: {near: [account, cancel], within: 1}}", t) != []           # either order
    assert hits_of("- {name: n, match: {near: [account, cancel], within: 1, ordered: true}}", t) == []
    assert hits_of("- {name: n, match: {near: [please, today], within: 3}}", t) != []
    assert hits_of("- {name: n, match: {near: [please, today], within: 2}}", t) == []


def test_near_reaches_across_utterances_and_counts_only_the_filtered_speakers() -> None:
    t = call(utt("customer", 1, "I want to cancel"),                  # cancel at 2.2
             utt("agent", 3.0, "okay sure mhm right"),                # 4 agent words in between (by time)
             utt("customer", 5, "the whole account"))                 # the, whole, then account
    cust = "- {name: n, speaker: customer, match: {near: [cancel, account], within: 2}}"
    assert [h.speaker for h in hits_of(cust, t)] == ["customer"]      # across utterances: 2 customer words between
    assert hits_of("- {name: n, speaker: customer, match: {near: [cancel, account], within: 1}}", t) == []
    anyone = "- {name: n, match: {near: [cancel, account], within: 2}}"
    assert hits_of(anyone, t) == []                                  # with the agent's words: 6 between
    assert hits_of("- {name: n, match: {near: [cancel, account], within: 6}}", t) != []


def test_near_across_speakers_has_no_single_speaker() -> None:
    t = call(utt("customer", 1, "my card"), utt("agent", 2, "was declined"))
    (h,) = hits_of("- {name: n, match: {near: [card, declined], within: 1}}", t)
    assert h.speaker == "" and h.phrase == "card ~ declined"


# -- keyword spotting --------------------------------------------------------------------------------

def test_spotted_phrases_count_and_duplicates_of_the_transcript_do_not() -> None:
    t = call(utt("customer", 1, "I want a refund"), utt("customer", 20, "mumble mumble"))
    spotted = (Spot("refund", "customer", 2.25, 2.6),        # the same occurrence the transcript has
               Spot("refunds", "customer", 20.0, 20.5),      # missed by free transcription
               Spot("refund", "agent", 30.0, 30.4))          # the wrong speaker for this rule
    hits = hits_of("- {name: r, speaker: customer, phrases: ['refund*']}", t, spotted)
    assert [(h.start, h.phrase, h.source) for h in hits] == [(pytest.approx(1 + 3 * WORD_S), "refund", "transcript"),
                                                            (20.0, "refunds", "spotting")]


def test_spotted_phrase_inside_a_longer_rule_phrase_and_time_windows() -> None:
    t = call(utt("agent", 40, "nothing useful"), duration=60)
    spotted = (Spot("this call may be recorded", "agent", 1.0, 3.0), Spot("recorded", "agent", 50.0, 50.5))
    (h,) = hits_of("- {name: d, speaker: agent, first_s: 10, phrases: [call may be recorded]}", t, spotted)
    assert h.source == "spotting" and h.phrase == "call may be recorded" and 1.0 < h.start < h.end <= 3.0
    near = "- {name: n, match: {near: [useful, recorded], within: 0}}"     # spotted words count in near, by time
    assert [h.source for h in hits_of(near, t, spotted)] == ["spotting"]


def test_phrases_worth_spotting() -> None:
    rs = parse_rules("""rules:
  - {name: a, phrases: [Thank You, 'refund*', 'can* cancel', 'fun?', '* account', 'go*', thank you]}
  - {name: b, match: {all: [hello, {not: damn}, {near: [card, declined], within: 2}]}}
""", "t.yaml")
    assert rs.phrases() == ["thank you", "refund", "can cancel", "hello", "damn", "card", "declined"]


# -- loading and errors -----------------------------------------------------------------------------

def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "k.yaml")
    return exc.value.problems


def test_errors_name_the_file_and_line() -> None:
    assert problems("rules:\n  - name: a\n    phrases: [x]\n    speakr: agent\n") == [
        "k.yaml:4: unknown key 'speakr' in a rule (expected one of: name, category, description, phrases, match, "
        "speaker, first_s, last_s)"]
    assert problems("rules:\n  - name: a\n    speaker: boss\n    phrases: [x]\n") == [
        "k.yaml:3: speaker must be one of customer, agent, any, not 'boss'"]
    assert problems("rules:\n  - name: a\n    match:\n      near: [a, b]\n") == [
        "k.yaml:4: `near` needs `within: N` (words between A and B)"]
    assert problems("rules:\n  - {name: a, phrases: [x]}\n  - {name: a, phrases: [y]}\n") == [
        "k.yaml:3: duplicate rule name 'a' (first on line 2)"]
    assert problems("rules:\n  - name: a\n    phrases: [x]\n    match: y\n") == [
        "k.yaml:2: rule 'a' needs exactly one of `phrases` (a list) or `match` (an expression)"]
    assert problems("rules:\n  - {name: a, phrases: ['* *']}\n") == [
        "k.yaml:2: phrase '* *' is only wildcards (it would match anything)"]
    assert problems("rules:\n  - {name: a, match: {any: [x], all: [y]}}\n") == [
        "k.yaml:2: an expression needs exactly one of phrase, any, all, not, near (it has any, all)"]
    assert problems("rules:\n  - {name: a, match: {any: [x], within: 3}}\n") == [
        "k.yaml:2: `within` belongs to a `near` expression"]
    assert problems("categories: [sales]\nrules:\n  - {name: a, category: sale, phrases: [x]}\n") == [
        "k.yaml:3: category 'sale' is not among the file's categories (sales)"]
    assert problems("rules:\n  - name: a\n    phrases: [x\n") [0].startswith("k.yaml:4: not valid YAML")
    assert problems("") == ["k.yaml:1: the file is empty (expected `rules:`)"]
    assert len(problems("rules:\n  - {name: a, first_s: -1, phrases: [x]}\n  - {phrases: [y]}\n")) == 2


def test_yaml_booleans_stay_words(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("rules:\n  - {name: refusal, speaker: customer, phrases: [no, 'off']}\n", encoding="utf-8")
    rs = load_rules(path)
    assert [h.phrase for h in rs.evaluate(call(utt("customer", 1, "no thanks")))] == ["no"]
    with pytest.raises(RulesError, match=r"missing\.yaml:0: cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_the_default_rules_load_and_find_a_cancellation() -> None:
    rs = load_rules(Path(__file__).parents[2] / "config" / "keywords.yaml")
    t = call(utt("agent", 0.5, "thank you for calling acme this call may be recorded"),
             utt("customer", 6, "hi I want to cancel my subscription and get my money back"),
             utt("customer", 12, "or I will talk to my lawyer"),
             duration=40)
    got = {(h.rule, h.category) for h in rs.evaluate(t)}
    assert {("greeting", "greeting"), ("recording_disclosure", "disclosure"), ("cancel_intent", "cancellation"),
            ("cancel_unsaved", "cancellation"), ("refund_request", "refund"),
            ("legal_threat", "legal")} <= got
    assert not {r for r, _ in got} & {"forbidden_words", "competitor", "complaint"}
