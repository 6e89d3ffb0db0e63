"""In-call controls from the desk on a call the real ACD connected: a caller (a bridge port saying 500 Hz,
since no SIP phone is needed for what is checked here) waits in a queue, the ACD offers it to a desk agent
whose "browser" is an aiortc peer saying 1300 Hz, and a supervisor's peer says 2000 Hz. Who hears whom is
measured by the share of each tone in what each end heard: hold (the caller hears music, not the agent),
resume, mute (only agent -> caller is cut), listen / whisper / barge / off, wrap-up on the call's row, and
a blind transfer back to a queue. DTMF and REFER need a SIP caller: here they only get their clear errors.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np

from callcenter.acd import CallerRef
from callcenter.storage.acd import QueueRepo
from ivr import actions as act
from routing.model import QueueSpec
from tests.integration.test_desk_ws import CallerPort, Desk, Env, desk, env  # noqa: F401 (the fixture)
from tests.support.rtc_client import BrowserPeer
from voice.audio import read_wav

CALLER_HZ, AGENT_HZ, SUP_HZ = 500.0, 1300.0, 2000.0
LISTEN_S = 0.8


def share(pcm: np.ndarray, hz: float) -> float:
    """The part of ``pcm``'s energy within 40 Hz of ``hz`` (0..1)."""
    if len(pcm) == 0:
        return 0.0
    power = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    total = float(power.sum()) or 1.0
    return float(power[np.abs(freqs - hz) < 40].sum()) / total


def loud(pcm: np.ndarray) -> bool:
    return len(pcm) > 0 and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 200


class Ears:
    """What each end heard during the last LISTEN_S."""

    def __init__(self, caller: CallerPort, agent: BrowserPeer, sup: BrowserPeer | None = None) -> None:
        self.caller, self.agent, self.sup = caller, agent, sup

    async def listen(self) -> dict[str, np.ndarray]:
        await asyncio.sleep(0.3)                                 # what was already on its way passes
        n_caller, n_agent = len(self.caller.heard), len(self.agent.heard_pcm())
        n_sup = len(self.sup.heard_pcm()) if self.sup else 0
        await asyncio.sleep(LISTEN_S)
        out = {"caller": np.concatenate(self.caller.heard[n_caller:] or [np.zeros(0, np.int16)]),
               "agent": self.agent.heard_pcm()[n_agent:]}
        if self.sup is not None:
            out["sup"] = self.sup.heard_pcm()[n_sup:]
        return out


async def connect_call(e: Env, d: Desk, caller: CallerPort, browser: BrowserPeer) -> str:
    await QueueRepo(e.db).add(QueueSpec(name="sales", ring_timeout_s=20, announce_every_s=0))
    await e.acd.reload_queue("sales")
    await d.send("state", action="login")
    await d.expect("agent_state", state="available")
    await e.acd.calls.create("call-9", "", "+15550100", "100", "", "test")
    ref = CallerRef("call-9", caller.port, "+15550100", post=lambda _e: None)
    await e.acd.enqueue(ref, act.Enqueue(queue="sales", skills={}, priority=0, variables={"order": "A-17"}))
    offer = await d.expect("offer", call_id="call-9")
    assert offer["variables"] == {"order": "A-17"} and offer["ring_timeout_s"] == 20
    await d.send("answer", offer=offer["offer"])
    rtc = await d.expect("rtc_offer", call_id="call-9", within=10)
    await d.send("rtc_answer", call_id="call-9", sdp=await browser.answer(rtc["sdp"]))
    await d.expect("connected", call_id="call-9", within=10)
    return "call-9"


