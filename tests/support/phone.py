"""A pjsua2 test phone that runs in its own process.

    python tests/support/phone.py sip:ivr@127.0.0.1:5060 --record heard.wav --play tone.wav \\
        --dtmf "1@2.0,23@5.5" --dtmf-method info --say sales.wav@8

It calls the URI, plays a WAV into the call (looped) while recording what it hears, waits for
the far end to hang up (or hangs up itself after --hangup-after seconds) and prints one JSON
report on stdout: status code, SIP Call-ID, timings and whether media flowed.

Pressing keys: ``--dtmf`` lists ``DIGITS@SECONDS`` (seconds after the call's audio started),
sent by ``--dtmf-method``: ``rfc4733`` (telephone-events in RTP), ``info`` (SIP INFO,
application/dtmf-relay), ``info-dtmf`` (SIP INFO, application/dtmf: one digit per INFO) or
``inband`` (the dual tones themselves, generated here and played into the call, 100 ms per key
and 100 ms between keys). ``--no-telephone-event`` leaves telephone-event out of the phone's SDP
(pjsua2.setTelephoneEvent, the project's binding): the far end then negotiates none.
``--say FILE@SECONDS`` plays a WAV once at that time (spoken menu answers).

Identity: ``--from`` is the From header (a name-addr, display name and all); ``--header`` adds
a header to the INVITE (e.g. a P-Asserted-Identity). Transfers: a REFER from the far end is
reported (``refer``: its target) and refused with 603, or with ``--accept-refer`` accepted
(202): the phone then calls the target, and reports that call as ``transfer_call``.
Keys the far end sends are reported in ``dtmf_heard``, the final responses to the phone's own
INFOs in ``info_responses``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import wave
from typing import Any

import numpy as np
import pjsua2 as pj

_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_METHODS = {"rfc4733": pj.PJSUA_DTMF_METHOD_RFC2833, "info": pj.PJSUA_DTMF_METHOD_SIP_INFO}


def dtmf_tones(digits: str, rate: int = 8000, on_s: float = 0.1, off_s: float = 0.1) -> np.ndarray:
    """int16 PCM of the keys' dual tones (each tone at -15 dBFS), with silence between keys."""
    t = np.arange(int(on_s * rate)) / rate
    gap = np.zeros(int(off_s * rate))
    parts = [gap]
    for d in digits.upper():
        row = next(i for i, keys in enumerate(_KEYPAD) if d in keys)
        col = _KEYPAD[row].index(d)
        parts += [0.35 * np.sin(2 * np.pi * _ROWS[row] * t) + 0.35 * np.sin(2 * np.pi * _COLS[col] * t), gap]
    return (np.concatenate(parts) * 32767 * 0.5).astype(np.int16)


def write_wav(path: str, pcm: np.ndarray, rate: int = 8000) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def timed(spec: str, what: str) -> tuple[str, float]:
    """``VALUE@SECONDS`` -> (VALUE, seconds)."""
    value, sep, at = spec.rpartition("@")
    try:
        if not sep or not value:
            raise ValueError
        return value, float(at)
    except ValueError:
        raise SystemExit(f"{what}: expected VALUE@SECONDS, got {spec!r}") from None


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.report: dict[str, Any] = {"connected": False, "media": False, "dtmf_sent": [], "dtmf_heard": [],
                                       "said": []}
        self.t0 = time.monotonic()
        self.done = False
        self.recorder: pj.AudioMediaRecorder | None = None
        self.player: pj.AudioMediaPlayer | None = None
        self.audio: Any = None  # the main call's AudioMedia once it flows
        self.media_at: float | None = None
        self.once: list[pj.AudioMediaPlayer] = []  # players of --say and in-band keys (kept alive)
        self.children: list[PhoneCall] = []  # calls placed because of an accepted REFER
        self.schedule: list[tuple[float, str, str]] = sorted(
            [(t, "dtmf", d) for d, t in (timed(s.strip(), "--dtmf") for s in args.dtmf.split(",") if s.strip())]
            + [(t, "say", f) for f, t in (timed(s, "--say") for s in args.say)])
        self.tmp = tempfile.mkdtemp(prefix="phone-")

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def run_due(self, call: PhoneCall) -> None:
        """Send the keys and play the files whose time (after the audio started) has come."""
        if self.media_at is None or self.done:
            return
        since = time.monotonic() - self.media_at
        while self.schedule and self.schedule[0][0] <= since:
            _, kind, value = self.schedule.pop(0)
            try:
                if kind == "dtmf":
                    self.send_keys(call, value)
                    self.report["dtmf_sent"].append({"digits": value, "at": round(since, 3),
                                                     "method": self.args.dtmf_method})
                else:
                    self.play_once(value)
                    self.report["said"].append({"file": value, "at": round(since, 3)})
            except pj.Error as exc:
                self.report.setdefault("errors", []).append(f"{kind} {value}: {exc.info()}")

    def send_keys(self, call: PhoneCall, digits: str) -> None:
        method = self.args.dtmf_method
        if method in _METHODS:
            prm = pj.CallSendDtmfParam()
            prm.method = _METHODS[method]
            prm.digits = digits
            call.sendDtmf(prm)
        elif method == "info-dtmf":
            for d in digits:
                req = pj.CallSendRequestParam()
                req.method = "INFO"
                req.txOption.contentType = "application/dtmf"
                req.txOption.msgBody = d
                call.sendRequest(req)
        else:  # inband
            path = os.path.join(self.tmp, f"keys-{len(self.once)}.wav")
            write_wav(path, dtmf_tones(digits))
            self.play_once(path)

    def play_once(self, path: str) -> None:
        player = pj.AudioMediaPlayer()
        player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        if self.audio is not None:
            player.startTransmit(self.audio)
        self.once.append(player)


