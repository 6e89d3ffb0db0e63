"""Outbound calls to customers go through one configured trunk, and only to allowed numbers.

The default is no trunk: nothing dials out (toll-fraud safe). With ``[trunk] uri`` set, a
number is dialled only if it is made of digits (an optional leading +, no letters, no SIP
syntax that could smuggle in another host) and matches one of ``[trunk] allow``'s patterns.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"\+?[0-9]{2,20}")


@dataclass(frozen=True, slots=True)
class Trunk:
    uri: str = ""                       # "sip:{number}@gateway:5060"; "" = none
    allow: tuple[str, ...] = ()         # glob patterns over the number, e.g. "+1555*"
    from_uri: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.uri and self.allow)

    def allowed(self, number: str) -> bool:
        return (self.configured and _NUMBER.fullmatch(number) is not None
                and any(fnmatch.fnmatchcase(number, p) for p in self.allow))

    def uri_for(self, number: str) -> str | None:
        """The SIP URI that reaches ``number`` through the trunk; None if it may not be dialled."""
        if not self.allowed(number):
            return None
        return self.uri.replace("{number}", number)