async def test_hold_mute_monitor_wrap_up_and_transfer_on_a_connected_call(env: Env) -> None:  # noqa: F811
    caller = CallerPort(env.engine, await env.engine.open_port(label="caller"))
    agent, sup_peer = BrowserPeer(tone_hz=AGENT_HZ), BrowserPeer(tone_hz=SUP_HZ)
    try:
        async with desk(env, "alice") as d, desk(env, "sue") as sue:
            await d.expect("welcome")
            await sue.expect("welcome")
            call = await connect_call(env, d, caller, agent)
            ears = Ears(caller, agent)
            heard = await ears.listen()
            assert share(heard["caller"], AGENT_HZ) > 0.5 and share(heard["agent"], CALLER_HZ) > 0.5

            # hold: the caller hears music, not the agent; the agent hears nothing of the caller
            await d.send("hold", call_id=call)
            await d.expect("held", call_id=call, held=True)
            heard = await ears.listen()
            assert share(heard["caller"], AGENT_HZ) < 0.05 and loud(heard["caller"]), "no hold music"
            assert share(heard["agent"], CALLER_HZ) < 0.05
            ref = await d.send("hold", call_id=call)                       # again: the same answer, no change
            await d.expect("held", call_id=call, held=True)
            await d.send("resume", call_id=call)
            await d.expect("held", call_id=call, held=False)
            heard = await ears.listen()
            assert share(heard["caller"], AGENT_HZ) > 0.5 and share(heard["agent"], CALLER_HZ) > 0.5

            # mute: only agent -> caller
            await d.send("mute", call_id=call, on=True)
            await d.expect("muted", call_id=call, muted=True)
            heard = await ears.listen()
            assert share(heard["caller"], AGENT_HZ) < 0.05 and share(heard["agent"], CALLER_HZ) > 0.5
            await d.send("mute", call_id=call, on=False)
            await d.expect("muted", call_id=call, muted=False)

            # the supervisor: listen, whisper, barge, off
            ref = await d.send("monitor", call_id=call, mode="listen")       # not for agents
            assert (await d.expect("error", ref=ref))["code"] == "forbidden"
            await sue.send("monitor", call_id=call, mode="listen")
            rtc = await sue.expect("rtc_offer", call_id=call, within=10)
            await sue.send("rtc_answer", call_id=call, sdp=await sup_peer.answer(rtc["sdp"]))
            await sue.expect("monitor_state", call_id=call, mode="listen")
            await sup_peer.connected()
            ears = Ears(caller, agent, sup_peer)
            heard = await ears.listen()
            assert share(heard["sup"], CALLER_HZ) > 0.2 and share(heard["sup"], AGENT_HZ) > 0.2
            assert share(heard["agent"], SUP_HZ) < 0.05 and share(heard["caller"], SUP_HZ) < 0.05
            await sue.send("monitor", call_id=call, mode="whisper")
            await sue.expect("monitor_state", call_id=call, mode="whisper")
            heard = await ears.listen()
            assert share(heard["agent"], SUP_HZ) > 0.2 and share(heard["caller"], SUP_HZ) < 0.05
            await sue.send("monitor", call_id=call, mode="barge")
            await sue.expect("monitor_state", call_id=call, mode="barge")
            heard = await ears.listen()
            assert share(heard["agent"], SUP_HZ) > 0.2 and share(heard["caller"], SUP_HZ) > 0.2
            await sue.send("monitor", call_id=call, mode="off")
            await sue.expect("monitor_state", call_id=call, mode="off")
            heard = await ears.listen()
            assert share(heard["caller"], SUP_HZ) < 0.05 and share(heard["agent"], SUP_HZ) < 0.05
            assert share(heard["caller"], AGENT_HZ) > 0.5

            # what needs a SIP caller, and what is not allowed, get clear errors and change nothing
            ref = await d.send("dtmf", call_id=call, digits="12")
            assert (await d.expect("error", ref=ref))["code"] == "failed"
            ref = await d.send("transfer", call_id=call, target="sip:boss@elsewhere.example")
            err = await d.expect("error", ref=ref)
            assert err["code"] == "not_allowed" and "transfer_allow" in err["message"]
            ref = await d.send("transfer", call_id=call, target="queue:nope")
            assert (await d.expect("error", ref=ref))["code"] == "not_found"
            ref = await d.send("consult", call_id=call, target="agent:bob")     # bob is logged out
            assert (await d.expect("error", ref=ref))["code"] == "conflict"
            assert env.acd.connected_call(call) is not None

            # wrap-up (during the call), then a blind transfer back into the queue
            await d.send("wrap_up", call_id=call, disposition="sale", note="wants the blue one")
            await d.expect("agent_state")
            await d.send("transfer", call_id=call, target="queue:sales")
            done = await d.expect("transfer_state", call_id=call, state="completed")
            assert done["target"] == "queue:sales"
            ended = await d.expect("call_ended", call_id=call)
            assert ended["by"] == "transfer"
            assert env.acd.connected_call(call) is None
    finally:
        await caller.stop()
        await agent.close()
        await sup_peer.close()
        await env.acd.caller_gone("call-9")
        await env.engine.close_port(caller.port)
    names = [e["event"] for e in await _events(env, "call-9")]
    for name in ("HOLD", "UNHOLD", "MUTE", "MONITOR", "WRAPUP", "TRANSFER", "REQUEUE"):
        assert name in names, names
    row = await env.acd.calls.get("call-9")
    assert row is not None
    async with env.db.conn.execute("SELECT wrap_up_disposition, wrap_up_note, wrap_up_at FROM calls WHERE id = ?",
                                   ("call-9",)) as cur:
        got = await cur.fetchone()
    assert got is not None
    assert (got[0], got[1]) == ("sale", "wants the blue one") and got[2]


async def _events(e: Env, call_id: str) -> list[dict[str, Any]]:
    return await e.acd.events.for_call(call_id)


