"""Errors raised by asr/.

AsrError                  base class of every error raised by asr/
├── AsrConfigError        an AsrConfig value is invalid, or the engine it names cannot be loaded
│   └── EngineUnavailable the engine's library or model is missing (vosk not installed, no model path)
├── UnsupportedLanguage   the engine has no model for the requested language
├── BadPhrases            the phrase list is empty or a phrase is not a plain lower-case word string
│   └── UnknownWords      a phrase uses a word the engine's dictionary does not have (``words`` lists them)
├── UnsupportedRate       the input sample rate cannot be resampled to the engine's rate
├── RecognizerClosed      the streaming recognizer (or one listener) was already closed
├── BadAudio              an audio file cannot be used: missing, not a WAV file, truncated, unsupported encoding
└── ModelError            installing, listing or verifying a vosk model failed (corrupt archive, not a model,
                          checksum mismatch, unsafe paths in the archive, download error)
"""

from __future__ import annotations


class AsrError(Exception):
    """Base class of every error raised by asr/."""


class AsrConfigError(AsrError):
    """An AsrConfig value is invalid, or the engine it names cannot be loaded."""


class EngineUnavailable(AsrConfigError):
    """The engine's library or model is missing."""


class UnsupportedLanguage(AsrError):
    """The engine has no model for the requested language."""


class BadPhrases(AsrError):
    """The phrase list is empty, or a phrase is not a plain lower-case word string."""


class UnknownWords(BadPhrases):
    """A phrase uses words the engine's pronunciation dictionary (or vocabulary) does not have."""

    def __init__(self, words: list[str], engine: str) -> None:
        self.words = words
        self.engine = engine
        super().__init__(f"{engine} does not know the word{'s' if len(words) > 1 else ''} "
                         + ", ".join(repr(w) for w in words))


class UnsupportedRate(AsrError):
    """The input sample rate cannot be resampled to the engine's rate."""


class RecognizerClosed(AsrError):
    """The streaming recognizer (or one listener) was already closed."""


class BadAudio(AsrError):
    """An audio file cannot be used (missing, not a WAV file, truncated, unsupported encoding).

    The message is one line and names the file."""


class ModelError(AsrError):
    """Installing, listing or verifying a vosk model failed; the message says why in one line."""
