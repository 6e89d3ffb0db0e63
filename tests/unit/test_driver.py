"""The asyncio driver (ivr/driver.py) against an in-memory call: timers, HTTP over real sockets,
render failures, crashes in the call control, the transfer allow-list, clean-up.

The call side is a small in-memory CallControl (the SIP engine is exercised by the integration
tests); everything else is real: the interpreter, asyncio timers, httpx against local servers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ivr import actions as act
from ivr import events as ev
from ivr.driver import FlowDriver, transfer_allowed
from ivr.exceptions import CallGoneError, PromptError
from ivr.flow import parse_flow
from ivr.http import FlowHttpClient
from ivr.machine import FlowMachine


class MemoryCall:
    """Records what the driver asks of the call; prompts "play" for ``prompt_s`` seconds."""

    def __init__(self, driver_ref: list[FlowDriver], prompt_s: float = 0.01) -> None:
        self.ref = driver_ref
        self.prompt_s = prompt_s
        self.log: list[tuple[str, Any]] = []
        self.hung_up = asyncio.Event()
        self.fail_on: str = ""
        self.gone = False
        self._next = 0

    def _check(self, what: str) -> None:
        if self.gone:
            raise CallGoneError("call 1 has ended")
        if what == self.fail_on:
            raise RuntimeError(f"{what} broke")

    async def play(self, path: Path) -> int:
        self._check("play")
        self._next += 1
        self.log.append(("play", path.name))
        playback = self._next
        asyncio.get_running_loop().call_later(self.prompt_s, lambda: self.ref[0].playback_done(playback))
        return playback

    async def stop_playback(self, playback: int) -> None:
        self.log.append(("stop", playback))

    async def hangup(self) -> None:
        self.log.append(("hangup", None))
        self.hung_up.set()

    async def pause_recording(self) -> None:
        self.log.append(("pause", None))

    async def resume_recording(self) -> None:
        self.log.append(("resume", None))

    async def start_voicemail(self, mailbox: str) -> None:
        self.log.append(("voicemail", mailbox))

    async def stop_voicemail(self) -> float:
        return 1.0

    async def transfer(self, target: str) -> None:
        self._check("transfer")
        self.log.append(("transfer", target))
        self.ref[0].transfer_done(True, "200 OK")

    async def listen(self, listen: int, phrases: Sequence[str], language: str) -> None:
        self._check("listen")
        self.log.append(("listen", tuple(phrases)))

    async def stop_listening(self, listen: int) -> None:
        self.log.append(("stop_listening", listen))

    async def enqueue(self, action: act.Enqueue) -> ev.QueueOutcome:
        return "no_agents"

    def trace(self, step: act.Trace, version: str) -> None:
        self.log.append(("trace", (step.event, step.node, step.data)))


class Prompts:
    def __init__(self, tmp: Path, broken: str = "") -> None:
        self.tmp = tmp
        self.broken = broken

    async def render(self, text: str, language: str, voice: str | None, rate: int | None) -> Path:
        if self.broken and self.broken in text:
            raise PromptError("espeak-ng refused the text")
        return self.tmp / f"{abs(hash(text))}.wav"

    async def audio(self, path: Path) -> Path:
        return path

    def fallback(self) -> Path:
        return self.tmp / "fallback-tone.wav"

    def beep(self) -> Path:
        return self.tmp / "beep.wav"


async def run(flow_text: str, tmp: Path, *, prompts: Prompts | None = None, control_setup: Any = None,
              transfer_allow: Sequence[str] = (), digits: Sequence[tuple[float, str]] = (),
              limit_s: float = 10.0) -> MemoryCall:
    """Run a flow to its end on a MemoryCall; the actor loop is the one callcenter/calls.py runs."""
    inbox: asyncio.Queue[ev.Event] = asyncio.Queue()
    ref: list[FlowDriver] = []
    call = MemoryCall(ref)
    if control_setup:
        control_setup(call)
    http = FlowHttpClient()
    driver = FlowDriver(FlowMachine(parse_flow(flow_text)), call, prompts or Prompts(tmp), http, inbox.put_nowait,
                        call_id="c1", version="1", transfer_allow=transfer_allow)
    ref.append(driver)
    loop = asyncio.get_running_loop()
    for at, digit in digits:
        loop.call_later(at, lambda d=digit: inbox.put_nowait(ev.Digit(now=time.time(), digit=d)))
    try:
        await driver.feed(ev.CallStarted(now=time.time(), variables={"caller_number": "+15550100"}))

        async def actor() -> None:
            while not call.hung_up.is_set() and not driver.closed and not driver.machine.finished:
                getter = asyncio.ensure_future(inbox.get())
                done, _ = await asyncio.wait({getter, asyncio.ensure_future(call.hung_up.wait())},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await driver.feed(getter.result())
                else:
                    getter.cancel()
            await asyncio.sleep(0)

        await asyncio.wait_for(actor(), limit_s)
    finally:
        await driver.close()
        await http.aclose()
        for task in asyncio.all_tasks():  # (the actor's helper futures)
            if task is not asyncio.current_task() and not task.done() and "wait" in repr(task.get_coro()):
                task.cancel()
        await asyncio.sleep(0)
    return call


def traces(call: MemoryCall, event: str) -> list[dict[str, Any]]:
    return [data for kind, (e, _, data) in ((k, v) for k, v in call.log if k == "trace") if e == event]


def nodes(call: MemoryCall) -> list[str]:
    return [v[1] for k, v in call.log if k == "trace" and v[0] == "NODE"]


def test_transfer_allow_list_compares_user_and_host_separately() -> None:
    allow = ["sip:*@pbx.example.com", "sip:+4420*@trunk.example.net:5060"]
    assert transfer_allowed("sip:100@pbx.example.com", allow)
    assert transfer_allowed("sip:100@PBX.example.com;transport=tcp", allow)
    assert transfer_allowed("sip:+442071234567@trunk.example.net:5060", allow)
    assert not transfer_allowed("sip:+15551234@trunk.example.net:5060", allow)
    assert not transfer_allowed("sip:x@evil.example;@pbx.example.com", allow)
    assert not transfer_allowed("sips:100@pbx.example.com", allow)
    assert not transfer_allowed("sip:100@pbx.example.com?Replaces=abc", allow)
    assert not transfer_allowed("sip:100@pbx.example.com", [])


MENU = """
name: t
start: main
on_error: sorry
nodes:
  main:
    type: menu
    prompt: "Press 1."
    options: {"1": done}
    timeout: 0.2
    retries: 1
    no_input: timed_out
  done: {type: hangup}
  timed_out: {type: hangup, prompt: "Bye."}
  sorry: {type: hangup, prompt: "Sorry."}
