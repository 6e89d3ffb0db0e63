"""When a call must end by itself: no audio, no RTP, or simply too long.

Pure decisions, no clock: the engine passes ``now`` (time.monotonic) and the RTP packet count
it read from the call's stream. A call that never gets two-way audio is ended ``media_timeout``
after its INVITE (``a=inactive`` or ``a=sendonly`` offers that never resume, an ACK that never
carries its answer); a two-way call whose far end stops sending RTP is ended ``rtp_timeout``
after the last packet; a call on hold (``sendonly``/``inactive`` from the far end) is exempt
from the RTP timeout, whose clock starts again on resume; every call ends after
``max_duration``.

A call the engine placed (``Engine.dial``) rings first, for as long as the application lets it
(a ring timeout of 15-30 s): it is created ``ringing`` and its ``media_timeout`` counts from the
answer (``answered``), not from the INVITE. ``max_duration`` counts from the INVITE for every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["no_media", "rtp_timeout", "max_duration"]


@dataclass(slots=True)
class CallLiveness:
    started: float
    media_since: float | None = None  # the first two-way audio
    held: bool = False
    rx_packets: int = -1
    rx_changed: float = 0.0
    ringing: bool = False  # a call we placed, not answered yet: no media expected
    answered: float | None = None  # when a call we placed was answered (its media timeout counts from it)


@dataclass(frozen=True, slots=True)
class Watchdog:
    media_timeout: float
    rtp_timeout: float
    max_duration: float

    def media_started(self, lv: CallLiveness, now: float) -> None:
        if lv.media_since is None:
            lv.media_since = now
        lv.rx_changed = now

    def answered(self, lv: CallLiveness, now: float) -> None:
        """A call we placed was answered: from now on it must get two-way audio within ``media_timeout``."""
        if lv.ringing:
            lv.ringing, lv.answered = False, now

    def set_held(self, lv: CallLiveness, held: bool, now: float) -> None:
        lv.held = held
        lv.rx_changed = now

    def verdict(self, lv: CallLiveness, now: float, rx_packets: int | None) -> Verdict | None:
        """Why the call must end now, or None. ``rx_packets``: RTP received so far (None: unknown)."""
        if self.max_duration > 0 and now - lv.started >= self.max_duration:
            return "max_duration"
        if lv.media_since is None:
            if lv.ringing:
                return None
            since = lv.started if lv.answered is None else lv.answered
            return "no_media" if self.media_timeout > 0 and now - since >= self.media_timeout else None
        if lv.held or rx_packets is None:
            lv.rx_changed = now
            return None
        if rx_packets != lv.rx_packets:
            lv.rx_packets, lv.rx_changed = rx_packets, now
            return None
        return "rtp_timeout" if self.rtp_timeout > 0 and now - lv.rx_changed >= self.rtp_timeout else None

    def describe(self, verdict: Verdict) -> str:
        if verdict == "no_media":
            return f"no two-way audio within {self.media_timeout:g} s"
        if verdict == "rtp_timeout":
            return f"no RTP for {self.rtp_timeout:g} s"
        return f"longer than the maximum call duration of {self.max_duration:g} s"
