"""Strings that came off the wire, made safe for a terminal, a log line and the database.

A SIP header can carry anything: terminal escape sequences (``ESC [ 2 J``), carriage returns
that forge a log line, bidirectional overrides that reorder what a reader sees, bytes that are
not UTF-8 (pjsua2 hands them over as lone surrogates). ``clean`` keeps printable text as it is
and writes every other character as a visible escape (``\\x1b``, ``\\u202e``), then caps the
length, so nothing from the network reaches a terminal or a log line raw.
"""

from __future__ import annotations

import re

# C0 controls (tab included), DEL, C1 controls, bidi controls, line/paragraph separators,
# zero-width and BOM characters, and lone surrogates (undecodable bytes).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{c - 0xDC00:02x}"
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def clean(text: str, limit: int = 512) -> str:
    """``text`` with every unsafe character escaped, cut to ``limit`` characters (marked ``...``)."""
    out = _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text
    return out if len(out) <= limit else out[: max(0, limit - 3)] + "..."
