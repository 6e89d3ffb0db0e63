"""The desk's wire protocol (callcenter/desk_protocol.py) and a session's seq rule (desk_session.py):
every client message parses into exactly its model; bad ones get one clear line and a ref; a replayed
or older seq is refused and leaves the session as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callcenter import desk_protocol as p
from callcenter.desk_session import DeskSession
from callcenter.storage.repos import User


def raw(**fields: Any) -> str:
    return json.dumps(fields)


GOOD: list[tuple[dict[str, Any], type]] = [
    ({"type": "auth", "token": "t0k"}, p.Auth),
    ({"type": "pong"}, p.Pong),
    ({"type": "pong", "seq": 4}, p.Pong),
    ({"type": "state", "seq": 1, "action": "pause", "reason": "lunch"}, p.SetState),
    ({"type": "answer", "seq": 1, "offer": "r1"}, p.Answer),
    ({"type": "reject", "seq": 1, "offer": "r1"}, p.Reject),
    ({"type": "rtc_answer", "seq": 1, "call_id": "c", "sdp": "v=0\r\n"}, p.RtcAnswer),
    ({"type": "hangup", "seq": 1, "call_id": "c"}, p.Hangup),
    ({"type": "hold", "seq": 1, "call_id": "c"}, p.Hold),
    ({"type": "resume", "seq": 1, "call_id": "c"}, p.ResumeCall),
    ({"type": "resume", "seq": 1, "resume_token": "abc"}, p.ResumeSession),
    ({"type": "mute", "seq": 1, "call_id": "c", "on": True}, p.Mute),
    ({"type": "dtmf", "seq": 1, "call_id": "c", "digits": "12#*ab"}, p.Dtmf),
    ({"type": "transfer", "seq": 1, "call_id": "c", "target": "queue:sales"}, p.Transfer),
    ({"type": "consult", "seq": 1, "call_id": "c", "target": "agent:bob"}, p.Consult),
    ({"type": "complete_transfer", "seq": 1, "call_id": "c"}, p.CompleteTransfer),
    ({"type": "cancel_transfer", "seq": 1, "call_id": "c"}, p.CancelTransfer),
    ({"type": "wrap_up", "seq": 1, "call_id": "c", "disposition": "sale", "note": "ok"}, p.WrapUp),
    ({"type": "monitor", "seq": 1, "call_id": "c", "mode": "whisper"}, p.Monitor),
    ({"type": "force_state", "seq": 1, "agent": "bob", "action": "logout"}, p.ForceState),
]


@pytest.mark.parametrize(("fields", "model"), GOOD, ids=[f"{f['type']}-{m.__name__}" for f, m in GOOD])
def test_every_client_message_parses_into_its_model(fields: dict[str, Any], model: type) -> None:
    msg = p.parse(raw(**fields))
    assert type(msg) is model
    for key, value in fields.items():
        assert getattr(msg, key) == value


def test_the_set_of_types_is_the_contracts() -> None:
    assert set(p.CLIENT_TYPES) == {
        "auth", "pong", "state", "answer", "reject", "rtc_answer", "hangup", "hold", "resume", "mute", "dtmf",
        "transfer", "consult", "complete_transfer", "cancel_transfer", "wrap_up", "monitor", "force_state"}
    assert set(p.SERVER_TYPES) == {
        "welcome", "agent_state", "offer", "offer_canceled", "rtc_offer", "connected", "held", "muted",
        "transfer_state", "call_ended", "monitor_state", "error", "ping"}


BAD: list[tuple[str, int | None, str]] = [
    ("not json", None, "not JSON"),
    ("[1, 2]", None, "a JSON object"),
    (raw(seq=3), 3, "no 'type'"),
    (raw(type=7, seq=3), 3, "no 'type'"),
    (raw(type="hodl", seq=3, call_id="c"), 3, "unknown message type 'hodl' (did you mean 'hold'?)"),
    (raw(type="hold", seq=3), 3, "hold: call_id: missing"),
    (raw(type="hold", call_id="c"), None, "hold: seq: missing"),
    (raw(type="hold", seq=True, call_id="c"), None, "seq: input should be a valid integer"),
    (raw(type="hold", seq=1.5, call_id="c"), None, "seq"),
    (raw(type="hold", seq=-1, call_id="c"), None, "seq"),
    (raw(type="hold", seq=2**60, call_id="c"), None, "seq"),
    (raw(type="hold", seq=3, call_id="c", extra=1), 3, "extra: unknown field"),
    (raw(type="hold", seq=3, call_id=""), 3, "call_id"),
    (raw(type="hold", seq=3, call_id="a b"), 3, "call_id"),
    (raw(type="mute", seq=3, call_id="c", on="yes"), 3, "on: input should be a valid boolean"),
    (raw(type="mute", seq=3, call_id="c", on=1), 3, "on"),
    (raw(type="dtmf", seq=3, call_id="c", digits="12x"), 3, "digits"),
    (raw(type="dtmf", seq=3, call_id="c", digits="1" * 65), 3, "digits"),
    (raw(type="state", seq=3, action="sleep"), 3, "action"),
    (raw(type="monitor", seq=3, call_id="c", mode="spy"), 3, "mode"),
    (raw(type="resume", seq=3), 3, "either call_id"),
    (raw(type="resume", seq=3, call_id="c", resume_token="t"), 3, "either call_id"),
    (raw(type="wrap_up", seq=3, call_id="c", disposition="", note=""), 3, "disposition"),
    (raw(type="state", seq=3, action="login", reason="x" * 65), 3, "reason"),
    (raw(type="auth"), None, "auth: token: missing"),
]


@pytest.mark.parametrize(("text", "ref", "says"), BAD)
def test_bad_messages_get_one_clear_line_and_their_seq(text: str, ref: int | None, says: str) -> None:
    with pytest.raises(p.BadMessage) as exc:
        p.parse(text)
    assert exc.value.code == "bad_message"
    assert says in exc.value.message, exc.value.message
    assert exc.value.ref == ref
    assert "\n" not in exc.value.message and len(exc.value.message) < 600


def test_oversized_messages_are_refused_before_they_are_read() -> None:
    big = raw(type="rtc_answer", seq=1, call_id="c", sdp="a" * p.MAX_MESSAGE_BYTES)
    with pytest.raises(p.BadMessage, match=r"over the 65536-byte limit"):
        p.parse(big)
    with pytest.raises(p.BadMessage, match="byte limit"):
        p.parse(big.encode())
    p.parse(raw(type="rtc_answer", seq=1, call_id="c", sdp="a" * 60_000))   # an SDP of a normal size is fine


def test_server_messages_round_trip() -> None:
    msgs: list[p.ServerMessage] = [
        p.Welcome(session="s", resume_token="t", agent="alice", role="agent", state=None, heartbeat_s=10,
                  grace_s=20, last_seq=-1),
        p.AgentState(agent="alice", state="break", reason="lunch", pending="", since=1.0),
        p.Offer(offer="r", call_id="c", queue="q", caller="+1", customer=None, variables={"a": 1}, ring_timeout_s=15),
        p.OfferCanceled(offer="r", reason="timeout"), p.RtcOffer(call_id="c", sdp="v=0"),
        p.Connected(call_id="c", started_at=1.0), p.Held(call_id="c", held=True), p.Muted(call_id="c", muted=False),
        p.TransferState(call_id="c", state="consulting", target="agent:bob"),
        p.CallEnded(call_id="c", by="agent", wrap_up_s=10), p.MonitorState(call_id="c", mode="barge"),
        p.Error(code="replay", message="m", ref=3), p.Ping()]
    for msg in msgs:
        back = p.decode_server(p.encode(msg))
        assert back == msg and json.loads(p.encode(msg))["type"] == msg.type


def session() -> DeskSession:
    return DeskSession("agent:alice", User(1, "alice", "agent"), "alice")


def test_a_replayed_or_older_seq_is_refused_and_changes_nothing() -> None:
    s = session()
    assert s.accept_seq(0) and s.accept_seq(5)
    assert not s.accept_seq(5)      # the same again
    assert not s.accept_seq(3)      # an older one
    assert s.last_seq == 5
    assert s.accept_seq(6) and s.last_seq == 6


def test_resume_tokens_are_kept_hashed_and_only_the_last_few_work() -> None:
    s = session()
    tokens = [s.new_token() for _ in range(6)]
    assert len(set(tokens)) == 6 and all(len(t) >= 32 for t in tokens)
    assert not any(t in repr(s.__dict__) for t in tokens)
    assert [s.token_ok(t) for t in tokens] == [False, False, True, True, True, True]
    assert not s.token_ok("") and not s.token_ok("guess")
