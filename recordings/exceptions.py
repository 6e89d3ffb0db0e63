"""Errors raised by recordings/.

RecordingError      a recording could not be created, finalized or read
  RecordingDamaged  a WAV file is damaged beyond what a header repair can fix
"""


class RecordingError(Exception):
    """A recording could not be created, finalized or read."""


class RecordingDamaged(RecordingError):
    """A WAV file cannot be repaired: not RIFF/WAVE, no usable fmt chunk, not PCM, no data chunk."""
