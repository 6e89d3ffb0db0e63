"""The engine thread's state: the pjsua2 Endpoint, the live calls, the SIP guard, the watchdog.

Only the engine thread calls these methods (voice/engine.py marshals every command here).

Call identity: every call gets an engine id (``Call.cid``) that is never reused. Commands name
calls by it; one for an ended call raises ``CallGone`` and can never reach a newer call that
pjsua gave the same call slot. Call objects are dropped only after pjsua has let go of them
(native/pjsua2/patches/0001-call-lifetime.patch makes that safe even when the slot is reused).

Nothing dials out by itself: a REFER is refused (403), an INVITE with Replaces too, and the SIP
guard (native/pjsua2/guard/) answers every request outside a dialog that is not a call or a
keep-alive, itself, with a response to its source. The engine's own REFER (``transfer``, a
blind transfer the application decided on) and the calls the application places (``dial``,
voice/outbound.py) are the only ways a call leaves.

The SIP guard counts incoming calls per source (their INVITE's Call-ID) until ``callEnded``;
a call we placed was never counted there (its INVITE is ours), so its end is not reported to
the guard (a far end that reused our Call-ID for an INVITE of its own would otherwise get its
count lowered). The guard's "every line busy" check counts pjsua's calls, placed ones included.

Keys: RFC 4733 telephone-events and SIP INFO (the guard normalizes INFO bodies so pjsua answers
200 and reports them) arrive as ``DtmfReceived``; whether the far end offered telephone-event
at all is ``MediaReady.telephone_event`` (if not, the application detects keys in-band).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import ipaddress
import itertools
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pjsua2 as pj

from . import pj_objects
from .bridge import Bridges
from .config import EngineConfig
from .events import (
    CallAnswered,
    CallEnded,
    CallHeld,
    CallProgress,
    DtmfReceived,
    EngineEvent,
    IncomingCall,
    MediaReady,
    PlaybackDone,
    TransferDone,
    TransferRefused,
)
from .exceptions import CallGone, EngineError, EngineStopped
from .identity import caller_identity
from .liveness import Watchdog
from .media import CallMedia
from .outbound import FromAccounts, Sinks, call_param, check_uri
from .pj_log import PjLogWriter
from .ports import BridgePort, Ports
from .text import clean

log = logging.getLogger("voice.engine")

_TRANSPORTS = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP}
_TIMERS = {"off": pj.PJSUA_SIP_TIMER_INACTIVE, "optional": pj.PJSUA_SIP_TIMER_OPTIONAL,
           "required": pj.PJSUA_SIP_TIMER_REQUIRED, "always": pj.PJSUA_SIP_TIMER_ALWAYS}
_TICK_S = 0.25  # playback deadlines
_LIVENESS_S = 1.0
_SUMMARY_S = 10.0  # the guard's refusals and suppressed log lines: one summary per period
_MAX_REFER_LOGS = 3  # per call
_MAX_HOLD_LOGS = 10  # per call
_TRIM_WINDOW_S = 45.0  # trim while calls ended this recently (pjsip frees a call's last 32 s after it)
_DIGITS = frozenset("0123456789*#ABCD")
_DTMF_SOURCES: dict[int, Literal["rfc4733", "info"]] = {pj.PJSUA_DTMF_METHOD_RFC2833: "rfc4733",
                                                        pj.PJSUA_DTMF_METHOD_SIP_INFO: "info"}
_DTMF_METHODS = {"rfc4733": pj.PJSUA_DTMF_METHOD_RFC2833, "info": pj.PJSUA_DTMF_METHOD_SIP_INFO}
_SEND_DIGITS = re.compile(r"[0-9*#A-D]{1,64}")
_TRANSFER_URI = re.compile(r"(?i:sips?|tel):[!-~]{1,500}")  # printable ASCII: no space, no CR/LF
_MAX_DTMF_LOGS = 3  # per call: keys outside 0-9 * # A-D


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn = ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def describe(exc: BaseException) -> str:
    if isinstance(exc, pj.Error):
        return f"{exc.title}: {exc.reason}" if getattr(exc, "title", "") else str(exc.reason)
    return str(exc)


def guard_key(sip_call_id: str) -> str:
    """The SIP guard's name for a Call-ID: bytes outside printable ASCII as '?' (sip_guard.cpp)."""
    raw = sip_call_id.encode("utf-8", "surrogateescape")
    return bytes(c if 0x20 <= c < 0x7F else 0x3F for c in raw).decode("ascii")


