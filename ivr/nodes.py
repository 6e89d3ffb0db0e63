"""The flow model: a flow is a named graph of typed nodes (what `ivr/flow.py` loads from YAML).

Frozen dataclasses only: no parsing here (ivr/flow.py), no behaviour (ivr/machine.py). Every
node has ``id`` (its key under ``nodes:``) and ``line`` (where it starts in the YAML file, for
messages). Node targets are node ids of the same flow. Text fields marked *templated* may hold
``{variable}`` placeholders, filled when the node runs (ivr/template.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

VarType = Literal["string", "number", "boolean"]
DIGITS = "0123456789*#"

# Variables every call has (set from the SIP INVITE by the driver before the first node).
BUILTIN_VARIABLES: dict[str, VarType] = {
    "call_id": "string",          # our id of the call
    "caller_number": "string",    # P-Asserted-Identity's user part, else From's
    "caller_name": "string",      # display name ("" if none)
    "dialled_number": "string",   # the Request-URI's user part
    "language": "string",         # the prompt language in use: the flow's default until a set node changes it
    "last_input": "string",       # the last key or phrase an input node accepted (masked if sensitive)
    "server_url": "string",       # this server's own HTTP address, e.g. http://127.0.0.1:8080
}


@dataclass(frozen=True, slots=True)
class Prompt:
    """What to play: TTS text (templated) or an audio file (a path relative to the flow file)."""

    say: str | None = None
    audio: str | None = None
    voice: str | None = None        # espeak-ng voice name; None: by language
    language: str | None = None     # "en", "zh" ...; None: the call's `language` variable
    rate: int | None = None         # words per minute; None: the server's default


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    type: VarType = "string"
    default: str | float | bool | None = None
    sensitive: bool = False         # masked in logs, events and the API wherever it appears


@dataclass(frozen=True, slots=True)
class Schedule:
    """Opening hours: ``weekly[day]`` lists (open, close) as "HH:MM" (day 0 = Monday)."""

    name: str
    timezone: str                                   # IANA name, e.g. "Europe/London"
    weekly: dict[int, tuple[tuple[str, str], ...]]
    holidays: tuple[str, ...] = ()                  # "YYYY-MM-DD": closed all day
    line: int = 0


@dataclass(frozen=True, slots=True)
class PlayNode:
    id: str
    prompt: Prompt
    next: str | None = None          # None: the flow ends (a subflow returns)
    barge_in: bool = False           # a key stops the prompt (and goes to next)
    line: int = 0
    type: Literal["play"] = "play"


@dataclass(frozen=True, slots=True)
class InputRetry:
    """Shared by menu, collect and speech: what happens when the caller gives nothing valid."""

    timeout: float = 5.0             # seconds of silence after the prompt before a timeout
    retries: int = 2                 # re-prompts after the first attempt
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    no_match: str | None = None      # after the last invalid attempt (default: fallback)
    no_input: str | None = None      # after the last timeout (default: fallback)
    fallback: str | None = None      # after the last failure of either kind (None: hang up)


@dataclass(frozen=True, slots=True)
class MenuNode:
    id: str
    prompt: Prompt
    options: dict[str, str]          # digit -> node
    retry: InputRetry = field(default_factory=InputRetry)
    barge_in: bool = True
    line: int = 0
    type: Literal["menu"] = "menu"


@dataclass(frozen=True, slots=True)
class CollectNode:
    id: str
    prompt: Prompt
    variable: str
    next: str
    min_length: int = 1
    max_length: int = 16
    terminator: str | None = "#"     # ends the input early (not stored)
    inter_digit_timeout: float = 3.0
    pattern: str | None = None       # a regular expression the whole input must match
    sensitive: bool = False          # recording paused while collecting; digits masked
    retry: InputRetry = field(default_factory=InputRetry)
    barge_in: bool = True
    line: int = 0
    type: Literal["collect"] = "collect"


@dataclass(frozen=True, slots=True)
class SpeechNode:
    id: str
    prompt: Prompt
    phrases: dict[str, str]          # phrase (lower case words) -> node
    options: dict[str, str] = field(default_factory=dict)  # keys still accepted: digit -> node
    variable: str | None = None      # stores the phrase (or key) the caller chose
    confidence: float = 0.5          # results below it count as no match
    language: str | None = None      # recognizer language; None: the call's `language`
    retry: InputRetry = field(default_factory=InputRetry)
    barge_in: bool = True            # speech or a key stops the prompt
    line: int = 0
    type: Literal["speech"] = "speech"


@dataclass(frozen=True, slots=True)
class BranchRule:
    condition: str                   # an expression (ivr/expressions.py), e.g. "balance > 100 and open('office')"
    next: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class BranchNode:
    id: str
    rules: tuple[BranchRule, ...]    # the first rule that holds wins
    otherwise: str                   # `else:` in YAML
    line: int = 0
    type: Literal["branch"] = "branch"


@dataclass(frozen=True, slots=True)
class HttpNode:
    id: str
    url: str                         # templated
    next: str
    error: str                       # timeout, connection error, non-2xx, a body that is not JSON
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = field(default_factory=dict)   # values templated
    body: dict[str, str] = field(default_factory=dict)      # POST JSON; values templated
    timeout: float = 3.0
    results: dict[str, str] = field(default_factory=dict)   # variable -> dotted path in the JSON reply
    line: int = 0
    type: Literal["http"] = "http"


@dataclass(frozen=True, slots=True)
class SetNode:
    id: str
    values: dict[str, str]           # variable -> template (converted to the variable's type)
    next: str
    line: int = 0
    type: Literal["set"] = "set"


@dataclass(frozen=True, slots=True)
class GotoNode:
    id: str
    target: str
    max_visits: int | None = None    # taken at most this often per call, then `otherwise`
    otherwise: str | None = None
    line: int = 0
    type: Literal["goto"] = "goto"


@dataclass(frozen=True, slots=True)
class SubflowNode:
    id: str
    flow: str                        # another flow's name (its deployed version at call start)
    next: str | None = None          # where to go when the subflow returns
    line: int = 0
    type: Literal["subflow"] = "subflow"


@dataclass(frozen=True, slots=True)
class ReturnNode:
    """Ends a subflow (back to the calling flow's `next`); in a top-level flow it hangs up."""

    id: str
    line: int = 0
    type: Literal["return"] = "return"


@dataclass(frozen=True, slots=True)
class QueueNode:
    id: str
    queue: str
    skills: dict[str, int] = field(default_factory=dict)  # skill -> minimum proficiency 1..5
    priority: int = 0
    no_agents: str | None = None     # when the ACD cannot take the call (None: hang up)
    next: str | None = None          # after the ACD hands the call back (None: hang up)
    line: int = 0
    type: Literal["queue"] = "queue"


@dataclass(frozen=True, slots=True)
class VoicemailNode:
    id: str
    mailbox: str
    prompt: Prompt | None = None     # the greeting
    beep: bool = True
    max_length: float = 120.0        # seconds; '#' or hanging up ends it sooner
    next: str | None = None          # None: hang up after saving
    line: int = 0
    type: Literal["voicemail"] = "voicemail"


@dataclass(frozen=True, slots=True)
class TransferNode:
    id: str
    target: str                      # a SIP URI (templated); must match [ivr] transfer_allow
    prompt: Prompt | None = None     # said before transferring
    error: str | None = None         # refused by the allow-list or failed (None: hang up)
    line: int = 0
    type: Literal["transfer"] = "transfer"


@dataclass(frozen=True, slots=True)
class HangupNode:
    id: str
    prompt: Prompt | None = None     # a goodbye, said before hanging up
    line: int = 0
    type: Literal["hangup"] = "hangup"


Node = (PlayNode | MenuNode | CollectNode | SpeechNode | BranchNode | HttpNode | SetNode | GotoNode
        | SubflowNode | ReturnNode | QueueNode | VoicemailNode | TransferNode | HangupNode)
InputNode = MenuNode | CollectNode | SpeechNode


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    nodes: dict[str, Node]
    language: str = "en"             # default prompt / recognizer language
    voice: str | None = None         # default espeak-ng voice (None: by language)
    variables: dict[str, Variable] = field(default_factory=dict)  # declared (built-ins not included)
    hours: dict[str, Schedule] = field(default_factory=dict)
    on_error: str | None = None      # where a call goes after an internal error (apology first)
    description: str = ""
    source: str = ""                 # the file it was loaded from, or "name@version" ("" if built in memory)
    base_dir: str = ""               # the folder relative `audio` paths resolve against ("": the source's)

    def targets(self, node: Node) -> list[str]:
        """Every node id ``node`` can lead to (for validation and coverage)."""
        out: list[str | None] = []
        for name in ("next", "otherwise", "no_agents", "error"):
            out.append(getattr(node, name, None))
        if isinstance(node, GotoNode):  # (a transfer node's target is a SIP URI, not a node)
            out.append(node.target)
        if isinstance(node, MenuNode | SpeechNode):
            out += list(node.options.values())
        if isinstance(node, SpeechNode):
            out += list(node.phrases.values())
        if isinstance(node, MenuNode | CollectNode | SpeechNode):
            out += [node.retry.no_match, node.retry.no_input, node.retry.fallback]
        if isinstance(node, BranchNode):
            out += [r.next for r in node.rules]
        return [t for t in out if t]

    def prompts(self) -> list[Prompt]:
        """Every prompt of this flow (the driver renders the untemplated ones ahead of calls)."""
        out: list[Prompt | None] = []
        for n in self.nodes.values():
            out.append(getattr(n, "prompt", None))
            retry = getattr(n, "retry", None)
            if retry is not None:
                out += [retry.invalid_prompt, retry.timeout_prompt]
        return [p for p in out if p is not None]
