"""A pjsua2 test phone that runs in its own process.

    python tests/support/phone.py sip:ivr@127.0.0.1:5060 --record heard.wav --play tone.wav

It calls the URI, plays a WAV into the call (looped) while recording what it hears, waits for
the far end to hang up (or hangs up itself after --hangup-after seconds) and prints one JSON
report on stdout: status code, SIP Call-ID, timings and whether media flowed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pjsua2 as pj


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.report: dict[str, object] = {"connected": False, "media": False}
        self.t0 = time.monotonic()
        self.done = False
        self.recorder: pj.AudioMediaRecorder | None = None
        self.player: pj.AudioMediaPlayer | None = None

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)


class PhoneCall(pj.Call):
    def __init__(self, acc: pj.Account, phone: Phone) -> None:
        super().__init__(acc)
        self.phone = phone

    def onCallState(self, prm: object) -> None:
        ci = self.getInfo()
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
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.phone.report["media"]:
                    return
                self.phone.report["media"] = True
                self.phone.report["codec"] = self.getStreamInfo(mi.index).codecName
                am = self.getAudioMedia(mi.index)
                if self.phone.args.record:
                    rec = pj.AudioMediaRecorder()
                    rec.createRecorder(self.phone.args.record)
                    am.startTransmit(rec)
                    self.phone.recorder = rec
                if self.phone.args.play:
                    player = pj.AudioMediaPlayer()
                    player.createPlayer(self.phone.args.play, 0)
                    player.startTransmit(am)
                    self.phone.player = player
                return


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
    args = ap.parse_args()

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
    ep.audDevManager().setNullDev()
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = args.local_ip
    ep.transportCreate(pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    for c in ep.codecEnum2():
        ep.codecSetPriority(c.codecId, 255 if c.codecId.upper().startswith(args.codec.upper()) else 0)
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:phone@{args.local_ip}"
    acfg.mediaConfig.transportConfig.port = 40000
    acfg.mediaConfig.transportConfig.portRange = 20000
    acfg.mediaConfig.transportConfig.boundAddress = args.local_ip
    acc = pj.Account()
    acc.create(acfg)

    call = PhoneCall(acc, phone)
    uri = args.uri + (";transport=tcp" if args.transport == "tcp" else "")
    try:
        call.makeCall(uri, pj.CallOpParam(True))
    except pj.Error as exc:
        phone.report["error"] = exc.info()
        phone.done = True
    hung_up = False
    deadline = time.monotonic() + args.timeout
    while not phone.done and time.monotonic() < deadline:
        ep.libHandleEvents(10)
        if (args.hangup_after is not None and not hung_up and phone.report["connected"]
                and phone.elapsed() - float(phone.report["answered_at"]) >= args.hangup_after):  # type: ignore[arg-type]
            hung_up = True
            phone.report["local_hangup"] = True
            call.hangup(pj.CallOpParam())
    if not phone.done:
        phone.report["timeout"] = True
        call.hangup(pj.CallOpParam())
        for _ in range(100):
            ep.libHandleEvents(10)
    # Destroy every pjsua2 object on this thread before libDestroy (recorder closes its WAV).
    phone.recorder = None
    phone.player = None
    del call
    acc.shutdown()
    del acc
    ep.libDestroy()
    print(json.dumps(phone.report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
