"""The agent desk's wire protocol: typed JSON messages over ``/api/desk/ws`` (docs/desk.md).

Every message is one JSON object with a ``type`` discriminator. :func:`parse` turns a client's
raw text into exactly one of the client message models or raises :class:`BadMessage` with a
clear, one-line text (and the message's ``seq`` when it could be read, for the error's ``ref``);
nothing else is ever accepted: unknown types, unknown or missing fields, wrong field types and
oversized messages are all refused. Server messages are models too; :func:`encode` writes them.

``resume`` is two messages on the wire: ``{"type": "resume", "call_id": ...}`` takes a held call
off hold, ``{"type": "resume", "resume_token": ...}`` resumes a desk session after a reconnect.
They are told apart by their fields (:class:`ResumeCall`, :class:`ResumeSession`).

Sequence numbers (``seq``) are checked by the session (callcenter/desk_session.py), not here: a
message must parse before its ``seq`` counts.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, TypeAdapter, ValidationError

MAX_MESSAGE_BYTES = 64 * 1024          # an SDP answer is a few kB; anything near this is not a desk message
MAX_SEQ = 2**53 - 1                    # JavaScript's largest exact integer

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Reason = Annotated[str, Field(max_length=64)]
StateActionT = Literal["login", "logout", "pause", "resume"]
MonitorMode = Literal["listen", "whisper", "barge", "off"]


class BadMessage(ValueError):
    """A client message that is not one of the protocol's: ``code`` bad_message, ``ref`` its seq if readable."""

    def __init__(self, message: str, ref: int | None = None, code: str = "bad_message") -> None:
        super().__init__(message)
        self.message = message
        self.ref = ref
        self.code = code


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Client(_Msg):
    seq: Annotated[StrictInt, Field(ge=0, le=MAX_SEQ)]


# -- client -> server ------------------------------------------------------------------------------
class Auth(_Msg):
    """The first message of a connection that came with no cookie or bearer header."""

    type: Literal["auth"]
    token: Annotated[str, Field(min_length=1, max_length=512)]
    seq: Annotated[StrictInt | None, Field(ge=0, le=MAX_SEQ)] = None


class Pong(_Msg):
    type: Literal["pong"]
    seq: Annotated[StrictInt | None, Field(ge=0, le=MAX_SEQ)] = None   # optional; checked when given


class SetState(_Client):
    type: Literal["state"]
    action: StateActionT
    reason: Reason = ""


class Answer(_Client):
    type: Literal["answer"]
    offer: Id


class Reject(_Client):
    type: Literal["reject"]
    offer: Id


class RtcAnswer(_Client):
    type: Literal["rtc_answer"]
    call_id: Id
    sdp: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_BYTES)]


class Hangup(_Client):
    type: Literal["hangup"]
    call_id: Id


class Hold(_Client):
    type: Literal["hold"]
    call_id: Id


class ResumeCall(_Client):
    """Take the call off hold."""

    type: Literal["resume"]
    call_id: Id


class ResumeSession(_Client):
    """After a reconnect: this is the page that held the session of ``resume_token``."""

    type: Literal["resume"]
    resume_token: Annotated[str, Field(min_length=1, max_length=128)]


class Mute(_Client):
    type: Literal["mute"]
    call_id: Id
    on: StrictBool


class Dtmf(_Client):
    type: Literal["dtmf"]
    call_id: Id
    digits: Annotated[str, Field(pattern=r"^[0-9*#A-Da-d]{1,64}$")]


class Transfer(_Client):
    """Blind transfer to "queue:NAME", "agent:ID", or a number / SIP URI allowed by [ivr] transfer_allow."""

    type: Literal["transfer"]
    call_id: Id
    target: Annotated[str, Field(min_length=1, max_length=256)]


class Consult(_Client):
    """Attended transfer, step one: the caller holds, the agent talks to ``target``."""

    type: Literal["consult"]
    call_id: Id
    target: Annotated[str, Field(min_length=1, max_length=256)]


class CompleteTransfer(_Client):
    type: Literal["complete_transfer"]
    call_id: Id


class CancelTransfer(_Client):
    type: Literal["cancel_transfer"]
    call_id: Id


class WrapUp(_Client):
    type: Literal["wrap_up"]
    call_id: Id
    disposition: Annotated[str, Field(min_length=1, max_length=64)]
    note: Annotated[str, Field(max_length=4000)] = ""


class Monitor(_Client):
    """Supervisors: listen, whisper (the agent hears the supervisor), barge (three-way), off."""

    type: Literal["monitor"]
    call_id: Id
    mode: MonitorMode


class ForceState(_Client):
    """Supervisors: change another agent's state."""

    type: Literal["force_state"]
    agent: Id
    action: StateActionT
    reason: Reason = ""


ClientMessage = (Auth | Pong | SetState | Answer | Reject | RtcAnswer | Hangup | Hold | ResumeCall | ResumeSession
                 | Mute | Dtmf | Transfer | Consult | CompleteTransfer | CancelTransfer | WrapUp | Monitor
                 | ForceState)

