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
