"""A pjsua2 agent softphone in its own process: it listens on a SIP port and takes calls.

    python tests/support/agent_phone.py --port 25070 --answer-after 1.0 --play agent-tone.wav \\
        --record-dir /tmp/agent --calls 3 --behaviour reject:486,answer,noanswer

Every INVITE is rung (180 Ringing at once); then, per call (``--behaviour``, one entry per call
in order, the last one repeating; otherwise the flags): ``answer`` after ``--answer-after``
seconds, ``reject`` (or ``reject:CODE``) with ``--reject`` (default 486) after the same delay,
or ``noanswer``: ring until the caller gives up (CANCEL). An answered call plays ``--play``
(looped) and records what it hears into ``--record-dir`` (``call-<index>.wav``), puts the call
on hold at ``--hold-at`` seconds after the answer and resumes it at ``--resume-at`` (re-INVITEs:
sendonly, then sendrecv), and hangs up after ``--hangup-after`` seconds (else the far end does).

Output (stdout, one JSON object per line, flushed at once): ``{"type": "ready", "port": P}`` when
listening; one ``{"type": "call", ...}`` per call when it ends: index, from, headers (the
INVITE's X- headers), invite_at, answered_at, ended_at (epoch seconds or null), canceled (a CANCEL
ended it), status (the final status: the reject code, 487 after a CANCEL, 200 for an answered
call), local_hangup, recording (path or null), held; and a final ``{"type": "summary", ...}``. It
exits after ``--calls`` calls, after ``--timeout`` seconds, or on SIGTERM (calls up are hung up
first), with code 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

import pjsua2 as pj

STOP = False
# The JSON lines go to the original stdout; pjlib logs to fd 1 (its start-up banner even before
# its log settings apply), so fd 1 is pointed at stderr in main().
OUT = sys.stdout


def _on_term(signum: int, frame: Any) -> None:
    global STOP
    STOP = True


def emit(obj: dict[str, Any]) -> None:
    OUT.write(json.dumps(obj) + "\n")
    OUT.flush()


def now() -> float:
    return round(time.time(), 3)


class AgentCall(pj.Call):
    def __init__(self, phone: AgentPhone, acc: pj.Account, call_id: int, index: int, behaviour: str,
                 remote: str, headers: dict[str, str]) -> None:
        super().__init__(acc, call_id)
        self.phone = phone
        self.index = index
        self.behaviour = behaviour
        self.t_invite = time.monotonic()
        self.t_answer: float | None = None
        self.report: dict[str, Any] = {
            "type": "call", "index": index, "from": remote, "headers": headers, "behaviour": behaviour,
            "invite_at": now(), "answered_at": None, "ended_at": None, "canceled": False, "status": None,
            "local_hangup": False, "recording": None, "held": False,
        }
        self.acted = False
        self.held = False
        self.resumed = False
        self.hung_up = False
        self.done = False
        self.audio: Any = None
        self.player: Any = None
        self.recorder: Any = None

    # -- timers (from the phone's loop) ------------------------------------------------------------
    def tick(self) -> None:
        if self.done:
            return
        args = self.phone.args
        t = time.monotonic()
        if not self.acted and t - self.t_invite >= args.answer_after and self.behaviour != "noanswer":
            self.acted = True
            prm = pj.CallOpParam()
            if self.behaviour == "answer":
                prm.statusCode = 200
            else:
                _, _, code = self.behaviour.partition(":")
                prm.statusCode = int(code or args.reject)
                self.report["status"] = prm.statusCode
            self.answer(prm)
        if self.t_answer is None:
            return
        since = t - self.t_answer
        if args.hold_at is not None and not self.held and since >= args.hold_at:
            self.held = True
            self.report["held"] = True
            self.setHold(pj.CallOpParam(True))
        if args.resume_at is not None and self.held and not self.resumed and since >= args.resume_at:
            self.resumed = True
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            self.reinvite(prm)
        if args.hangup_after is not None and not self.hung_up and since >= args.hangup_after:
            self.hangup_now()

    def hangup_now(self) -> None:
        if self.hung_up or self.done:
            return
        self.hung_up = True
        self.report["local_hangup"] = True
        try:
            self.hangup(pj.CallOpParam())
        except pj.Error:
            pass

    # -- pjsua2 callbacks -----------------------------------------------------------------------
    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.t_answer is None:
            self.t_answer = time.monotonic()
            self.report["answered_at"] = now()
            self.report["status"] = 200
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.done:
            self.done = True
            self.report["ended_at"] = now()
            if self.t_answer is None and self.report["status"] is None:
                self.report["status"] = ci.lastStatusCode
                if ci.lastStatusCode == 487:
                    self.report["canceled"] = True
            self.phone.finished(self)

    def onCallTsxState(self, prm: Any) -> None:
        if prm.e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = prm.e.body.tsxState.tsx
        if tsx.role == pj.PJSIP_ROLE_UAS and tsx.method == "CANCEL":
            self.report["canceled"] = True

    def onCallMediaState(self, prm: Any) -> None:
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status not in (
                    pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                continue
            am = self.getAudioMedia(mi.index)  # (a new port after a re-INVITE: connect again)
            self.audio = am
            args = self.phone.args
            if args.record_dir:
                if self.recorder is None:
                    path = os.path.join(args.record_dir, f"call-{self.index}.wav")
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(path)
                    self.report["recording"] = path
                am.startTransmit(self.recorder)
            else:  # something must listen, or the bridge never clocks the stream
                am.startTransmit(pj.Endpoint.instance().audDevManager().getPlaybackDevMedia())
            if args.play:
                if self.player is None:
                    self.player = pj.AudioMediaPlayer()
                    self.player.createPlayer(args.play, 0)
                self.player.startTransmit(am)
            return

    def release(self) -> None:
        self.player = None
        self.recorder = None  # closes the WAV
        self.audio = None


class AgentAccount(pj.Account):
    def __init__(self, phone: AgentPhone) -> None:
        super().__init__()
        self.phone = phone

    def onIncomingCall(self, prm: Any) -> None:
        self.phone.incoming(self, prm)


class AgentPhone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.behaviours = [b.strip() for b in args.behaviour.split(",") if b.strip()] if args.behaviour else []
        self.calls: list[AgentCall] = []
        self.ended: list[AgentCall] = []

    def behaviour_for(self, index: int) -> str:
        if self.behaviours:
            b = self.behaviours[min(index, len(self.behaviours) - 1)]
        elif self.args.no_answer:
            b = "noanswer"
        elif self.args.reject is not None:
            b = f"reject:{self.args.reject}"
        else:
            b = "answer"
        if b not in ("answer", "noanswer", "reject") and not b.startswith("reject:"):
            raise SystemExit(f"--behaviour: answer, noanswer, reject or reject:CODE, not {b!r}")
        return b

    def incoming(self, acc: pj.Account, prm: Any) -> None:
        index = len(self.calls)
        headers = {}
        for line in str(prm.rdata.wholeMsg).split("\r\n"):
            name, sep, value = line.partition(":")
            if sep and name.lower().startswith("x-"):
                headers[name.strip()] = value.strip()
        call = AgentCall(self, acc, prm.callId, index, self.behaviour_for(index), "", headers)
        self.calls.append(call)
        call.report["from"] = call.getInfo().remoteUri
        ring = pj.CallOpParam()
        ring.statusCode = 180
        call.answer(ring)

    def finished(self, call: AgentCall) -> None:
        self.ended.append(call)
        emit(call.report)

    def run(self) -> int:
        args = self.args
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
        tcfg.port = args.port
        tcfg.boundAddress = "127.0.0.1"
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()
        for c in ep.codecEnum2():
            ep.codecSetPriority(c.codecId, 255 if c.codecId.upper().startswith(args.codec.upper()) else 0)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:agent@127.0.0.1:{args.port}"
        acfg.mediaConfig.transportConfig.port = args.rtp_port
        acfg.mediaConfig.transportConfig.portRange = 10000
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acc = AgentAccount(self)
        acc.create(acfg)
        emit({"type": "ready", "port": args.port})
        deadline = time.monotonic() + args.timeout
        while not STOP and time.monotonic() < deadline:
            ep.libHandleEvents(10)
            for call in self.calls:
                try:
                    call.tick()
                except pj.Error as exc:
                    call.report.setdefault("errors", []).append(exc.info())
            if args.calls is not None and len(self.ended) >= args.calls:
                break
        timed_out = not STOP and time.monotonic() >= deadline
        for call in self.calls:  # calls still up: hang up and let their ends be reported
            call.hangup_now()
        for _ in range(100):
            if all(c.done for c in self.calls):
                break
            ep.libHandleEvents(10)
        for call in self.calls:
            call.release()
        answered = sum(1 for c in self.calls if c.report["answered_at"] is not None)
        summary = {"type": "summary", "calls": len(self.calls), "answered": answered,
                   "canceled": sum(1 for c in self.calls if c.report["canceled"]),
                   "timed_out": timed_out, "terminated": STOP}
        self.calls.clear()
        self.ended.clear()
        acc.shutdown()
        del acc
        ep.libDestroy()
        emit(summary)
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="SIP port (UDP) on 127.0.0.1")
    ap.add_argument("--answer-after", type=float, default=0.0, help="seconds of ringing before answering/rejecting")
    ap.add_argument("--reject", type=int, help="reject every call with this code (e.g. 486, 603)")
    ap.add_argument("--no-answer", action="store_true", help="ring until the caller cancels")
    ap.add_argument("--behaviour", default="", help="per call, in order: answer|noanswer|reject[:CODE],...")
    ap.add_argument("--play", help="WAV played (looped) into each answered call")
    ap.add_argument("--record-dir", help="one WAV per answered call of what it hears (call-<index>.wav)")
    ap.add_argument("--hangup-after", type=float, help="hang up this many seconds after answering")
    ap.add_argument("--hold-at", type=float, help="put the call on hold this many seconds after answering")
    ap.add_argument("--resume-at", type=float, help="resume the held call this many seconds after answering")
    ap.add_argument("--calls", type=int, help="exit after this many calls have ended")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--codec", default="PCMU/8000")
    ap.add_argument("--rtp-port", type=int, default=50000)
    args = ap.parse_args()
    if args.reject is not None and not 300 <= args.reject < 700:
        raise SystemExit("--reject: a final status code 300-699")
    if args.record_dir:
        os.makedirs(args.record_dir, exist_ok=True)
    global OUT
    sys.stdout.flush()
    OUT = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    return AgentPhone(args).run()


if __name__ == "__main__":
    sys.exit(main())
