"""Errors raised by asr/.

AsrError     base class (the package's concrete errors arrive with its features)
"""


class AsrError(Exception):
    """Base class of every error raised by asr/."""