async def test_attended_transfer_keeps_the_consulted_agent_busy_and_hands_the_caller_over(env: Env) -> None:  # noqa: F811
    """alice consults bob (his desk rings; for the router he is on a call, so the next caller waits),
    cancels, consults again and completes: the caller then talks to bob, whose hang-up ends the call
    with the queue's accounting (ENGAGE, DISENGAGE, TAKEOVER, COMPLETETRANSFER)."""
    bob_hz = SUP_HZ
    caller = CallerPort(env.engine, await env.engine.open_port(label="caller"))
    alice_peer, bob_peer = BrowserPeer(tone_hz=AGENT_HZ), BrowserPeer(tone_hz=bob_hz)
    second = await env.engine.open_port(label="second caller")
    clock = asyncio.create_task(env.acd.run(), name="acd-deadlines")   # (wrap-up ends on time)
    try:
        async with desk(env, "alice") as d, desk(env, "bob") as b:
            await d.expect("welcome")
            await b.expect("welcome")
            call = await connect_call(env, d, caller, alice_peer)
            await b.send("state", action="login")
            await b.expect("agent_state", state="available")

            async def consult() -> dict[str, Any]:
                await d.send("consult", call_id=call, target="agent:bob")
                await d.expect("transfer_state", call_id=call, state="consulting", reason="ringing")
                offer = await b.expect("offer", call_id=call, within=5)
                assert env.acd.agent_status("bob")["state"] == "on_call"   # busy for the router already
                return offer

            offer = await consult()
            await d.send("cancel_transfer", call_id=call)
            await d.expect("transfer_state", call_id=call, state="canceled")
            await d.expect("held", call_id=call, held=False)
            await b.expect("offer_canceled", within=5)
            assert env.acd.agent_status("bob")["state"] == "available"      # no wrap-up after a consultation

            offer = await consult()
            await b.send("answer", offer=offer["offer"])
            rtc = await b.expect("rtc_offer", call_id=call, within=10)
            await b.send("rtc_answer", call_id=call, sdp=await bob_peer.answer(rtc["sdp"]))
            await d.expect("transfer_state", call_id=call, state="consulting", reason="answered", within=10)
            await bob_peer.connected()
            await env.acd.calls.create("call-10", "", "+15550111", "100", "", "test")
            await env.acd.enqueue(CallerRef("call-10", second, "+15550111", post=lambda _e: None),
                                  act.Enqueue(queue="sales", skills={}, priority=0, variables={}))
            ears = Ears(caller, alice_peer)
            heard = await ears.listen()
            assert share(heard["agent"], bob_hz) > 0.3                       # alice and bob talk
            assert share(heard["caller"], bob_hz) < 0.05 and loud(heard["caller"])   # the caller hears music
            assert env.acd.router.position("call-10") == 1                  # nobody free: both agents talk

            await d.send("complete_transfer", call_id=call)
            await d.expect("transfer_state", call_id=call, state="completed")
            assert (await d.expect("call_ended", call_id=call))["by"] == "transfer"
            heard = await Ears(caller, bob_peer).listen()
            assert share(heard["caller"], bob_hz) > 0.5 and share(heard["agent"], CALLER_HZ) > 0.5
            assert env.acd.agent_status("bob")["state"] == "on_call"
            assert env.acd.agent_status("bob")["contact"] == call
            # alice's wrap-up (2 s) ends and she, not bob, is offered the second caller
            nxt = await d.expect("offer", call_id="call-10", within=6)
            await d.send("reject", offer=nxt["offer"])
            await b.send("hangup", call_id=call)
            await b.expect("call_ended", call_id=call, within=5)
    finally:
        clock.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await clock
        await caller.stop()
        await alice_peer.close()
        await bob_peer.close()
        departure = await env.acd.caller_gone("call-9")
        await env.acd.caller_gone("call-10")
        await env.engine.close_port(caller.port)
        await env.engine.close_port(second)
    names = [e["event"] for e in await _events(env, "call-9")]
    assert names.count("ENGAGE") == 2 and names.count("DISENGAGE") == 1, names
    assert names.count("TAKEOVER") == 1 and names.count("COMPLETETRANSFER") == 1, names
    assert names.count("COMPLETEAGENT") == 1, names                 # alice's part, counted once for the queue
    taken = [e for e in await env.events("COMPLETETRANSFER")]
    assert taken[0]["agent"] == "bob" and taken[0]["data"]["by"] == "agent"
    # Both agents' parts with the caller are recorded: alice's leg, then bob's from the transfer on (his
    # consultation with alice is not part of the caller's conversation)
    assert departure is not None and len(departure.earlier) == 1 and departure.agent_leg is not None
    alice_rec, bob_rec = departure.earlier[0].recording, departure.agent_leg.recording
    assert alice_rec is not None and bob_rec is not None and alice_rec != bob_rec
    assert bob_rec.name == "call-9.agent-2.wav" and departure.agent_leg.recording_offset_s > \
        departure.earlier[0].recording_offset_s
    assert share(read_wav(alice_rec).samples, AGENT_HZ) > 0.3 and share(read_wav(bob_rec).samples, bob_hz) > 0.3