_BY_TYPE: dict[str, type[_Msg]] = {
    "auth": Auth, "pong": Pong, "state": SetState, "answer": Answer, "reject": Reject, "rtc_answer": RtcAnswer,
    "hangup": Hangup, "hold": Hold, "mute": Mute, "dtmf": Dtmf, "transfer": Transfer, "consult": Consult,
    "complete_transfer": CompleteTransfer, "cancel_transfer": CancelTransfer, "wrap_up": WrapUp,
    "monitor": Monitor, "force_state": ForceState,
}
CLIENT_TYPES: tuple[str, ...] = (*sorted([*_BY_TYPE, "resume"]),)
SUPERVISOR_TYPES = frozenset({"monitor", "force_state"})


def _ref(data: dict[str, Any]) -> int | None:
    seq = data.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= MAX_SEQ else None


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        kind = err["type"]
        if kind == "missing":
            parts.append(f"{where}: missing")
        elif kind == "extra_forbidden":
            parts.append(f"{where}: unknown field")
        else:
            text = err["msg"]
            parts.append(f"{where}: {text[:1].lower()}{text[1:]}")
    return "; ".join(parts)


def parse(raw: str | bytes) -> ClientMessage:
    """One client message from its raw WebSocket text; :class:`BadMessage` (a clear text) otherwise."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise BadMessage(f"message of {size} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadMessage(f"a message is a JSON object with a 'type', not {type(data).__name__}")
    ref = _ref(data)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise BadMessage("the message has no 'type' string", ref)
    model: type[_Msg] | None
    if kind == "resume":
        has_token, has_call = "resume_token" in data, "call_id" in data
        if has_token == has_call:
            raise BadMessage("resume takes either call_id (off hold) or resume_token (a reconnect), one of them",
                             ref)
        model = ResumeSession if has_token else ResumeCall
    else:
        model = _BY_TYPE.get(kind)
    if model is None:
        from routing.config import did_you_mean

        raise BadMessage(f"unknown message type {kind[:40]!r}{did_you_mean(kind, CLIENT_TYPES)}; types are: "
                         f"{', '.join(CLIENT_TYPES)}", ref)
    try:
        msg: ClientMessage = model.model_validate(data)  # type: ignore[assignment]
    except ValidationError as exc:
        raise BadMessage(f"{kind}: {_explain(exc)}", ref) from None
    return msg


# -- server -> client ------------------------------------------------------------------------------
class Welcome(_Msg):
    type: Literal["welcome"] = "welcome"
    session: str
    resume_token: str
    agent: str | None                  # None: a supervisor with no agent of their own
    role: str                          # the user's role: agent, supervisor, admin
    state: dict[str, Any] | None       # the agent's live status (as agent_state), None without an agent
    heartbeat_s: float
    grace_s: float
    last_seq: int                      # the session's last accepted seq: the next message must exceed it
    resumed: bool = False              # a `resume` confirmed this is the same page


class AgentState(_Msg):
    type: Literal["agent_state"] = "agent_state"
    agent: str
    state: str
    reason: str = ""
    pending: str = ""
    since: float | None = None


class Offer(_Msg):
    type: Literal["offer"] = "offer"
    offer: str                         # the reservation: answer/reject name it
    call_id: str
    queue: str
    caller: str
    customer: dict[str, Any] | None
    variables: dict[str, Any]
    ring_timeout_s: float
    callback: bool = False


class OfferCanceled(_Msg):
    type: Literal["offer_canceled"] = "offer_canceled"
    offer: str
    reason: str


class RtcOffer(_Msg):
    type: Literal["rtc_offer"] = "rtc_offer"
    call_id: str
    sdp: str


class Connected(_Msg):
    type: Literal["connected"] = "connected"
    call_id: str
    started_at: float
    queue: str = ""
    caller: str = ""


class Held(_Msg):
    type: Literal["held"] = "held"
    call_id: str
    held: bool


class Muted(_Msg):
    type: Literal["muted"] = "muted"
    call_id: str
    muted: bool


class TransferState(_Msg):
    type: Literal["transfer_state"] = "transfer_state"
    call_id: str
    state: Literal["consulting", "completed", "canceled", "failed"]
    target: str
    reason: str = ""


class CallEnded(_Msg):
    type: Literal["call_ended"] = "call_ended"
    call_id: str
    by: str                            # agent | caller | lost | transfer | system
    wrap_up_s: float


class MonitorState(_Msg):
    type: Literal["monitor_state"] = "monitor_state"
    call_id: str
    mode: MonitorMode


class Error(_Msg):
    type: Literal["error"] = "error"
    code: str     # bad_message replay unauthorized forbidden taken_over not_found conflict not_allowed unavailable
    message: str
    ref: int | None = None


class Ping(_Msg):
    type: Literal["ping"] = "ping"


ServerMessage = (Welcome | AgentState | Offer | OfferCanceled | RtcOffer | Connected | Held | Muted | TransferState
                 | CallEnded | MonitorState | Error | Ping)
SERVER_TYPES = ("welcome", "agent_state", "offer", "offer_canceled", "rtc_offer", "connected", "held", "muted",
                "transfer_state", "call_ended", "monitor_state", "error", "ping")

_server_adapter: TypeAdapter[ServerMessage] = TypeAdapter(
    Annotated[ServerMessage, Field(discriminator="type")])


def encode(msg: ServerMessage) -> str:
    """The wire text of a server message."""
    return msg.model_dump_json()


def decode_server(raw: str | bytes) -> ServerMessage:
    """A server message from its text (for clients and tests); ValidationError otherwise."""
    return _server_adapter.validate_json(raw)


class DeskError(Exception):
    """A desk request that was understood but refused: becomes an ``error`` message with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
