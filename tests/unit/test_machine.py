"""Interpreter unit tests: play, menu, collect and speech nodes (and the hand-driven ``Call`` the other
test_machine_*.py files share).

``Call`` feeds one event at a time and remembers the ids the machine handed out (the playing
prompt, the live timer, the recognizer, the request) so a test can answer them as a driver would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ivr import actions as act
from ivr import events as ev
from ivr.machine import FlowMachine
from ivr.nodes import (
    CollectNode,
    Flow,
    HangupNode,
    InputRetry,
    MenuNode,
    PlayNode,
    Prompt,
    SpeechNode,
    Variable,
)

T0 = 1_767_607_200.0  # 2026-01-05 10:00 UTC, a Monday


def flow(*nodes: Any, start: str | None = None, **kw: Any) -> Flow:
    """A flow of ``nodes`` (the first is the start); a ``bye`` hang-up node is added if missing."""
    table = {n.id: n for n in nodes}
    table.setdefault("bye", HangupNode("bye"))
    return Flow(name=kw.pop("name", "t"), start=start or nodes[0].id, nodes=table, **kw)


def say(text: str, next: str | None = None, **kw: Any) -> PlayNode:
    return PlayNode(text.split()[0].lower().strip(".,"), Prompt(text), next=next, **kw)


class Call:
    def __init__(self, f: Flow, subflows: Mapping[str, Flow] | None = None, now: float = T0,
                 version: str = "", **variables: Any) -> None:
        self.m = FlowMachine(f, subflows, version=version)
        self.now = now
        self.prompt: int | None = None
        self.timer: act.StartTimer | None = None
        self.listen: int | None = None
        self.request: act.HttpRequest | None = None
        self.out: list[act.Action] = []
        self.send(ev.CallStarted(now, variables))

    def send(self, event: ev.Event) -> list[act.Action]:
        self.now = max(self.now, event.now)
        self.out = self.m.receive(event)
        self._track(self.out)
        return self.out

    def fail(self, message: str = "boom") -> list[act.Action]:
        self.out = self.m.fail(self.now, message)
        self._track(self.out)
        return self.out

    def _track(self, actions: list[act.Action]) -> None:
        for a in actions:
            if isinstance(a, act.Play | act.Beep):
                self.prompt = a.prompt
            elif isinstance(a, act.StopPlayback) and a.prompt == self.prompt:
                self.prompt = None
            elif isinstance(a, act.StartTimer):
                self.timer = a
            elif isinstance(a, act.CancelTimer) and self.timer and a.timer == self.timer.timer:
                self.timer = None
            elif isinstance(a, act.Listen):
                self.listen = a.listen
            elif isinstance(a, act.HttpRequest):
                self.request = a

    # what a driver or caller does
    def done(self, dt: float = 1.0) -> list[act.Action]:
        """The playing prompt ends."""
        assert self.prompt is not None, "no prompt is playing"
        prompt, self.prompt = self.prompt, None
        return self.send(ev.PromptDone(self.now + dt, prompt))

    def press(self, digits: str, dt: float = 0.5) -> list[act.Action]:
        out: list[act.Action] = []
        for d in digits:
            out += self.send(ev.Digit(self.now + dt, d))
        self.out = out
        return out

    def fire(self) -> list[act.Action]:
        """The live timer reaches its deadline."""
        assert self.timer is not None, "no timer is running"
        timer, self.timer = self.timer, None
        return self.send(ev.TimerFired(timer.deadline, timer.timer))

    def hear(self, phrase: str | None, confidence: float = 0.9) -> list[act.Action]:
        assert self.listen is not None
        return self.send(ev.SpeechResult(self.now + 0.5, self.listen, phrase, confidence))

    def reply(self, status: int | None = 200, body: Any = None, error: str = "") -> list[act.Action]:
        assert self.request is not None
        return self.send(ev.HttpResult(self.now + 0.2, self.request.request, status, body, error))

    def hangup(self) -> list[act.Action]:
        return self.send(ev.Hangup(self.now + 0.1))

    # what it did
    def traces(self, event: str | None = None) -> list[act.Trace]:
        return [t for t in self.m.path if event is None or t.event == event]

    def nodes(self) -> list[str]:
        return [t.node for t in self.traces("NODE")]

    def kinds(self, actions: list[act.Action] | None = None) -> list[str]:
        """The types of ``actions`` (default: the last event's), traces left out."""
        return [a.type for a in (self.out if actions is None else actions) if not isinstance(a, act.Trace)]

    def of(self, kind: type[Any], actions: list[act.Action] | None = None) -> list[Any]:
        return [a for a in (self.out if actions is None else actions) if isinstance(a, kind)]


def menu(**kw: Any) -> MenuNode:
    kw.setdefault("options", {"1": "sales", "2": "bye"})
    return MenuNode("main", Prompt("For sales press 1."), **kw)


SALES = PlayNode("sales", Prompt("Connecting you to sales."), next="bye")


# -- play ------------------------------------------------------------------------------------------
def test_play_templates_its_text_then_goes_to_next_and_the_last_node_ends_the_call() -> None:
    f = flow(PlayNode("hi", Prompt("Hello {caller_name}, you called {dialled_number}.", voice="en-gb"), next="mid"),
             PlayNode("mid", Prompt("你好", language="zh")), voice="en-us")
    c = Call(f, caller_name="Ann", dialled_number="100")
    assert c.kinds() == ["play"]
    p = c.of(act.Play)[0]
    assert (p.text, p.language, p.voice, p.node) == ("Hello Ann, you called 100.", "en", "en-gb", "hi")
    assert not p.barge_in
    c.done()
    assert c.of(act.Play)[0].language == "zh" and c.of(act.Play)[0].voice == "en-us"
    assert c.done() == [act.EndCall("mid", "flow_end")]
    assert c.m.finished and c.m.finish_reason == "flow_end"
    assert c.nodes() == ["hi", "mid"]
    assert c.send(ev.Digit(c.now + 1, "1")) == []          # finished: nothing more


def test_play_audio_is_resolved_against_the_flow_file() -> None:
    f = flow(PlayNode("hi", Prompt(audio="sounds/hello.wav")), source="/srv/flows/demo.yaml")
    c = Call(f)
    assert c.of(act.Play)[0].audio == "/srv/flows/sounds/hello.wav" and c.of(act.Play)[0].text is None


def test_a_key_barges_into_a_play_and_the_next_menu_takes_it_as_typed_ahead() -> None:
    f = flow(PlayNode("hi", Prompt("Welcome to Acme."), next="main", barge_in=True), menu(), SALES)
    c = Call(f)
    welcome = c.prompt
    out = c.press("1")
    assert c.kinds(out) == ["stop_playback", "play"]        # the menu's prompt is skipped
    assert c.of(act.StopPlayback, out) == [act.StopPlayback(welcome or 0)]
    assert c.of(act.Play, out)[0].node == "sales"
    assert c.nodes() == ["hi", "main", "sales"]
    assert c.traces("KEY")[0].data == {"digit": "1", "source": "rfc4733"}
    assert c.send(ev.PromptDone(c.now, welcome or 0)) == []  # the stopped prompt's late PromptDone


def test_typed_ahead_digits_are_dropped_by_a_node_that_does_not_take_input() -> None:
    f = flow(PlayNode("hi", Prompt("Welcome."), next="two", barge_in=True),
             PlayNode("two", Prompt("Our hours are 9 to 5."), next="main"), menu(), SALES)
    c = Call(f)
    c.press("1")
    assert c.kinds() == ["stop_playback", "play"] and c.m.node == "two"
    out = c.done()
    assert c.of(act.Play, out)[0].node == "main"            # the menu plays and waits: the "1" is gone
    assert c.m.node == "main"


def test_a_play_without_barge_in_ignores_keys() -> None:
    c = Call(flow(PlayNode("hi", Prompt("Listen carefully."), next="bye")))
    assert c.press("1") == [] and c.m.node == "hi"
    assert c.done()[-1] == act.EndCall("bye", "flow_end")


# -- menu ------------------------------------------------------------------------------------------
def test_menu_key_after_the_prompt() -> None:
    c = Call(flow(menu(retry=InputRetry(timeout=4)), SALES))
    assert c.kinds() == ["play"]
    out = c.done()
    assert out == [act.StartTimer(2, T0 + 1 + 4)]
    out = c.press("1")
    assert c.kinds(out) == ["cancel_timer", "play"]
    assert c.m.variables["last_input"] == "1"
    assert [(t.event, t.node) for t in c.traces() if t.event != "VAR" or t.data["name"] == "last_input"] == [
        ("NODE", "main"), ("KEY", "main"), ("VAR", "main"), ("NODE", "sales")]
    assert c.traces("NODE")[-1].data == {"flow": "t", "from": "main"}


def test_menu_barge_in_stops_the_prompt_and_takes_the_key() -> None:
    c = Call(flow(menu(), SALES))
    out = c.press("2")
    assert out[0] == act.StopPlayback(1)
    assert out[-1] == act.EndCall("bye", "flow_end")
    assert "start_timer" not in c.kinds(out)


def test_menu_without_barge_in_ignores_keys_during_its_prompt() -> None:
    c = Call(flow(menu(barge_in=False), SALES))
    assert c.press("1") == []
    c.done()
    assert c.m.node == "main" and c.timer is not None


def test_menu_invalid_key_plays_the_invalid_prompt_then_the_menu_again() -> None:
    oops = Prompt("That is not an option.")
    c = Call(flow(menu(retry=InputRetry(invalid_prompt=oops)), SALES))
    c.done()
    out = c.press("9")
    assert c.kinds(out) == ["cancel_timer", "play"]
    assert c.of(act.Play, out)[0].text == "That is not an option."
    assert c.traces("NOMATCH")[0].data == {"attempt": 1, "input": "9"}
    assert c.done() and c.of(act.Play)[0].text == "For sales press 1."
    assert c.kinds(c.done()) == ["start_timer"]
    c.press("1")
    assert c.m.node == "sales"


def test_menu_timeouts_replay_with_the_timeout_prompt_and_then_go_to_no_input() -> None:
    retry = InputRetry(timeout=5, retries=2, timeout_prompt=Prompt("Please choose."), no_input="late",
                       no_match="wrong")
    c = Call(flow(menu(retry=retry), SALES, say("Late.", next="bye"), say("Wrong.", next="bye")))
    for attempt in (1, 2):
        c.done()
        out = c.fire()
        assert [p.text for p in c.of(act.Play, out)] == ["Please choose."]
        c.done()                                              # then the menu prompt again
        assert c.traces("TIMEOUT")[-1].data == {"attempt": attempt}
    c.done()
    out = c.fire()
    assert c.m.node == "late" and c.nodes() == ["main", "late"]
    assert c.traces("NODE")[-1].data["from"] == "main"


def test_menu_invalid_keys_exhaust_to_no_match_then_fallback_then_hang_up() -> None:
    def run(retry: InputRetry) -> Call:
        c = Call(flow(menu(retry=retry), SALES, say("Wrong.", next="bye"), say("Fall.", next="bye")))
        for _ in range(retry.retries + 1):
            while c.prompt is not None:
                c.done()
            c.press("7")
        return c

    assert run(InputRetry(retries=1, no_match="wrong", fallback="fall")).m.node == "wrong"
    assert run(InputRetry(retries=0, fallback="fall")).m.node == "fall"
    c = run(InputRetry(retries=1))
    assert c.out[-1] == act.EndCall("main", "no_input") and c.m.finish_reason == "no_input"
    assert len(c.traces("NOMATCH")) == 2


def test_menu_mixed_failures_count_together() -> None:
    c = Call(flow(menu(retry=InputRetry(retries=1, no_input="bye")), SALES))
    c.done()
    c.press("5")                  # failure 1: invalid
    c.done()
    c.fire()                      # failure 2: timeout -> the retries are used up
    assert c.m.finished and c.m.finish_reason == "flow_end" and c.nodes() == ["main", "bye"]


def test_a_cancelled_menu_timer_is_stale() -> None:
    c = Call(flow(menu(), SALES))
    c.done()
    old = c.timer
    assert old is not None
    c.press("9")                                   # invalid: the timer is cancelled, the menu asked again
    c.done()
    assert c.timer is not None and c.timer.timer != old.timer
    assert c.send(ev.TimerFired(old.deadline, old.timer)) == []
    assert not c.traces("TIMEOUT") and c.m.node == "main"
    c.press("1")
    assert c.m.node == "sales"


# -- collect ---------------------------------------------------------------------------------------
def collect(**kw: Any) -> CollectNode:
    kw.setdefault("variable", "account")
    kw.setdefault("next", "thanks")
    return CollectNode("acct", Prompt("Enter your account number, then hash."), **kw)


THANKS = PlayNode("thanks", Prompt("Thanks, {account}."), next="bye")


def test_collect_digits_until_the_terminator_keeps_leading_zeros() -> None:
    c = Call(flow(collect(inter_digit_timeout=3, retry=InputRetry(timeout=6)), THANKS))
    c.done()
    assert c.timer is not None and c.timer.deadline == T0 + 1 + 6     # first digit: retry.timeout
    c.press("0")
    assert c.timer is not None and c.timer.deadline == c.now + 3      # then the inter-digit timeout
    out = c.press("042#")
    assert c.m.variables["account"] == "0042"
    assert c.of(act.Play, out)[0].text == "Thanks, 0042."
    assert [t.data["digit"] for t in c.traces("KEY")] == ["0", "0", "4", "2", "#"]
    assert c.m.variables["last_input"] == "0042"


def test_collect_ends_at_max_length_and_at_the_inter_digit_timeout() -> None:
    c = Call(flow(collect(max_length=4), THANKS))
    c.press("12345")               # barge-in; the fifth digit lands on the next node (a play: ignored)
    assert c.m.variables["account"] == "1234" and c.m.node == "thanks"

    c = Call(flow(collect(min_length=2), THANKS))
    c.done()
    c.press("77")
    c.fire()                       # the caller stops typing
    assert c.m.variables["account"] == "77" and c.m.node == "thanks"


def test_collect_too_short_or_not_matching_the_pattern_is_a_no_match() -> None:
    c = Call(flow(collect(min_length=4, pattern=r"[1-9][0-9]*", retry=InputRetry(retries=1, no_match="bad")),
                  THANKS, say("Bad.", next="bye")))
    c.done()
    c.press("12#")
    assert c.traces("NOMATCH")[0].data == {"attempt": 1, "input": "12"}
    assert c.m.node == "acct" and "account" not in c.m.variables
    c.done()
    c.press("0123#")               # long enough, but the pattern wants no leading zero
    assert c.m.node == "bad"
    c = Call(flow(collect(), THANKS))
    c.done()
    c.press("#")                   # nothing before the terminator
    assert c.traces("NOMATCH")


def test_collect_first_digit_timeout_is_a_timeout() -> None:
    c = Call(flow(collect(retry=InputRetry(retries=0, no_input="late")), THANKS, say("Late.", next="bye")))
    c.done()
    c.fire()
    assert c.traces("TIMEOUT") and c.m.node == "late"


def test_collect_into_a_number_variable_converts() -> None:
    c = Call(flow(collect(), THANKS, variables={"account": Variable("account", "number")}))
    c.press("0042#")
    assert c.m.variables["account"] == 42


def test_sensitive_collect_pauses_the_recording_and_masks_the_digits_everywhere() -> None:
    f = flow(collect(variable="pin", next="check", sensitive=True),
             PlayNode("check", Prompt("You typed {pin}."), next="bye"))
    c = Call(f)
    assert c.kinds() == ["recording_pause", "play"]
    c.done()
    out = c.press("1234#")
    assert c.kinds(out)[:3] == ["cancel_timer", "start_timer", "cancel_timer"]
    assert "recording_resume" in c.kinds(out)
    assert c.kinds(out).index("recording_resume") < c.kinds(out).index("play")
    assert c.of(act.Play, out)[0].text == "You typed 1234."     # the caller hears it back
    assert {t.data["digit"] for t in c.traces("KEY")} == {"*"}
    assert [t.data["value"] for t in c.traces("VAR") if t.data["name"] in ("pin", "last_input")] == ["****", "****"]
    assert c.m.variables["pin"] == "1234"
    assert c.m.visible_variables()["pin"] == "****" and c.m.visible_variables()["last_input"] == "****"
    assert "1234" not in repr(c.m.path)
    assert "pin" in c.m.sensitive


def test_sensitive_collect_resumes_the_recording_however_it_ends() -> None:
    f = flow(collect(variable="pin", sensitive=True, retry=InputRetry(retries=0)), THANKS)
    c = Call(f)
    c.done()
    c.fire()                                                   # no input: hung up
    assert c.kinds() == ["recording_resume", "end_call"]
    c = Call(f)
    c.done()
    c.press("12")
    out = c.hangup()
    assert c.kinds(out) == ["cancel_timer", "recording_resume"] and c.m.finish_reason == "caller_hangup"
    assert "pin" not in c.m.variables


def test_a_variable_declared_sensitive_is_collected_sensitively() -> None:
    f = flow(collect(variable="card"), THANKS.__class__("thanks", Prompt("ok"), next="bye"),
             variables={"card": Variable("card", sensitive=True)})
    c = Call(f)
    assert c.kinds() == ["recording_pause", "play"]
    c.press("4111#")
    assert c.m.visible_variables()["card"] == "****" and c.traces("KEY")[0].data["digit"] == "*"


# -- speech ----------------------------------------------------------------------------------------
def speech(**kw: Any) -> SpeechNode:
    kw.setdefault("phrases", {"sales": "sales", "billing": "billing"})
    kw.setdefault("options", {"1": "sales", "2": "billing"})
    return SpeechNode("ask", Prompt("Say sales or billing."), **kw)


BILLING = PlayNode("billing", Prompt("Billing."), next="bye")


def test_speech_listens_during_the_prompt_and_a_confident_phrase_wins() -> None:
    c = Call(flow(speech(variable="dept", confidence=0.6), SALES, BILLING))
    assert c.kinds() == ["listen", "play"]
    assert c.of(act.Listen)[0].phrases == ("sales", "billing") and c.of(act.Listen)[0].language == "en"
    c.done()
    out = c.hear(" Billing ", 0.8)
    assert c.kinds(out) == ["cancel_timer", "play"]           # the recognizer is done: no StopListening
    assert c.traces("SPEECH")[0].data == {"phrase": "billing", "confidence": 0.8}
    assert c.m.variables["dept"] == "billing" and c.m.variables["last_input"] == "billing"
    assert c.m.node == "billing"


def test_speech_below_the_threshold_or_unknown_is_a_no_match_and_listens_again() -> None:
    c = Call(flow(speech(confidence=0.6, retry=InputRetry(retries=2, no_match="bye")), SALES, BILLING))
    c.done()
    first = c.listen
    out = c.hear("sales", 0.3)
    assert c.traces("NOMATCH")[0].data == {"attempt": 1, "input": "sales"}
    assert c.kinds(out) == ["cancel_timer", "listen", "play"] and c.listen != first
    c.done()
    c.hear("pizza", 0.99)
    c.done()
    c.hear(None, 0.0)
    assert c.m.finished and c.nodes() == ["ask", "bye"]


def test_speech_started_barges_into_the_prompt() -> None:
    c = Call(flow(speech(retry=InputRetry(timeout=4)), SALES, BILLING))
    prompt = c.prompt
    out = c.send(ev.SpeechStarted(c.now + 1, c.listen or 0))
    assert out == [act.StopPlayback(prompt or 0), act.StartTimer(3, T0 + 1 + 4)]
    c.hear("sales")
    assert c.m.node == "sales"


def test_speech_accepts_keys_and_stops_listening() -> None:
    c = Call(flow(speech(variable="dept"), SALES, BILLING))
    listen = c.listen
    out = c.press("2")
    assert c.kinds(out) == ["stop_playback", "stop_listening", "play"]
    assert c.of(act.StopListening, out) == [act.StopListening(listen or 0)]
    assert c.m.variables["dept"] == "2" and c.m.node == "billing"


def test_speech_timeout_stops_listening_and_asks_again() -> None:
    c = Call(flow(speech(retry=InputRetry(timeout=5, retries=1)), SALES, BILLING))
    c.done()
    first = c.listen
    out = c.fire()
    assert c.kinds(out) == ["stop_listening", "listen", "play"] and c.of(act.StopListening, out)[0].listen == first
    c.done()
    out = c.fire()
    assert c.kinds(out) == ["stop_listening", "end_call"] and c.m.finish_reason == "no_input"


def test_speech_without_barge_in_listens_after_the_prompt() -> None:
    c = Call(flow(speech(barge_in=False, language="zh"), SALES, BILLING))
    assert c.kinds() == ["play"]
    assert c.press("1") == []
    out = c.done()
    assert c.kinds(out) == ["listen", "start_timer"] and c.of(act.Listen, out)[0].language == "zh"


def test_a_result_of_an_old_recognizer_is_stale() -> None:
    c = Call(flow(speech(), SALES, BILLING))
    c.done()
    old = c.listen or 0
    c.fire()                                                   # timeout: a new recognizer
    assert c.send(ev.SpeechResult(c.now + 1, old, "sales", 1.0)) == []
    assert c.send(ev.SpeechStarted(c.now + 1, old)) == []
    assert c.m.node == "ask"
