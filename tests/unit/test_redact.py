"""Redaction (asr/redact.py): written and spoken digits, Luhn, account lengths, runs across utterances,
masked text and words, the intervals to silence."""

from __future__ import annotations

import pytest

from asr.redact import RedactPolicy, luhn_ok, mask_count, redact, redact_text
from asr.transcript import Speaker, Transcript, Utterance, Word

VISA = "4111111111111111"           # Luhn-valid test card numbers
AMEX = "378282246310005"
WORDS = {"0": "oh", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
         "8": "eight", "9": "nine"}


def utt(speaker: Speaker, start: float, text: str, word_s: float = 0.3, words: bool = True) -> Utterance:
    parts = text.split()
    ws = tuple(Word(w, start + i * word_s, start + (i + 1) * word_s, 0.8) for i, w in enumerate(parts))
    return Utterance(speaker, start, start + len(parts) * word_s, text, 0.8, ws if words else ())


def call(*utts: Utterance, duration: float = 60.0) -> Transcript:
    return Transcript("c1", duration, "pocketsphinx", utterances=tuple(sorted(utts, key=lambda u: u.start)))


def spoken(digits: str) -> str:
    return " ".join(WORDS[d] for d in digits)


def test_luhn() -> None:
    assert luhn_ok(VISA) and luhn_ok(AMEX) and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112") and not luhn_ok("") and not luhn_ok("4111-1111")


def test_a_written_card_number_is_masked_with_its_interval() -> None:
    t = call(utt("customer", 10.0, "sure it is 4111 1111 1111 1111, expiry next year"))
    r = redact(t)
    (u,) = r.transcript.utterances
    assert u.text == "sure it is #### #### #### ####, expiry next year"
    assert [w.word for w in u.words][3:7] == ["####", "####", "####", "####,"]
    assert [w.start for w in u.words] == [w.start for w in t.utterances[0].words]      # times kept
    (span,) = r.spans
    assert (span.speaker, span.kind, span.digits) == ("customer", "card", 16)
    assert span.start == pytest.approx(10.9) and span.end == pytest.approx(12.1)
    assert r.intervals == {"customer": [(pytest.approx(10.7), pytest.approx(12.3))]}     # padded 0.2 s


def test_a_spoken_card_number_across_utterances_with_oh_for_zero() -> None:
    digits = AMEX                                                      # 15 digits, with zeros
    first, second = spoken(digits[:8]), spoken(digits[8:])
    assert "oh" in second
    t = call(utt("customer", 5.0, f"my card number is {first}"),
             utt("agent", 8.0, "mhm"),                                 # the other channel does not break it
             utt("customer", 9.0, f"{second} okay"))
    r = redact(t)
    cust = [u for u in r.transcript.utterances if u.speaker == "customer"]
    assert cust[0].text == "my card number is " + " ".join(["#"] * 8)
    assert cust[1].text == " ".join(["#"] * 7) + " okay"
    assert [(s.kind, s.digits) for s in r.spans] == [("card", 15)]
    assert r.intervals["customer"] == [(pytest.approx(5.0 + 4 * 0.3 - 0.2), pytest.approx(9.0 + 7 * 0.3 + 0.2))]
    assert "agent" not in r.intervals and r.transcript.utterances[1].text == "mhm"


def test_luhn_failures_are_masked_as_long_unless_disabled() -> None:
    bad = "4111111111111112"
    t = call(utt("customer", 1, f"it is {spoken(bad)}"))
    assert [(s.kind, s.digits) for s in redact(t).spans] == [("long", 16)]
    assert redact(t, RedactPolicy(mask_long=False)).spans == ()
    assert redact(t, RedactPolicy(mask_long=False)).transcript == t


def test_account_numbers_by_length() -> None:
    t = call(utt("customer", 1, "account double five triple oh twenty three please"),     # 55 000 2 3: 7 digits
             utt("customer", 20, "my pin is 1234 and I have 3 kids"),                       # too short: kept
             utt("customer", 40, "reference 12345678901234"))                               # 14: long, not Luhn
    r = redact(t)
    assert [(s.kind, s.digits) for s in r.spans] == [("account", 7), ("long", 14)]
    texts = [u.text for u in r.transcript.utterances]
    assert texts[0] == "account # ## # ### # # please"
    assert texts[1] == "my pin is 1234 and I have 3 kids"
    assert texts[2] == "reference ##############"
    r4 = redact(t, RedactPolicy(account_min=4, account_max=4))
    assert ("account", 4) in [(s.kind, s.digits) for s in r4.spans]
    assert "####" in r4.transcript.utterances[1].text


def test_tens_and_teens_and_fillers() -> None:
    t = call(utt("customer", 1, "it's forty five uh sixty seven, eighty nineteen twelve"))   # 45 67 80 19 12
    (s,) = redact(t).spans
    assert (s.kind, s.digits) == ("account", 10)
    assert redact(t).transcript.utterances[0].text == "it's # # uh # #, ## ## ##"      # forty (five): one digit


def test_a_long_pause_splits_a_run() -> None:
    t = call(utt("customer", 1, "4111 1111"), utt("customer", 10, "1111 1111"))
    no_accounts = RedactPolicy(account_min=13, account_max=13)
    assert redact(t, no_accounts).spans == ()                            # 8 + 8 digits, 8 s apart: two short runs
    assert [s.kind for s in redact(t).spans] == ["account", "account"]
    assert [s.kind for s in redact(t, RedactPolicy(account_min=13, account_max=13, max_gap_s=10)).spans] == ["card"]


def test_a_card_read_with_its_expiry_and_code_is_masked_whole() -> None:
    t = call(utt("customer", 1, f"{' '.join(VISA[i:i + 4] for i in range(0, 16, 4))} oh one two five {spoken('737')}"))
    r = redact(t)
    assert [(s.kind, s.digits) for s in r.spans] == [("card", 23)]
    assert mask_count(r) == 23
    assert r.transcript.utterances[0].text == "#### #### #### #### # # # # # # #"


def test_utterances_without_words_and_clipping() -> None:
    t = call(utt("customer", 0.0, f"{VISA} thanks", words=False), duration=0.8)
    r = redact(t)
    assert r.transcript.utterances[0].text == "################ thanks"
    (iv,) = r.intervals["customer"]
    assert iv[0] == 0.0 and iv[1] == pytest.approx(0.3 + 0.2)


def test_nothing_to_mask_leaves_the_transcript_alone() -> None:
    t = call(utt("customer", 1, "one more thing, I called two times on May 12"), utt("agent", 3, "okay"))
    r = redact(t)
    assert r.transcript == t and r.intervals == {} and r.spans == ()


def test_redact_text_keeps_spacing_and_punctuation() -> None:
    assert redact_text("Card: 4111-1111-1111-1111.\nThanks!") == "Card: ####-####-####-####.\nThanks!"
    assert redact_text("call me at five five five one two three four five six seven") == (
        "call me at # # # # # # # # # #")
    assert redact_text("it costs 25 dollars") == "it costs 25 dollars"


def test_bad_policies() -> None:
    with pytest.raises(ValueError, match="account lengths"):
        RedactPolicy(account_min=8, account_max=6)
    with pytest.raises(ValueError, match="mask"):
        RedactPolicy(mask="**")