class EngineCore:
    """Engine-thread state. Only the engine thread calls these methods or touches these dicts."""

    def __init__(self, config: EngineConfig, emit: Callable[[Callable[[], None]], None]) -> None:
        self.config = config
        self._emit = emit
        self.stopping = False
        self.ep: Any = None
        self.account: pj_objects.Account | None = None
        self.log_writer: PjLogWriter | None = None
        self.guard: Any = None  # pj.SipGuard
        self._trusted_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []  # may assert identities
        self.calls: dict[int, pj_objects.Call] = {}  # engine id -> call
        self._ids = itertools.count(1)  # engine ids of calls and bridge ports (voice/ports.py): never reused
        self._graveyard: list[Any] = []  # objects to drop after the current callback returns
        self.port_table: dict[int, BridgePort] = {}
        self.members: collections.ChainMap[int, Any] = collections.ChainMap(self.calls, self.port_table)  # by id
        self.bridges = Bridges(self.members)
        self.media = CallMedia(self, config.clock_rate, self._graveyard.append, self._playback_done, self.bridges)
        self.ports = Ports(self.port_table, self.members, self._ids, self.bridges, self.media, config.clock_rate)
        self.sinks = Sinks(emit)  # placed calls' events go to their own sinks
        self.from_accounts = FromAccounts(self._from_account)
        self.watchdog = Watchdog(config.media_timeout_s, config.rtp_timeout_s, config.max_call_duration_s)
        self._last_end = float("-inf")  # when the last call ended (time.monotonic)
        self._malloc_trim = _malloc_trim()
        now = time.monotonic()
        self._next_tick = self._next_liveness = now
        self._next_summary = now + _SUMMARY_S

    # -- events -----------------------------------------------------------------------------
    def post(self, event: EngineEvent) -> None:
        if not self.sinks.route(event):
            self._emit(functools.partial(self.deliver, event))

    deliver: Callable[[EngineEvent], None]

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        self.ep = pj.Endpoint()
        with _quiet_stdout():  # pjlib logs its start-up to stdout before our log writer exists
            self.ep.libCreate()
        ep_cfg = pj.EpConfig()
        ua = ep_cfg.uaConfig
        ua.threadCnt = 0
        ua.mainThreadOnly = True
        ua.maxCalls = cfg.max_calls
        ua.userAgent = cfg.user_agent
        self.log_writer = PjLogWriter()
        ep_cfg.logConfig.writer = self.log_writer
        ep_cfg.logConfig.level = cfg.pjsip_log_level
        ep_cfg.logConfig.consoleLevel = cfg.pjsip_log_level
        ep_cfg.logConfig.decor = 0
        pj_objects.configure_media(ep_cfg.medConfig, cfg.clock_rate)
        self.ep.libInit(ep_cfg)
        self.ep.audDevManager().setNullDev()
        self._install_guard()
        for name in cfg.transports:
            tcfg = pj.TransportConfig()
            tcfg.port = cfg.sip_port
            if cfg.host not in ("0.0.0.0", ""):
                tcfg.boundAddress = cfg.host
            if cfg.public_address:
                tcfg.publicAddress = cfg.public_address
            try:
                self.ep.transportCreate(_TRANSPORTS[name], tcfg)
            except pj.Error as exc:
                raise EngineError(
                    f"cannot listen for SIP on {name.upper()} {cfg.host}:{cfg.sip_port}: {describe(exc)}"
                ) from None
        self.ep.libStart()
        self._set_codecs()
        self.account = pj_objects.Account(self)
        self.account.create(self._account_config(f"sip:callcenter@{cfg.public_address or cfg.host}:{cfg.sip_port}"),
                            True)

    def _account_config(self, id_uri: str) -> Any:
        cfg = self.config
        acc_cfg = pj.AccountConfig()
        acc_cfg.idUri = id_uri
        acc_cfg.mediaConfig.transportConfig.port = cfg.rtp_port
        acc_cfg.mediaConfig.transportConfig.portRange = cfg.rtp_port_range
        if cfg.host not in ("0.0.0.0", ""):
            acc_cfg.mediaConfig.transportConfig.boundAddress = cfg.host
        acc_cfg.callConfig.timerUse = _TIMERS[cfg.session_timer]
        acc_cfg.callConfig.timerSessExpiresSec = cfg.session_expires_s
        acc_cfg.callConfig.timerMinSESec = min(90, cfg.session_expires_s)
        acc_cfg.presConfig.publishEnabled = False
        return acc_cfg

    def _from_account(self, from_uri: str) -> pj_objects.Account:
        """An account whose id is ``from_uri``: the From of the calls placed with it."""
        acc = pj_objects.Account(self)
        acc.create(self._account_config(from_uri), False)
        return acc

    def _trusted(self, source: str) -> bool:
        """Is ``source`` ("ip:port" or "[ip6]:port") in [sip] trusted_peers? (They may assert identities.)"""
        if not self._trusted_nets:
            return False
        try:
            ip = ipaddress.ip_address(source.rpartition(":")[0].strip("[]"))  # pjsip always gives the port
        except ValueError:
            return False
        return any(ip in net for net in self._trusted_nets)

    def _install_guard(self) -> None:
        cfg = self.config
        guard = pj.SipGuard()
        guard.setLimits(cfg.max_calls, cfg.max_calls_per_source, cfg.max_new_calls_per_source_per_s,
                        max(1.0, 2 * cfg.max_new_calls_per_source_per_s), cfg.retry_after_s)
        for peer in cfg.trusted_peers:
            net = ipaddress.ip_network(peer, strict=False)
            guard.addTrusted(str(net.network_address), net.prefixlen)
        self._trusted_nets = [ipaddress.ip_network(p, strict=False) for p in cfg.trusted_peers]
        guard.install()
        self.guard = guard

    def _set_codecs(self) -> None:
        wanted = [c.upper() for c in self.config.codecs]
        available = [c.codecId for c in self.ep.codecEnum2()]
        for codec_id in available:
            prio = 0
            for rank, name in enumerate(wanted):
                if codec_id.upper().startswith(name):
                    prio = 255 - rank
            self.ep.codecSetPriority(codec_id, prio)
        if not any(c.upper().startswith(w) for c in available for w in wanted):
            raise EngineError(f"none of the configured codecs {wanted} is available in {available}")

    def handle_events(self, timeout_ms: int) -> None:
        self.ep.libHandleEvents(timeout_ms)
        self.media.finish_ended(self.members)
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + _TICK_S
            self.media.finish_overdue(now)
            if now >= self._next_liveness:
                self._next_liveness = now + _LIVENESS_S
                self._check_liveness(now)
            if now >= self._next_summary:
                self._next_summary = now + _SUMMARY_S
                self._summarize()
        self.reap()

    def reap(self) -> None:
        """Drop the objects callbacks retired (outside any callback; closes recordings)."""
        if self._graveyard:
            self._graveyard.clear()

    def shutdown(self, grace_s: float = 2.0) -> None:
        """Hang up, drop every pjsua2 object, then ``libDestroy`` (engine thread only)."""
        self.stopping = True
        if self.ep is None:
            return
        if self.guard is not None:
            self.guard.setStopping(True)
        try:
            self.ep.hangupAllCalls()
        except pj.Error as exc:
            log.warning("hangupAllCalls failed: %s", describe(exc))
        deadline = grace_s * 1000
        while self.calls and deadline > 0:
            self.handle_events(10)
            deadline -= 10
        for call in list(self.calls.values()):  # calls that never confirmed their BYE
            self._close_call(call, 0, "engine shutdown")
        self.reap()
        self.from_accounts.shutdown()
        if self.account is not None:
            self.account.shutdown()
            self.account = None
        self._summarize()
        if self.guard is not None:
            self.guard.uninstall()
        self.ep.libDestroy()
        self.guard = None
        self.ep = None
        self.log_writer = None

    def _trim_heap(self) -> None:
        """Give the heap that ended calls freed back to the system.

        pjsip frees a call's dialog and transactions up to 32 s after the call (Timer J), but
        glibc keeps the freed pages in this thread's arena, fragmented between live blocks:
        after a burst of 2,000 short calls RSS stayed at 322 MB with 47 MB in use (162 MB
        with this trim).
        ``malloc_trim(0)`` returns the free pages; it runs here, every summary period (10 s)
        while calls ended within ``_TRIM_WINDOW_S`` (pjsip frees a call's transactions up to
        32 s after its end), and costs a few milliseconds."""
        if self._malloc_trim is None or time.monotonic() - self._last_end > _TRIM_WINDOW_S:
            return
        t0 = time.perf_counter()
        self._malloc_trim(0)
        log.debug("heap trimmed", extra={"ms": round((time.perf_counter() - t0) * 1000, 2)})

    def _summarize(self) -> None:
        self._trim_heap()
        if self.log_writer is not None:
            self.log_writer.flush()
        if self.guard is None:
            return
        c = self.guard.takeCounts()
        refused = {"busy": c.full, "source_busy": c.sourceBusy, "source_rate": c.sourceRate,
                   "stopping": c.stopping, "bad_scheme": c.badScheme, "bad_offer": c.badOffer,
                   "bad_event": c.badEvent, "not_allowed": c.notAllowed, "no_dialog": c.noDialog,
                   "not_implemented": c.notImplemented}
        refused = {k: v for k, v in refused.items() if v}
        if refused:
            log.warning("refused SIP requests", extra={**refused, "accepted": c.accepted,
                                                       "last": clean(c.lastRefused, 120)})

    # -- callbacks from pj_objects ----------------------------------------------------------------
    def new_call(self, call: pj_objects.Call, prm: Any) -> None:
        call.cid = next(self._ids)
        self.calls[call.cid] = call
        if self.stopping:
            self._hangup(call, 503)
            return
        try:
            ci = call.getInfo()
            call.sip_call_id = ci.callIdString
            source = str(prm.rdata.srcAddress)
            ident = caller_identity(prm.rdata.wholeMsg, ci.remoteUri, ci.localUri,
                                    trust_asserted=self._trusted(source))
            event = IncomingCall(call=call.cid, sip_call_id=clean(ci.callIdString, 256),
                                 caller=clean(ci.remoteUri), callee=clean(ci.localUri),
                                 remote_address=clean(str(prm.rdata.srcAddress), 64),
                                 caller_number=ident.number, caller_name=ident.name,
                                 dialled_number=ident.dialled)
        except Exception:
            log.exception("incoming call unreadable", extra={"call": call.cid})
            self._hangup(call, 500)
            return
        self.post(event)

    def on_call_confirmed(self, call: pj_objects.Call) -> None:
        self.post(CallAnswered(call=call.cid))
        if call.outbound:
            self.watchdog.answered(call.liveness, time.monotonic())
            if not call.media_started:  # its media came with the 200 OK (or early): ready now
                self.on_media_state(call)

    def on_call_progress(self, call: pj_objects.Call, code: int) -> None:
        self.post(CallProgress(call=call.cid, status=code))

    def on_media_state(self, call: pj_objects.Call) -> None:
        if call.ended:
            return
        ci = call.getInfo()
        mi = next((m for m in ci.media if m.type == pj.PJMEDIA_TYPE_AUDIO), None)
        if mi is None:
            return
        audio = None
        if mi.audioConfSlot >= 0 and mi.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
            try:
                audio = call.getAudioMedia(mi.index)
            except pj.Error:
                audio = None
        call.audio = audio
        call.media_index = mi.index
        self.media.rewire(call)
        two_way = mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE and mi.dir == pj.PJMEDIA_DIR_ENCODING_DECODING
        held = not two_way
        now = time.monotonic()
        if two_way and not call.media_started and (call.confirmed or not call.outbound):
            # (a placed call's early media, a 183's, is bridged and heard but not "ready")
            call.media_started = True
            try:
                call.codec = call.getStreamInfo(mi.index).codecName
            except pj.Error:
                call.codec = ""
            self.watchdog.media_started(call.liveness, now)
            call.telephone_event = pj.remoteTelephoneEvent(call.handle, mi.index) != 0  # unknown: assume so
            self.post(MediaReady(call=call.cid, codec=call.codec, telephone_event=call.telephone_event))
        elif call.media_started and held != call.held:
            self.watchdog.set_held(call.liveness, held, now)
            call.hold_changes += 1
            if call.hold_changes <= _MAX_HOLD_LOGS:  # a re-INVITE storm cannot flood the log
                log.info("call %s", "held" if held else "resumed", extra={"call": call.cid})
            self.post(CallHeld(call=call.cid, held=held))
        if call.media_started:
            call.held = held

    def on_refer(self, call: pj_objects.Call, target: str) -> None:
        call.refers += 1
        if call.refers <= _MAX_REFER_LOGS:
            log.warning("REFER refused", extra={"call": call.cid, "target": clean(target, 200)})
            self.post(TransferRefused(call=call.cid, target=clean(target, 200)))

    def on_dtmf(self, call: pj_objects.Call, digit: str, method: int) -> None:
        if call.ended:
            return
        key = digit.strip().upper()
        source = _DTMF_SOURCES.get(method)
        if key not in _DIGITS or source is None:
            call.bad_keys += 1
            if call.bad_keys <= _MAX_DTMF_LOGS:
                log.info("DTMF key ignored", extra={"call": call.cid, "digit": clean(digit, 16), "method": method})
            return
        self.post(DtmfReceived(call=call.cid, digit=key, source=source))

    def on_transfer_status(self, call: pj_objects.Call, code: int, reason: str, final: bool) -> bool:
        """A REFER we sent progressed; True to hear more. The first final status settles it."""
        if not call.transferring:
            return False
        if code < 200 and not final:
            return True
        call.transferring = False
        ok = 200 <= code < 300
        log.info("transfer %s", "done" if ok else "failed", extra={"call": call.cid, "status": code})
        self.post(TransferDone(call=call.cid, ok=ok, status=code, reason=clean(reason, 200)))
        return False

    def on_player_eof(self, call: int, playback: int) -> None:
        """Called on pjmedia's event thread, not the engine thread: only queue the news."""
        self.media.eofs.put((call, playback))

    def _playback_done(self, call: int, playback: int, stopped: bool) -> None:
        self.post(PlaybackDone(call=call, playback=playback, stopped=stopped))

    def on_call_disconnected(self, call: pj_objects.Call, code: int, reason: str) -> None:
        self._close_call(call, code, reason)

    def _close_call(self, call: pj_objects.Call, code: int, reason: str) -> None:
        call.ended = True
        self._last_end = time.monotonic()
        self.calls.pop(call.cid, None)
        if self.guard is not None and call.sip_call_id and not call.outbound:  # (see the module docstring)
            try:
                self.guard.callEnded(guard_key(call.sip_call_id))
            except Exception:
                log.exception("SIP guard: callEnded failed", extra={"call": call.cid})
        paths = self.media.release(call)
        self._graveyard.append(call)
        self.post(CallEnded(call=call.cid, status_code=code, reason=call.end_reason or clean(reason, 200),
                            local_hangup=call.local_hangup, recordings=paths, ended_by=call.ended_by))

    # -- liveness ------------------------------------------------------------------------------------
    def _check_liveness(self, now: float) -> None:
        for cid, call in list(self.calls.items()):
            if call.local_hangup:
                continue
            rx: int | None = None
            if call.media_started and not call.held and call.media_index >= 0:
                try:
                    rx = int(call.getStreamStat(call.media_index).rtcp.rxStat.pkt)
                except pj.Error:
                    rx = None
            verdict = self.watchdog.verdict(call.liveness, now, rx)
            if verdict is not None:
                call.ended_by = verdict
                call.end_reason = self.watchdog.describe(verdict)
                log.warning("ending call: %s", call.end_reason, extra={"call": cid})
                self._hangup(call, 408 if not call.confirmed else 200)

    @staticmethod
    def _end(call: pj_objects.Call, code: int) -> None:
        call.local_hangup = True
        prm = pj.CallOpParam()
        prm.statusCode = code
        call.hangup(prm)

    def _hangup(self, call: pj_objects.Call, code: int) -> None:
        """The engine's own hang-up: a failure is logged, never raised into a callback."""
        try:
            self._end(call, code)
        except pj.Error as exc:
            log.warning("hangup failed: %s", describe(exc), extra={"call": call.cid})

    # -- commands (run on the engine thread) --------------------------------------------------------
    def call(self, cid: int) -> pj_objects.Call:
        call = self.calls.get(cid)
        if call is None or call.ended:
            raise EngineError(f"{cid} is a bridge port, not a call") if cid in self.port_table else CallGone(
                f"call {cid} has ended")
        return call

    def answer(self, cid: int, code: int) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        self.call(cid).answer(prm)

    def hangup(self, cid: int, code: int) -> None:
        call = self.call(cid)
        if call.outbound and not call.confirmed:
            code = 487  # a CANCEL (pjsua sends one, whatever the code): CallEnded says 487 Request Terminated
        self._end(call, code)

    def play(self, cid: int, path: str, loop: bool = False, start_s: float = 0.0) -> int:
        return self.media.play(self.ports.member(cid), path, loop, start_s)

    def playback_position(self, cid: int, playback: int) -> float | None:
        return self.media.position(self.ports.member(cid), playback)

    def dial(self, uri: str, from_uri: str, headers: dict[str, str],
             sink: Callable[[EngineEvent], None]) -> int:
        """Place a call (voice/outbound.py); its engine id. Its events go to ``sink``."""
        if self.stopping:
            raise EngineStopped("the SIP engine is stopping")
        check_uri(uri)
        prm = call_param(headers)
        assert self.account is not None
        acc = self.from_accounts.get(self.account, from_uri)
        call = pj_objects.Call(acc, pj.PJSUA_INVALID_ID, self)
        call.outbound = True
        call.liveness.ringing = True  # no media expected before the answer (voice/liveness.py)
        call.cid = next(self._ids)
        self.calls[call.cid] = call  # before makeCall: nothing pjsua reports can miss it
        self.sinks.hold(call.cid, sink)
        try:
            call.makeCall(uri, prm)
        except pj.Error as exc:
            self.sinks.discard(call.cid)
            self.calls.pop(call.cid, None)
            call.ended = True
            self._graveyard.append(call)
            raise EngineError(f"cannot call {clean(uri, 120)}: {describe(exc)}") from None
        call.handle = call.getId()
        self.sinks.release(call.cid)
        try:
            ci = call.getInfo()
            call.sip_call_id = ci.callIdString
            state, code, reason = ci.state, int(ci.lastStatusCode), ci.lastReason
        except pj.Error as exc:  # pjsua let go of it already
            state, code, reason = pj.PJSIP_INV_STATE_DISCONNECTED, 500, describe(exc)
        log.info("calling", extra={"call": call.cid, "uri": clean(uri, 200)})
        if state == pj.PJSIP_INV_STATE_DISCONNECTED and not call.ended:  # ended inside makeCall
            call.ended = True
            self._close_call(call, code, reason)
        return call.cid

    def bridge(self, a: int, b: int) -> None:
        self.bridges.bridge(self.ports.member(a), self.ports.member(b))

    def unbridge(self, a: int, b: int) -> bool:
        ca, cb = self.members.get(a), self.members.get(b)
        if ca is None or cb is None or ca.ended or cb.ended:
            return False  # an ended call's links went with it
        return self.bridges.unbridge(ca, cb)

    def stop_playback(self, cid: int, playback: int) -> bool:
        return self.media.stop_playback(self.ports.member(cid), playback)

    def record(self, cid: int, path: str) -> None:
        self.media.record(self.ports.member(cid), path)

    def stop_recording(self, cid: int, path: str) -> float:
        return self.media.stop_recording(self.ports.member(cid), path)

    def set_recording_paused(self, cid: int, paused: bool) -> bool:
        return self.media.set_recording_paused(self.ports.member(cid), paused)

    def transfer(self, cid: int, uri: str) -> None:
        call = self.call(cid)
        if not _TRANSFER_URI.fullmatch(uri):
            raise EngineError(f"not a SIP or tel URI to transfer to: {clean(uri, 120)!r}")
        if call.transferring:
            raise EngineError(f"call {cid} is being transferred already")
        call.xfer(uri, pj.CallOpParam(True))
        call.transferring = True
        log.info("transfer requested", extra={"call": cid, "target": clean(uri, 200)})

    def send_dtmf(self, cid: int, digits: str, method: str) -> None:
        call = self.call(cid)
        if method not in _DTMF_METHODS:
            raise EngineError(f"unknown DTMF method {method!r} (rfc4733 or info)")
        if not _SEND_DIGITS.fullmatch(digits):
            raise EngineError(f"DTMF digits must be 1-64 of 0-9 * # A-D, not {clean(digits, 80)!r}")
        prm = pj.CallSendDtmfParam()
        prm.method = _DTMF_METHODS[method]
        prm.digits = digits
        call.sendDtmf(prm)

    def open_tap(self, cid: int, buffer_ms: int, listen: bool, speak: bool) -> tuple[int, Any]:
        return self.media.open_tap(self.ports.member(cid), buffer_ms, listen, speak)

    def close_tap(self, tap_id: int) -> bool:
        return self.media.close_tap(self.members, tap_id)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
