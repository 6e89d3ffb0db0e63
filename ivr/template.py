"""Prompt templates: ``"Your balance is {balance}"``, filled from a call's variables.

The whole language: ``{name}`` is replaced by the variable's value, ``{{`` and ``}}`` are literal
braces, everything else is literal text. A name is a letter or ``_`` followed by letters, digits and
``_``. Values render for speech: numbers naturally (``12.0`` -> "12", ``12.5`` -> "12.5"), booleans as
"yes"/"no", a missing variable or ``None`` as "", lists and mappings (from an HTTP reply) as JSON.
Variables listed in ``masked`` render as "****" (for log lines and events).

Pure and cached: a template text is parsed once (``names`` and ``render`` share the parse).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any

from .exceptions import TemplateError

MASK = "****"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _Var(str):
    """A placeholder in a parsed template (a str subclass, to tell it from literal text)."""

    __slots__ = ()


@lru_cache(maxsize=2048)
def parse(text: str) -> tuple[str, ...]:
    """Split ``text`` into literal strings and placeholders (``_Var``); raises TemplateError."""
    parts: list[str] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "{":
            if text.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = text.find("}", i + 1)
            if end < 0:
                raise TemplateError("'{' is never closed (write '{{' for a literal brace)", i + 1)
            inner = text[i + 1:end]
            if "{" in inner:
                raise TemplateError("'{' is never closed (write '{{' for a literal brace)", i + 1)
            if not _NAME.match(inner):
                what = "an empty placeholder '{}'" if not inner else f"'{{{inner}}}' is not a variable name"
                raise TemplateError(f"{what} (names are letters, digits and _; write '{{{{' for a brace)", i + 1)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Var(inner))
            i = end + 1
        elif ch == "}":
            if text.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateError("a single '}' (write '}}' for a literal brace)", i + 1)
        else:
            j = i
            while j < n and text[j] not in "{}":
                j += 1
            literal.append(text[i:j])
            i = j
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def names(text: str) -> set[str]:
    """The variable names ``text`` refers to; raises TemplateError if it is malformed."""
    return {str(p) for p in parse(text) if isinstance(p, _Var)}


def format_value(value: Any) -> str:
    """How a value reads in a prompt (shared with ivr/expressions.py for string operations)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def render(text: str, values: Mapping[str, Any], masked: Collection[str] = ()) -> str:
    """Fill ``text``'s placeholders from ``values``; names in ``masked`` become "****"."""
    out: list[str] = []
    for part in parse(text):
        if isinstance(part, _Var):
            out.append(MASK if part in masked else format_value(values.get(part)))
        else:
            out.append(part)
    return "".join(out)
