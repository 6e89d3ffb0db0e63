"""Settings: callcenter.toml, then command-line overrides. Relative paths follow the config file."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from voice.config import EngineConfig

from .exceptions import ConfigError

DEFAULT_CONFIG = Path("config/callcenter.toml")
DEFAULT_HOLD_MUSIC = Path("/usr/share/asterisk/moh")  # Debian's asterisk-moh-opsound-wav (free licence)


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("data")
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    default_flow: Path | None = None   # for numbers with no flow deployed (None: they get 404)
    transfer_allow: tuple[str, ...] = ()  # glob patterns of SIP URIs a transfer node may reach
    inband_dtmf: str = "auto"          # auto (when no telephone-event), always, off
    demo_crm: bool = False             # serve the demo flow's stand-in CRM at /demo/crm
    prompt_voice: str = ""
    prompt_wpm: int = 160
    prompt_cache: Path | None = None   # None: <data_dir>/prompts
    prompt_voices: dict[str, str] = field(default_factory=lambda: {"zh": "cmn"})  # language -> voice (en: prompt_voice)
    asr_engine: str = "pocketsphinx"
    vosk_model: Path | None = None
    log_level: str = "info"
    hold_music: Path = DEFAULT_HOLD_MUSIC  # a WAV or a folder of them, for queues that name none
    callback_attempts: int = 3         # calls to a customer who asked to be called back, before giving up
    callback_retry_s: float = 120.0    # between two attempts
    trunk_uri: str = ""                # outbound calls: "sip:{number}@gateway"; "" = no trunk, nothing dials out
    trunk_allow: tuple[str, ...] = ()  # glob patterns a number must match to be dialled through the trunk
    trunk_from: str = ""               # the From of outbound calls ("": the server's own URI)
    retention_days: int = 0            # recordings and transcripts kept this many days (0: forever)
    retention_per_queue: dict[str, int] = field(default_factory=dict)  # queue -> days
    transcribe: bool = True            # transcribe every recorded call after it ends
    transcribe_workers: int = 0        # worker processes (0: one per core)
    desk_grace_s: float = 20.0         # a browser agent who vanishes mid-call has this long to come back
    desk_heartbeat_s: float = 10.0     # the desk socket's ping period (3 missed: gone)
    keywords: Path | None = None       # keyword rules (YAML); None: config/keywords.yaml beside the config
    scorecards: Path | None = None     # QA scorecards (YAML); None: config/scorecards.yaml beside the config
    engine: EngineConfig = field(default_factory=EngineConfig)
    config_file: Path | None = None


_KNOWN = {
    "server": {"host", "sip_port", "http_port", "data_dir"},
    "sip": {"transports", "codecs", "clock_rate", "max_calls", "rtp_port", "rtp_port_range",
            "public_address", "user_agent", "pjsip_log_level", "media_timeout_s", "rtp_timeout_s",
            "max_call_duration_s", "session_timer", "session_expires_s", "max_calls_per_source",
            "max_new_calls_per_source_per_s", "trusted_peers", "retry_after_s"},
    "ivr": {"flow", "default_flow", "transfer_allow", "inband_dtmf", "demo_crm"},
    "prompts": {"voice", "words_per_minute", "voices", "cache_dir"},
    "asr": {"engine", "vosk_model"},
    "acd": {"hold_music", "callback_attempts", "callback_retry_s"},
    "trunk": {"uri", "allow", "from_uri"},
    "desk": {"grace_s", "heartbeat_s"},
    "recordings": {"retention_days", "retention"},
    "transcription": {"enabled", "workers", "keywords", "scorecards"},
    "log": {"level"},
}


def _typed(table: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"[{table}] {key} = {value!r}: expected {getattr(kind, '__name__', kind)}")
    return value


def _number(table: dict[str, Any], key: str, default: float) -> float:
    """A [sip] number >= 0 (seconds, or calls per second)."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"[sip] {key} = {value!r}: expected a number >= 0 (0 turns it off)")
    return float(value)