class PhoneCall(pj.Call):
    def __init__(self, acc: pj.Account, phone: Phone, transfer: bool = False) -> None:
        super().__init__(acc)
        self.acc = acc
        self.phone = phone
        self.transfer = transfer  # placed to a REFER's target, not the phone's own call

    def onCallState(self, prm: object) -> None:
        ci = self.getInfo()
        if self.transfer:
            t = self.phone.report.setdefault("transfer_call", {"connected": False})
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
                t["connected"] = True
            elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                t["status_code"] = ci.lastStatusCode
            return
        r = self.phone.report
        r["sip_call_id"] = ci.callIdString
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not r["connected"]:
            r["connected"] = True
            r["answered_at"] = self.phone.elapsed()
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            r["status_code"] = ci.lastStatusCode
            r["reason"] = ci.lastReason
            r["ended_at"] = self.phone.elapsed()
            self.phone.done = True

    def onCallMediaState(self, prm: object) -> None:
        if self.transfer:
            return
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.phone.report["media"]:
                    return
                self.phone.report["media"] = True
                self.phone.report["media_at"] = self.phone.elapsed()
                self.phone.media_at = time.monotonic()
                self.phone.report["codec"] = self.getStreamInfo(mi.index).codecName
                am = self.getAudioMedia(mi.index)
                self.phone.audio = am
                if self.phone.args.record:
                    rec = pj.AudioMediaRecorder()
                    rec.createRecorder(self.phone.args.record)
                    am.startTransmit(rec)
                    self.phone.recorder = rec
                else:  # something must listen, or the bridge never clocks the stream (nor sends keys)
                    am.startTransmit(pj.Endpoint.instance().audDevManager().getPlaybackDevMedia())
                if self.phone.args.play:
                    player = pj.AudioMediaPlayer()
                    player.createPlayer(self.phone.args.play, 0)
                    player.startTransmit(am)
                    self.phone.player = player
                return

    def onCallTransferRequest(self, prm: Any) -> None:
        accept = bool(self.phone.args.accept_refer) and not self.transfer
        self.phone.report["refer"] = {"target": prm.dstUri, "accepted": accept, "at": self.phone.elapsed()}
        if not accept:
            prm.statusCode = 603
            return
        prm.statusCode = 202
        child = PhoneCall(self.acc, self.phone, transfer=True)
        self.phone.children.append(child)
        prm.newCall = child

    def onCallTsxState(self, prm: Any) -> None:
        # The final responses to the INFOs this phone sent (keys by SIP INFO).
        if prm.e.type != pj.PJSIP_EVENT_TSX_STATE or self.transfer:
            return
        tsx = prm.e.body.tsxState.tsx
        if (tsx.role == pj.PJSIP_ROLE_UAC and tsx.method == "INFO" and tsx.statusCode >= 200
                and tsx.state == pj.PJSIP_TSX_STATE_COMPLETED):
            self.phone.report.setdefault("info_responses", []).append(tsx.statusCode)

    def onDtmfDigit(self, prm: Any) -> None:
        method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
        self.phone.report["dtmf_heard"].append({"digit": prm.digit, "method": method, "at": self.phone.elapsed()})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("uri")
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--record", help="WAV file for what the phone hears")
    ap.add_argument("--play", help="WAV file the phone sends (looped)")
    ap.add_argument("--hangup-after", type=float, help="hang up after this many seconds of connection")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--codec", default="PCMU/8000")
    ap.add_argument("--local-ip", default="127.0.0.1", help="loopback address to call from (a second source)")
    ap.add_argument("--dtmf", default="", help="keys to press: DIGITS@SECONDS[,DIGITS@SECONDS...] after media starts")
    ap.add_argument("--dtmf-method", choices=["rfc4733", "info", "info-dtmf", "inband"], default="rfc4733")
    ap.add_argument("--no-telephone-event", action="store_true", help="offer no telephone-event in the SDP")
    ap.add_argument("--say", action="append", default=[], help="FILE@SECONDS: play a WAV once at that time")
    ap.add_argument("--accept-refer", action="store_true", help="accept a REFER (202) and call its target")
    ap.add_argument("--from", dest="from_uri", help='the From header, e.g. "\\"Alice\\" <sip:+15551234@127.0.0.1>"')
    ap.add_argument("--header", action="append", default=[], help='an extra INVITE header, "Name: value"')
    args = ap.parse_args()
    for spec in args.dtmf.split(","):
        digits = timed(spec.strip(), "--dtmf")[0] if spec.strip() else ""
        if any(d not in "0123456789*#ABCDabcd" for d in digits):
            raise SystemExit(f"--dtmf: keys are 0-9 * # A-D, got {digits!r}")

    phone = Phone(args)
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    if args.no_telephone_event and not pj.setTelephoneEvent(False):
        raise SystemExit("could not switch telephone-event off")
    phone.report["telephone_event"] = not args.no_telephone_event
    ep.audDevManager().setNullDev()
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = args.local_ip
    ep.transportCreate(pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    for c in ep.codecEnum2():
        ep.codecSetPriority(c.codecId, 255 if c.codecId.upper().startswith(args.codec.upper()) else 0)
    acfg = pj.AccountConfig()
    acfg.idUri = args.from_uri or f"sip:phone@{args.local_ip}"
    acfg.mediaConfig.transportConfig.port = 40000
    acfg.mediaConfig.transportConfig.portRange = 20000
    acfg.mediaConfig.transportConfig.boundAddress = args.local_ip
    acc = pj.Account()
    acc.create(acfg)

    call = PhoneCall(acc, phone)
    uri = args.uri + (";transport=tcp" if args.transport == "tcp" else "")
    prm = pj.CallOpParam(True)
    for line in args.header:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"--header: expected 'Name: value', got {line!r}")
        hdr = pj.SipHeader()
        hdr.hName, hdr.hValue = name.strip(), value.strip()
        prm.txOption.headers.append(hdr)
    try:
        call.makeCall(uri, prm)
    except pj.Error as exc:
        phone.report["error"] = exc.info()
        phone.done = True
    hung_up = False
    deadline = time.monotonic() + args.timeout
    while not phone.done and time.monotonic() < deadline:
        ep.libHandleEvents(10)
        phone.run_due(call)
        if (args.hangup_after is not None and not hung_up and phone.report["connected"]
                and phone.elapsed() - float(phone.report["answered_at"]) >= args.hangup_after):
            hung_up = True
            phone.report["local_hangup"] = True
            call.hangup(pj.CallOpParam())
    if not phone.done:
        phone.report["timeout"] = True
        call.hangup(pj.CallOpParam())
        for _ in range(100):
            ep.libHandleEvents(10)
    if phone.children:  # a transfer's call may still be up: end it before tearing down
        ep.hangupAllCalls()
        for _ in range(50):
            ep.libHandleEvents(10)
    # Destroy every pjsua2 object on this thread before libDestroy (recorder closes its WAV).
    phone.recorder = None
    phone.player = None
    phone.audio = None
    phone.once.clear()
    phone.children.clear()
    del call
    acc.shutdown()
    del acc
    ep.libDestroy()
    shutil.rmtree(phone.tmp, ignore_errors=True)
    print(json.dumps(phone.report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
