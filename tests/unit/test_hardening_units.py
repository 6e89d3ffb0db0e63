"""The pure parts of the hardening: the liveness watchdog, the log limiter, wire-string cleaning, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.exceptions import ConfigError
from callcenter.settings import load_settings
from voice.liveness import CallLiveness, Watchdog
from voice.pj_log import LogLimiter
from voice.text import clean

W = Watchdog(media_timeout=10, rtp_timeout=30, max_duration=3600)


def test_no_media_ends_the_call_after_the_media_timeout() -> None:
    lv = CallLiveness(started=100.0)
    assert W.verdict(lv, 109.9, None) is None
    assert W.verdict(lv, 110.0, None) == "no_media"


def test_rtp_timeout_counts_only_while_two_way_and_not_held() -> None:
    lv = CallLiveness(started=0.0)
    W.media_started(lv, 1.0)
    assert W.verdict(lv, 2.0, 5) is None          # packets arrive
    assert W.verdict(lv, 31.0, 5) is None         # 29 s without one
    assert W.verdict(lv, 32.0, 5) == "rtp_timeout"
    lv = CallLiveness(started=0.0)
    W.media_started(lv, 1.0)
    W.set_held(lv, True, 2.0)
    assert W.verdict(lv, 500.0, None) is None     # held: no RTP expected, however long
    W.set_held(lv, False, 600.0)                  # resumed: the clock starts again
    assert W.verdict(lv, 601.0, 7) is None
    assert W.verdict(lv, 629.0, 7) is None
    assert W.verdict(lv, 631.5, 7) == "rtp_timeout"


def test_max_duration_applies_to_held_calls_too_and_zero_turns_limits_off() -> None:
    lv = CallLiveness(started=0.0)
    W.media_started(lv, 1.0)
    W.set_held(lv, True, 1.0)
    assert W.verdict(lv, 3600.0, None) == "max_duration"
    off = Watchdog(media_timeout=0, rtp_timeout=0, max_duration=0)
    assert off.verdict(CallLiveness(started=0.0), 1e9, None) is None
    assert "10 s" in W.describe("no_media") and "30 s" in W.describe("rtp_timeout")


def test_log_limiter_lets_a_few_through_then_summarizes() -> None:
    now = [0.0]
    lim = LogLimiter(per_kind=3, total=10, window_s=10, clock=lambda: now[0])
    admitted = [lim.admit(f"Error processing {i} bytes packet from 10.0.0.{i}:5060")[0] for i in range(100)]
    assert admitted.count(True) == 3
    assert lim.admit("another kind of line")[0]
    now[0] = 11.0
    ok, summaries = lim.admit("Error processing 1 bytes packet from 10.0.0.1:5060")
    assert ok and summaries == ["suppressed 97 more log lines like: Error processing # bytes packet from #.#.#.#:#"]
    assert lim.flush() == []


def test_clean_escapes_terminal_controls_and_caps_length() -> None:
    assert clean('"Evil\x1b[2J" <sip:a@b>') == '"Evil\\x1b[2J" <sip:a@b>'
    assert clean("line\r\nforged INFO") == "line\\x0d\\x0aforged INFO"
    assert clean("abc\u202edef") == "abc\\u202edef"
    assert clean("bad\udcffbyte") == "bad\\xffbyte"  # an undecodable byte, as pjsua2 hands it over
    assert clean("Zoë 日本") == "Zoë 日本"
    assert clean("x" * 1000, 20) == "x" * 17 + "..."


def test_sip_hardening_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sip]\ntrusted_peers = ["10.1.2.3/8", "::1"]\nmedia_timeout_s = 2.5\nmax_calls_per_source = 3\n'
                   'session_timer = "always"\n')
    s = load_settings(cfg).engine
    assert s.trusted_peers == ("10.0.0.0/8", "::1/128")
    assert s.media_timeout_s == 2.5 and s.max_calls_per_source == 3 and s.session_timer == "always"
    for bad, words in (('trusted_peers = ["nope"]', "not an IP"), ("rtp_timeout_s = -1", "rtp_timeout_s"),
                       ('session_timer = "sometimes"', "session_timer"), ("session_expires_s = 30", "90")):
        cfg.write_text(f"[sip]\n{bad}\n")
        with pytest.raises(ConfigError, match=words):
            load_settings(cfg)
