"""Errors raised by recordings/.

RecordingError      a recording could not be created, finalized or read
"""


class RecordingError(Exception):
    """A recording could not be created, finalized or read."""
