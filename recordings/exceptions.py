"""Errors raised by recordings/.

RecordingError      a recording could not be created, finalized or read
  RecordingDamaged  a WAV file is damaged beyond what a header repair can fix
  UnsupportedFormat a WAV file is readable but not 16-bit PCM (or too large for a WAV header)
"""


class RecordingError(Exception):
    """A recording could not be created, finalized or read."""


class RecordingDamaged(RecordingError):
    """A WAV file cannot be repaired: not RIFF/WAVE, no usable fmt chunk, not PCM, no data chunk."""


class UnsupportedFormat(RecordingError):
    """A WAV file is readable but not in a form the post-call tools handle (not 16-bit PCM, too large)."""