"""


async def test_menu_timeouts_run_on_real_timers(tmp_path: Path) -> None:
    call = await run(MENU, tmp_path)
    assert nodes(call) == ["main", "timed_out"]
    assert len(traces(call, "TIMEOUT")) == 2 and call.log[-1] == ("hangup", None)


async def test_a_key_takes_the_menu_option(tmp_path: Path) -> None:
    call = await run(MENU, tmp_path, digits=[(0.05, "1")])
    assert nodes(call) == ["main", "done"]
    assert traces(call, "KEY") == [{"digit": "1", "source": "rfc4733"}]


async def test_a_prompt_that_cannot_be_rendered_plays_the_fallback_tone(tmp_path: Path) -> None:
    call = await run(MENU.replace("Press 1.", "Press one."), tmp_path, prompts=Prompts(tmp_path, broken="one"))
    assert ("play", "fallback-tone.wav") in call.log
    assert nodes(call) == ["main", "timed_out"]  # the flow went on


async def test_a_crash_in_the_call_control_apologizes_and_goes_to_on_error(tmp_path: Path) -> None:
    flow = """
name: x
start: ask
on_error: sorry
nodes:
  ask:
    type: speech
    prompt: "Say sales."
    phrases: {sales: bye}
    barge_in: false
  bye: {type: hangup}
  sorry: {type: hangup, prompt: "We are sorry."}