def _networks(values: list[Any]) -> tuple[str, ...]:
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(str(v), strict=False)))
        except ValueError:
            raise ConfigError(f"[sip] trusted_peers: {v!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return tuple(out)


def load_settings(config: Path | None) -> Settings:
    """Read ``config`` (or the default file when it exists; built-in defaults otherwise)."""
    if config is None:
        env = os.environ.get("CALLCENTER_CONFIG")
        config = Path(env) if env else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if config is None:
        return Settings(data_dir=Path(os.environ.get("CALLCENTER_DATA_DIR", "data")))
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {config} is not valid TOML: {exc}") from None
    for table, value in data.items():
        if table not in _KNOWN or not isinstance(value, dict):
            raise ConfigError(f"config file {config}: unknown table [{table}]")
        unknown = set(value) - _KNOWN[table]
        if unknown:
            raise ConfigError(f"config file {config}: unknown key [{table}] {sorted(unknown)[0]}")
    base = config.parent
    srv, sip, ivr = data.get("server", {}), data.get("sip", {}), data.get("ivr", {})
    prompts, logt, asr = data.get("prompts", {}), data.get("log", {}), data.get("asr", {})
    acd, trunk = data.get("acd", {}), data.get("trunk", {})
    recs, tx = data.get("recordings", {}), data.get("transcription", {})
    desk = data.get("desk", {})

    def path(table: str, key: str, raw: Any) -> Path:
        p = Path(os.path.expanduser(_typed(table, key, raw, str)))
        return p if p.is_absolute() else base / p

    eng = EngineConfig()
    eng = replace(
        eng,
        host=_typed("server", "host", srv.get("host", eng.host), str),
        sip_port=_typed("server", "sip_port", srv.get("sip_port", eng.sip_port), int),
        transports=tuple(_typed("sip", "transports", sip.get("transports", list(eng.transports)), list)),
        codecs=tuple(_typed("sip", "codecs", sip.get("codecs", list(eng.codecs)), list)),
        clock_rate=_typed("sip", "clock_rate", sip.get("clock_rate", eng.clock_rate), int),
        max_calls=_typed("sip", "max_calls", sip.get("max_calls", eng.max_calls), int),
        rtp_port=_typed("sip", "rtp_port", sip.get("rtp_port", eng.rtp_port), int),
        rtp_port_range=_typed("sip", "rtp_port_range", sip.get("rtp_port_range", eng.rtp_port_range), int),
        public_address=_typed("sip", "public_address", sip.get("public_address", ""), str) or None,
        user_agent=_typed("sip", "user_agent", sip.get("user_agent", eng.user_agent), str),
        pjsip_log_level=_typed("sip", "pjsip_log_level", sip.get("pjsip_log_level", 2), int),
        media_timeout_s=_number(sip, "media_timeout_s", eng.media_timeout_s),
        rtp_timeout_s=_number(sip, "rtp_timeout_s", eng.rtp_timeout_s),
        max_call_duration_s=_number(sip, "max_call_duration_s", eng.max_call_duration_s),
        session_timer=_typed("sip", "session_timer", sip.get("session_timer", eng.session_timer), str),
        session_expires_s=_typed("sip", "session_expires_s", sip.get("session_expires_s", eng.session_expires_s), int),
        max_calls_per_source=_typed("sip", "max_calls_per_source",
                                    sip.get("max_calls_per_source", eng.max_calls_per_source), int),
        max_new_calls_per_source_per_s=_number(sip, "max_new_calls_per_source_per_s",
                                                eng.max_new_calls_per_source_per_s),
        trusted_peers=_networks(_typed("sip", "trusted_peers", sip.get("trusted_peers", []), list)),
        retry_after_s=_typed("sip", "retry_after_s", sip.get("retry_after_s", eng.retry_after_s), int),
    )
    if eng.session_timer not in ("off", "optional", "required", "always"):
        raise ConfigError(f"[sip] session_timer = {eng.session_timer!r}: use off, optional, required or always")
    if eng.session_expires_s < 90:
        raise ConfigError(f"[sip] session_expires_s = {eng.session_expires_s}: RFC 4028 needs at least 90")
    if eng.max_calls_per_source < 1 or eng.max_new_calls_per_source_per_s <= 0:
        raise ConfigError("[sip] max_calls_per_source and max_new_calls_per_source_per_s must be positive")
    bad = set(eng.transports) - {"udp", "tcp"}
    if bad:
        raise ConfigError(f"[sip] transports: unsupported {sorted(bad)[0]!r} (use 'udp' and/or 'tcp')")
    if eng.clock_rate not in (8000, 16000, 32000, 48000):
        raise ConfigError(f"[sip] clock_rate = {eng.clock_rate}: use 8000, 16000, 32000 or 48000")
    if not 1 <= eng.max_calls <= 512:
        raise ConfigError(f"[sip] max_calls = {eng.max_calls}: the engine is built for 1..512")
    flow_key = "default_flow" if "default_flow" in ivr else "flow"  # `flow` is the old name
    inband = _typed("ivr", "inband_dtmf", ivr.get("inband_dtmf", "auto"), str)
    if inband not in ("auto", "always", "off"):
        raise ConfigError(f"[ivr] inband_dtmf = {inband!r}: use auto, always or off")
    allow = _typed("ivr", "transfer_allow", ivr.get("transfer_allow", []), list)
    for pattern in allow:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ConfigError(f"[ivr] transfer_allow: {pattern!r} is not a SIP URI pattern "
                              "(e.g. \"sip:*@pbx.example.com\")")
    voices = _typed("prompts", "voices", prompts.get("voices", {}), dict)
    for lang, name in voices.items():
        _typed("prompts", f"voices.{lang}", name, str)
    engine_name = _typed("asr", "engine", asr.get("engine", "pocketsphinx"), str)
    if engine_name not in ("pocketsphinx", "vosk"):
        raise ConfigError(f"[asr] engine = {engine_name!r}: use pocketsphinx or vosk")
    vosk_model = path("asr", "vosk_model", asr["vosk_model"]) if asr.get("vosk_model") else None
    if engine_name == "vosk" and vosk_model is None:
        raise ConfigError("[asr] engine = \"vosk\" needs vosk_model, the folder of an installed vosk model")
    trunk_uri = _typed("trunk", "uri", trunk.get("uri", ""), str).strip()
    if trunk_uri and (not trunk_uri.lower().startswith(("sip:", "sips:")) or "{number}" not in trunk_uri):
        raise ConfigError(f"[trunk] uri = {trunk_uri!r}: expected a SIP URI with {{number}}, "
                          "e.g. \"sip:{number}@192.0.2.10:5060\"")
    if trunk_uri:
        hostport = trunk_uri.split("@", 1)[-1].split(";", 1)[0]
        host = hostport[1:hostport.find("]")] if hostport.startswith("[") else hostport.split(":", 1)[0]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"[trunk] uri = {trunk_uri!r}: the gateway must be an IP address (the engine does "
                              "not resolve names, which would stall every call): e.g. "
                              "\"sip:{number}@192.0.2.10:5060\"") from None
    trunk_allow = _typed("trunk", "allow", trunk.get("allow", []), list)
    for pattern in trunk_allow:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ConfigError(f"[trunk] allow: {pattern!r} is not a number pattern (e.g. \"+1555*\")")
    if trunk_uri and not trunk_allow:
        raise ConfigError("[trunk] uri is set but allow is empty: list the number patterns it may dial "
                          "(e.g. allow = [\"+1555*\"]); nothing would be dialled")
    retention = _typed("recordings", "retention", recs.get("retention", {}), dict)
    for queue_name, days in retention.items():
        if _typed("recordings", f"retention.{queue_name}", days, int) < 0:
            raise ConfigError(f"[recordings] retention.{queue_name} = {days}: days must be >= 0 (0: forever)")
    attempts = _typed("acd", "callback_attempts", acd.get("callback_attempts", 3), int)
    retry = _typed("acd", "callback_retry_s", acd.get("callback_retry_s", 120), (int, float))
    if attempts < 1 or retry < 0:
        raise ConfigError("[acd] callback_attempts must be >= 1 and callback_retry_s >= 0")
    keep = _typed("recordings", "retention_days", recs.get("retention_days", 0), int)
    workers = _typed("transcription", "workers", tx.get("workers", 0), int)
    if keep < 0 or workers < 0:
        raise ConfigError("[recordings] retention_days and [transcription] workers must be >= 0")
    grace = _typed("desk", "grace_s", desk.get("grace_s", 20), (int, float))
    heartbeat = _typed("desk", "heartbeat_s", desk.get("heartbeat_s", 10), (int, float))
    if grace < 0 or heartbeat <= 0:
        raise ConfigError("[desk] grace_s must be >= 0 and heartbeat_s > 0")
    return Settings(
        desk_grace_s=float(grace),
        desk_heartbeat_s=float(heartbeat),
        hold_music=path("acd", "hold_music", acd["hold_music"]) if acd.get("hold_music") else DEFAULT_HOLD_MUSIC,
        callback_attempts=attempts,
        callback_retry_s=float(retry),
        trunk_uri=trunk_uri,
        trunk_allow=tuple(p.strip() for p in trunk_allow),
        trunk_from=_typed("trunk", "from_uri", trunk.get("from_uri", ""), str),
        retention_days=keep,
        retention_per_queue={str(k): int(v) for k, v in retention.items()},
        transcribe=_typed("transcription", "enabled", tx.get("enabled", True), bool),
        transcribe_workers=workers,
        keywords=path("transcription", "keywords", tx["keywords"]) if tx.get("keywords") else base / "keywords.yaml",
        scorecards=(path("transcription", "scorecards", tx["scorecards"]) if tx.get("scorecards")
                    else base / "scorecards.yaml"),
        data_dir=path("server", "data_dir", srv["data_dir"]) if "data_dir" in srv else Path("data"),
        http_host=eng.host,
        http_port=_typed("server", "http_port", srv.get("http_port", 8080), int),
        default_flow=path("ivr", flow_key, ivr[flow_key]) if ivr.get(flow_key) else None,
        transfer_allow=tuple(p.strip() for p in allow),
        inband_dtmf=inband,
        demo_crm=_typed("ivr", "demo_crm", ivr.get("demo_crm", False), bool),
        prompt_voice=_typed("prompts", "voice", prompts.get("voice", ""), str),
        prompt_wpm=_typed("prompts", "words_per_minute", prompts.get("words_per_minute", 160), int),
        prompt_voices={"zh": "cmn", **voices},
        prompt_cache=path("prompts", "cache_dir", prompts["cache_dir"]) if prompts.get("cache_dir") else None,
        asr_engine=engine_name,
        vosk_model=vosk_model,
        log_level=_typed("log", "level", logt.get("level", "info"), str),
        engine=eng,
        config_file=config,
    )


def with_overrides(
    s: Settings,
    *,
    data_dir: Path | None = None,
    host: str | None = None,
    sip_port: int | None = None,
    http_port: int | None = None,
) -> Settings:
    eng = s.engine
    if host is not None:
        eng = replace(eng, host=host)
    if sip_port is not None:
        eng = replace(eng, sip_port=sip_port)
    return replace(
        s,
        engine=eng,
        data_dir=data_dir if data_dir is not None else s.data_dir,
        http_host=host if host is not None else s.http_host,
        http_port=http_port if http_port is not None else s.http_port,
    )


def check_data_dir(path: Path) -> Path:
    """The data directory must exist and be writable; say which of the two it is not."""
    if not path.exists():
        raise ConfigError(f"data directory {path} does not exist (create it with: mkdir -p {path})")
    if not path.is_dir():
        raise ConfigError(f"data directory {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"data directory {path} is not writable")
    return path.resolve()
