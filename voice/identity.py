"""Who is calling and which number they dialled, parsed from an INVITE's text (pure).

    ident = caller_identity(invite_text)
    ident.number, ident.name, ident.dialled        # "+15551234567", "Alice", "800"

The caller is taken from P-Asserted-Identity when the INVITE has one (a trunk asserts the
number it vouches for; RFC 3325), else from From. PAI may carry a sip: and a tel: URI (two
values, or two headers): the number comes from the tel: one, the name from the first value with
a display name, else From's. The dialled number is the Request-URI's user part.

What is parsed (RFC 3261 name-addr / addr-spec, RFC 3966 tel:):

- display names quoted (``"Smith, \\"Al\\"" <sip:...>``, with backslash escapes) or as tokens
  (``Alice  Smith <sip:...>``, whitespace collapsed);
- ``sip:``/``sips:`` URIs: the user part before ``@``, without a password (``:pw``) and without
  user parameters (``+1555;npdi;rn=...@host``); ``tel:`` URIs: the number before ``;``; other
  schemes have no number;
- percent-encoding is decoded (bytes that are not UTF-8 stay visible as ``\\xNN``), and a user
  part that is a phone number loses its visual separators (``+1-555-(123).4567`` ->
  ``+15551234567``);
- compact header names (``f:``), any case, folded lines, spaces before the colon.

Anything malformed gives "" for that field, never an exception. Every result is cleaned
(voice/text.py) and capped at ``LIMIT`` characters. Only the header section is read, and at
most ``MAX_HEADER_BYTES`` of it: this runs per call on the engine thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .text import clean

LIMIT = 128  # characters of each parsed field
MAX_HEADER_BYTES = 16384  # of the message's header section that is looked at
MAX_VALUE = 2048  # characters of one header value that are parsed

_FROM = ("from", "f")
_PAI = ("p-asserted-identity",)
_PHONE = re.compile(r"\+?[0-9*#().\- ]*[0-9][0-9*#().\- ]*")
_VISUAL = re.compile(r"[().\- ]")
_WS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class NameAddr:
    """One From / P-Asserted-Identity value: its display name (unescaped, "" if none) and URI."""

    display: str
    uri: str


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    number: str  # the caller's number (or SIP user), "" if unknown
    name: str  # the caller's display name, "" if none
    dialled: str  # the Request-URI's user part, "" if none


# -- header values ------------------------------------------------------------------------------
def split_values(value: str) -> list[str]:
    """A header value split at the commas that separate values (not inside quotes or ``<>``)."""
    out: list[str] = []
    start = 0
    quoted = escaped = False
    angle = 0
    for i, c in enumerate(value):
        if quoted:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle += 1
        elif c == ">":
            angle = max(0, angle - 1)
        elif c == "," and angle == 0:
            out.append(value[start:i])
            start = i + 1
    out.append(value[start:])
    return [v.strip() for v in out if v.strip()]


def parse_name_addr(value: str) -> NameAddr | None:
    """``"Name" <uri>;params``, ``Name <uri>``, ``<uri>`` or a bare ``uri;params``; None if malformed."""
    v = value[:MAX_VALUE].strip()
    if not v:
        return None
    if v.startswith('"'):
        chars: list[str] = []
        i, n = 1, len(v)
        while i < n:
            c = v[i]
            if c == "\\" and i + 1 < n:
                chars.append(v[i + 1])
                i += 2
                continue
            if c == '"':
                break
            chars.append(c)
            i += 1
        else:
            return None  # unterminated quoted string
        rest = v[i + 1 :].lstrip()
        if not rest.startswith("<"):
            return None
        uri = _bracketed(rest)
        return None if uri is None else NameAddr("".join(chars).strip(), uri)
    lt = v.find("<")
    if lt >= 0:
        uri = _bracketed(v[lt:])
        if uri is None or '"' in v[:lt]:
            return None
        return NameAddr(_WS.sub(" ", v[:lt]).strip(), uri)
    if '"' in v or ">" in v:
        return None
    # addr-spec without brackets: what follows ';' are the header's parameters (;tag=...).
    uri = v.split(";", 1)[0].strip()
    return NameAddr("", uri) if ":" in uri and not any(c.isspace() for c in uri) else None


def _bracketed(text: str) -> str | None:
    """The URI of ``<uri>...``; None without the closing bracket."""
    end = text.find(">")
    if end < 0:
        return None
    uri = text[1:end].strip()
    return uri if uri and "<" not in uri else None


def uri_user(uri: str) -> str:
    """The user part of a sip:/sips: URI, or the number of a tel: URI, decoded; "" otherwise."""
    scheme, sep, rest = uri.strip().partition(":")
    if not sep:
        return ""
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        at = rest.find("@")
        if at < 0:
            return ""  # sip:host has no user part
        user = rest[:at].split(":", 1)[0].split(";", 1)[0]
    elif scheme == "tel":
        user = rest.split(";", 1)[0]
    else:
        return ""
    user = unquote(user, errors="surrogateescape")
    if _PHONE.fullmatch(user):
        user = _VISUAL.sub("", user)
    return user


# -- the message ---------------------------------------------------------------------------------
def read_headers(message: str, wanted: tuple[str, ...]) -> tuple[str, dict[str, list[str]]]:
    """The Request-URI of ``message`` and the values of the headers named in ``wanted``
    (lower-case names; folded lines unfolded), reading its header section only."""
    head = message[:MAX_HEADER_BYTES]
    for end_mark in ("\r\n\r\n", "\n\n"):
        end = head.find(end_mark)
        if end >= 0:
            head = head[:end]
            break
    lines = head.replace("\r\n", "\n").split("\n")
    request_line = lines[0].split() if lines else []
    request_uri = request_line[1] if len(request_line) == 3 and request_line[2].upper().startswith("SIP/") else ""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None  # the value being unfolded
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if current is not None:
                current[-1] += " " + line.strip()
            continue
        current = None
        name, colon, value = line.partition(":")
        if not colon:
            continue
        key = name.strip().lower()
        if key in wanted:
            current = found.setdefault(key, [])
            current.append(value.strip())
    return request_uri, found


def caller_identity(message: str, fallback_from: str = "", fallback_to: str = "", *,
                    trust_asserted: bool = True) -> CallerIdentity:
    """Caller number and name, and the dialled number, of an INVITE (see the module docstring).

    ``fallback_from``/``fallback_to``: the From and To URIs as pjsua reports them, used when
    ``message`` has no From or no parsable Request-URI. ``trust_asserted`` False ignores
    P-Asserted-Identity (RFC 3325: only a trusted peer, a trunk or proxy, may assert an identity)."""
    request_uri, headers = read_headers(message, _FROM + _PAI)
    from_values = headers.get("from", []) + headers.get("f", [])
    sender = parse_name_addr(from_values[0]) if from_values else None
    if sender is None and fallback_from:
        sender = parse_name_addr(fallback_from)
    asserted = [a for v in headers.get("p-asserted-identity", []) for part in split_values(v[:MAX_VALUE])
                if (a := parse_name_addr(part)) is not None] if trust_asserted else []
    number = name = ""
    if asserted:
        tel = [a for a in asserted if a.uri.lower().startswith("tel:")]
        for a in tel + [a for a in asserted if a not in tel]:
            number = uri_user(a.uri)
            if number:
                break
        name = next((a.display for a in asserted if a.display), "")
    if not number and sender is not None:
        number = uri_user(sender.uri)
    if not name and sender is not None:
        name = sender.display
    dialled = uri_user(request_uri) if request_uri else ""
    if not request_uri and fallback_to:
        to = parse_name_addr(fallback_to)
        dialled = uri_user(to.uri) if to is not None else ""
    return CallerIdentity(clean(number, LIMIT), clean(name, LIMIT), clean(dialled, LIMIT))
