"""The engine floor for bench/capacity.py: a bare pjsua2 answering machine.

It does per call what ``callcenter serve`` does with the capacity flow, and nothing else: answer
with 200, record the caller's leg to a WAV, play one prompt WAV, hang up (BYE) when the player
reaches its end. The Endpoint is configured like voice/engine.py (``threadCnt = 0``,
``mainThreadOnly``, 8 kHz conference bridge and sound clock, null audio device, ``maxCalls``
512, PCMU/PCMA only, the project's epoll build of pjsua2), but there is no asyncio, no
database, no HTTP and no IVR interpreter: whatever the server costs above this is overhead.

    python bench/bare_engine.py --prompt PROMPT.wav --rec-dir DIR --sip-port 5070 [--key-prompt NEXT.wav]

With ``--key-prompt``, a key (onDtmfDigit) stops the prompt and plays NEXT.wav instead, once per
call: the media work of a menu whose prompt a key barges into (bench/capacity_short.py, demo flow).

Prints ``ready`` on stdout once it accepts calls, then ``active N`` whenever the number of
calls in progress changes (at most every ``--status-interval`` seconds), and ``digits N`` (keys
heard so far, RFC 4733 or SIP INFO, as pjsua2's onDtmfDigit reports them) when that changes. SIGTERM or SIGINT hang
up every call, close the recordings, ``libDestroy()`` and exit 0.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pjsua2 as pj

from voice.pj_objects import configure_media


class StderrLog(pj.LogWriter):
    def write(self, entry: Any) -> None:
        sys.stderr.write(entry.msg.rstrip() + "\n")


class Player(pj.AudioMediaPlayer):
    def __init__(self, app: Floor, handle: int) -> None:
        super().__init__()
        self.app = app
        self.handle = handle

    def onEof2(self) -> None:
        # A player must not be destroyed (nor its call hung up) inside its own EOF callback.
        self.app.finished.append(self.handle)


class Call(pj.Call):
    def __init__(self, acc: Account, handle: int, app: Floor) -> None:
        super().__init__(acc, handle)
        self.app = app
        self.handle = handle
        self.audio: Any = None
        self.player: Player | None = None
        self.recorder: Any = None
        self.ended = False
        self.keyed = False

    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self.app.gone.append(self.handle)

    def onDtmfDigit(self, prm: Any) -> None:
        self.app.digits += 1
        if self.app.key_prompt and not self.keyed:
            self.keyed = True
            self.app.keyed.append(self.handle)  # (players are not swapped inside a callback)

    def onCallMediaState(self, prm: Any) -> None:
        if self.audio is not None:
            return
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.audio = self.getAudioMedia(mi.index)
                try:
                    self.app.start_media(self)
                except pj.Error as exc:
                    sys.stderr.write(f"call {self.handle}: media setup failed: {exc.reason}\n")
                    self.app.finished.append(self.handle)
                return


class Account(pj.Account):
    def __init__(self, app: Floor) -> None:
        super().__init__()
        self.app = app

    def onIncomingCall(self, prm: Any) -> None:
        call = Call(self, prm.callId, self.app)
        op = pj.CallOpParam()
        if self.app.stopping:
            op.statusCode = 503
            call.hangup(op)
            return
        self.app.calls[prm.callId] = call
        op.statusCode = 200
        call.answer(op)


class Floor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prompt = str(Path(args.prompt).resolve())
        self.rec_dir = Path(args.rec_dir)
        self.calls: dict[int, Call] = {}
        self.finished: list[int] = []  # player EOF (or media failure): hang up
        self.gone: list[int] = []  # disconnected: drop the pjsua2 objects
        self.keyed: list[int] = []  # a key barged in: play the key prompt instead
        self.key_prompt = str(Path(args.key_prompt).resolve()) if args.key_prompt else ""
        self.stopping = False
        self.serial = 0
        self.digits = 0
        self.ep: Any = None
        self.account: Account | None = None
        self.log_writer: StderrLog | None = None

    def start(self) -> None:
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        ua = cfg.uaConfig
        ua.threadCnt = 0
        ua.mainThreadOnly = True
        ua.maxCalls = 512
        ua.userAgent = "bare-engine"
        self.log_writer = StderrLog()
        cfg.logConfig.writer = self.log_writer
        cfg.logConfig.level = 2
        cfg.logConfig.consoleLevel = 2
        cfg.logConfig.decor = 0
        configure_media(cfg.medConfig, 8000)  # the very settings voice/engine.py uses
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()
        tcfg = pj.TransportConfig()
        tcfg.port = self.args.sip_port
        tcfg.boundAddress = self.args.host
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        for codec in self.ep.codecEnum2():
            cid = codec.codecId.upper()
            prio = 255 if cid.startswith("PCMU/8000") else 254 if cid.startswith("PCMA/8000") else 0
            self.ep.codecSetPriority(codec.codecId, prio)
        acc_cfg = pj.AccountConfig()
        acc_cfg.idUri = f"sip:floor@{self.args.host}:{self.args.sip_port}"
        acc_cfg.mediaConfig.transportConfig.port = self.args.rtp_port
        acc_cfg.mediaConfig.transportConfig.portRange = self.args.rtp_port_range
        acc_cfg.mediaConfig.transportConfig.boundAddress = self.args.host
        self.account = Account(self)
        self.account.create(acc_cfg, True)

    def start_media(self, call: Call) -> None:
        self.serial += 1
        rec = pj.AudioMediaRecorder()
        rec.createRecorder(str(self.rec_dir / f"call-{self.serial:06d}.caller.wav"))
        call.audio.startTransmit(rec)
        call.recorder = rec
        player = Player(self, call.handle)
        player.createPlayer(self.prompt, pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(call.audio)
        call.player = player

    def housekeeping(self) -> None:
        """Work deferred out of callbacks: swap prompts on a key, hang up at EOF, drop ended calls' objects."""
        while self.keyed:
            call = self.calls.get(self.keyed.pop())
            if call is not None and not call.ended and call.audio is not None:
                if call.player is not None:
                    call.player.stopTransmit(call.audio)
                player = Player(self, call.handle)
                player.createPlayer(self.key_prompt, pj.PJMEDIA_FILE_NO_LOOP)
                player.startTransmit(call.audio)
                call.player = player
        while self.finished:
            call = self.calls.get(self.finished.pop())
            if call is not None and not call.ended:
                op = pj.CallOpParam()
                op.statusCode = 200
                try:
                    call.hangup(op)
                except pj.Error as exc:
                    sys.stderr.write(f"call {call.handle}: hangup failed: {exc.reason}\n")
        while self.gone:
            call = self.calls.pop(self.gone.pop(), None)
            if call is not None:
                call.player = None  # drops the player; then the recorder closes its WAV
                call.recorder = None
                call.audio = None

    def run(self) -> None:
        print("ready", flush=True)
        reported, last, digits = -1, 0.0, 0
        while not self.stopping:
            self.ep.libHandleEvents(10)
            self.housekeeping()
            now = time.monotonic()
            if (len(self.calls) != reported or self.digits != digits) and now - last >= self.args.status_interval:
                reported, last = len(self.calls), now
                if self.digits != digits:
                    digits = self.digits
                    print(f"digits {digits}", flush=True)
                print(f"active {reported}", flush=True)

    def shutdown(self) -> None:
        self.stopping = True
        if self.ep is None:
            return
        self.ep.hangupAllCalls()
        deadline = time.monotonic() + 3.0
        while self.calls and time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
            self.housekeeping()
        for call in self.calls.values():
            call.player = call.recorder = call.audio = None
        self.calls.clear()
        if self.account is not None:
            self.account.shutdown()
            self.account = None
        self.ep.libDestroy()
        self.ep = None
        print("active 0", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--prompt", required=True, help="WAV to play to every caller (8 kHz mono)")
    parser.add_argument("--rec-dir", required=True, help="where the callers' recordings go")
    parser.add_argument("--key-prompt", help="WAV played instead of the prompt once a key is heard")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--sip-port", type=int, default=5070)
    parser.add_argument("--rtp-port", type=int, default=20000)
    parser.add_argument("--rtp-port-range", type=int, default=10000)
    parser.add_argument("--status-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.makedirs(args.rec_dir, exist_ok=True)

    floor = Floor(args)

    def stop(signum: int, frame: Any) -> None:
        floor.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        floor.start()
        floor.run()
    finally:
        floor.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
