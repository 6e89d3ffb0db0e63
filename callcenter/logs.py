"""Structured logs: one line per event, ``time level logger message key=value ...``.

Pass fields through ``extra``: ``log.info("call answered", extra={"call_id": cid})``.
"""

from __future__ import annotations

import logging
import sys

from voice.text import clean

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}


class KeyValueFormatter(logging.Formatter):
    """Every line is one line: control characters in messages and fields are escaped
    (voice/text.py), whatever a SIP header carried; a traceback's own lines stay as they are."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.msg, record.args
        record.msg, record.args = clean(record.getMessage(), 2000), None
        try:
            line = super().format(record)
        finally:
            record.msg, record.args = saved
        fields = " ".join(
            f"{k}={clean(str(v), 500)}" for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        )
        if not fields:
            return line
        head, sep, rest = line.partition("\n")  # fields go on the message's line, before a traceback
        return f"{head} {fields}{sep}{rest}"


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