"""

    def broken(call: MemoryCall) -> None:
        call.fail_on = "listen"

    call = await run(flow, tmp_path, control_setup=broken)
    assert nodes(call) == ["ask", "sorry"], call.log
    [error] = traces(call, "ERROR")
    assert "listen broke" in error["message"]
    plays = [name for kind, name in call.log if kind == "play"]
    assert len(plays) == 3  # the prompt, the apology, the error target's goodbye
    assert call.log[-1] == ("hangup", None)


async def test_a_transfer_the_sip_stack_refuses_takes_the_error_branch(tmp_path: Path) -> None:
    flow = """
name: x
start: go
on_error: sorry
nodes:
  go: {type: transfer, target: "sip:100@pbx.example.com", error: failed}
  failed: {type: hangup, prompt: "Transfer failed."}
  sorry: {type: hangup, prompt: "Sorry."}
"""

    def broken_transfer(call: MemoryCall) -> None:
        call.fail_on = "transfer"

    call = await run(flow, tmp_path, control_setup=broken_transfer, transfer_allow=["sip:*@pbx.example.com"])
    assert nodes(call) == ["go", "failed"], call.log


async def test_transfer_outside_the_allow_list_takes_the_error_branch(tmp_path: Path) -> None:
    flow = """
name: x
start: go
nodes:
  go: {type: transfer, target: "sip:+4790000000@trunk.example.net", error: refused}
  refused: {type: hangup, prompt: "Not allowed."}
"""
    call = await run(flow, tmp_path, transfer_allow=["sip:*@pbx.example.com"])
    assert not [e for e in call.log if e[0] == "transfer"], "nothing may be dialled"
    assert nodes(call) == ["go", "refused"]
    allowed = await run(flow, tmp_path, transfer_allow=["sip:+47*@trunk.example.net"])
    assert ("transfer", "sip:+4790000000@trunk.example.net") in allowed.log


async def test_the_call_ending_under_the_driver_is_not_a_failure(tmp_path: Path, caplog: Any) -> None:
    def gone(call: MemoryCall) -> None:
        call.gone = True

    call = await run(MENU, tmp_path, control_setup=gone, limit_s=2)
    assert ("hangup", None) not in call.log  # nothing to hang up: the driver just stops
    assert "failed" not in caplog.text and not [e for e in call.log if e[0] == "play"]


async def _serve(handler: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


HTTP = """
name: h
start: ask
variables:
  name: string
nodes:
  ask:
    type: http
    url: "http://127.0.0.1:PORT/customers/{caller_number}"
    timeout: 0.5
    results: {name: customer.name}
    next: found
    error: failed
  found: {type: hangup, prompt: "Hello {name}."}
  failed: {type: hangup, prompt: "Sorry."}
"""


async def test_http_results_map_into_variables(tmp_path: Path) -> None:
    seen: list[str] = []

    async def crm(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await reader.readline()).decode())
        while (await reader.readline()).strip():
            pass
        body = json.dumps({"customer": {"name": "Ann"}}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        writer.close()

    server, port = await _serve(crm)
    async with server:
        call = await run(HTTP.replace("PORT", str(port)), tmp_path)
    assert seen and seen[0].startswith("GET /customers/%2B15550100 ")  # values are percent-encoded in URLs
    assert nodes(call) == ["ask", "found"], traces(call, "HTTP")
    assert traces(call, "HTTP")[0]["status"] == 200


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"])
async def test_http_that_hangs_or_is_not_json_takes_the_error_branch(tmp_path: Path, reply: bytes) -> None:
    release = asyncio.Event()

    async def crm(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        if reply:
            writer.write(reply)
            await writer.drain()
        else:
            await release.wait()  # never answers (until the test ends)
        writer.close()

    server, port = await _serve(crm)
    loop = asyncio.get_running_loop()
    async with server:
        t0 = loop.time()
        call = await run(HTTP.replace("PORT", str(port)), tmp_path)
        took = loop.time() - t0
        release.set()
        await asyncio.sleep(0.05)
    assert nodes(call) == ["ask", "failed"]
    [http] = traces(call, "HTTP")
    assert http["error"] == ("not JSON" if reply else "timeout") and http["status"] == (200 if reply else None)
    assert took < 2.0, "the call was held past the node's timeout"
