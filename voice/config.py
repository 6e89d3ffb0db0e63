"""Settings of the SIP engine (the subset of callcenter.toml that voice/ needs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineConfig:
    host: str = "0.0.0.0"
    sip_port: int = 5060
    transports: tuple[str, ...] = ("udp", "tcp")
    # Address written into Contact/SDP when the bind address is a wildcard; None lets pjsua pick.
    public_address: str | None = None
    clock_rate: int = 8000
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000")
    max_calls: int = 512
    rtp_port: int = 10000
    rtp_port_range: int = 20000
    user_agent: str = "callcenter"
    pjsip_log_level: int = 2
    # -- liveness (voice/liveness.py) --
    media_timeout_s: float = 10.0         # two-way audio must start this soon after the INVITE
    rtp_timeout_s: float = 30.0           # no RTP this long on a two-way (not held) call: hang up
    max_call_duration_s: float = 14400.0  # any call, held or not
    session_timer: str = "optional"       # RFC 4028: off | optional | required | always
    session_expires_s: int = 1800
    # -- overload and abuse (native/pjsua2/guard/sip_guard.hpp) --
    max_calls_per_source: int = 64        # concurrent calls from one IP address
    max_new_calls_per_source_per_s: float = 20.0  # new calls per second from one IP (burst: twice that)
    trusted_peers: tuple[str, ...] = ()   # networks exempt from the per-source limits (trunks, Kamailio)
    retry_after_s: int = 5                # Retry-After of every 503
