"""Speech recognition settings: what the composition root maps callcenter.toml's ``[asr]`` table onto."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asr.exceptions import AsrConfigError

Engine = Literal["pocketsphinx", "vosk"]


@dataclass(frozen=True, slots=True)
class AsrConfig:
    """Which engine recognizes speech, with which model, and how utterances are endpointed.

    ``engine``: "pocketsphinx" (bundled US-English model, language "en") or "vosk" (``vosk_model``: a model
    directory; ``vosk_language``: the language that model speaks, checked against each request when set).
    ``pocketsphinx_model`` / ``pocketsphinx_dict``: another acoustic model directory / pronunciation dictionary
    (None: the ones bundled with pocketsphinx), ``pocketsphinx_language`` the language they speak.
    Endpointing (both engines use pocketsphinx's VAD endpointer): ``vad_mode`` 0 (loose) .. 3 (strict);
    ``endpoint_window`` seconds of audio per speech/non-speech decision, ``endpoint_ratio`` the fraction of that
    window that must agree; ``max_speech`` seconds after which an utterance is ended even if the caller talks on.
    ``bandwidth_extension``: 0..1, the level of the spectral image kept when 8 kHz telephone audio is upsampled
    for a 16 kHz model (0 = a clean low-pass; the default 0.5 mirrors 0-4 kHz into 4-8 kHz at half level, which
    lets the 16 kHz model hear fricatives such as the "s" of "sales" that telephony cuts off).
    ``listener_backlog``: seconds of audio one streaming listener may have queued before its oldest chunks are
    dropped (and counted). ``close_timeout``: seconds ``close()`` waits for a busy engine before giving up.
    """

    engine: Engine = "pocketsphinx"
    vosk_model: Path | None = None
    vosk_language: str | None = None
    pocketsphinx_model: Path | None = None
    pocketsphinx_dict: Path | None = None
    pocketsphinx_language: str = "en"
    vad_mode: int = 0
    endpoint_window: float = 0.3
    endpoint_ratio: float = 0.9
    max_speech: float = 10.0
    bandwidth_extension: float = 0.5
    listener_backlog: float = 2.0
    close_timeout: float = 0.5

    def __post_init__(self) -> None:
        if self.engine not in ("pocketsphinx", "vosk"):
            raise AsrConfigError(f"asr engine must be 'pocketsphinx' or 'vosk', not {self.engine!r}")
        if self.engine == "vosk" and self.vosk_model is None:
            raise AsrConfigError("asr engine 'vosk' needs vosk_model (a model directory)")
        if self.vad_mode not in (0, 1, 2, 3):
            raise AsrConfigError(f"asr vad_mode must be 0..3, not {self.vad_mode!r}")
        if not 0.05 <= self.endpoint_window <= 2.0:
            raise AsrConfigError(f"asr endpoint_window must be 0.05..2.0 seconds, not {self.endpoint_window!r}")
        if not 0.1 <= self.endpoint_ratio < 1.0:
            raise AsrConfigError(f"asr endpoint_ratio must be in [0.1, 1.0), not {self.endpoint_ratio!r}")
        if not 0.5 <= self.max_speech <= 60.0:
            raise AsrConfigError(f"asr max_speech must be 0.5..60 seconds, not {self.max_speech!r}")
        if not 0.0 <= self.bandwidth_extension <= 1.0:
            raise AsrConfigError(f"asr bandwidth_extension must be 0..1, not {self.bandwidth_extension!r}")
        if not 0.1 <= self.listener_backlog <= 60.0:
            raise AsrConfigError(f"asr listener_backlog must be 0.1..60 seconds, not {self.listener_backlog!r}")
        if not 0.0 < self.close_timeout <= 10.0:
            raise AsrConfigError(f"asr close_timeout must be in (0, 10] seconds, not {self.close_timeout!r}")
