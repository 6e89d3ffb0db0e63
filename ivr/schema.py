"""The flow file's JSON Schema (draft 2020-12), and structural checking of a parsed flow against it.

``flow_schema()`` is what ``callcenter flow schema`` prints: editors use it to complete and check flow
files. With VS Code's YAML extension (redhat.vscode-yaml), either put this first line in a flow::

    # yaml-language-server: $schema=./flow.schema.json

or map files to it in settings.json: ``"yaml.schemas": {"./flow.schema.json": "flows/*.yaml"}``.

``structure_problems(data)`` validates the plain data ivr/flow.py read from YAML (every mapping key a
string) with the ``jsonschema`` package and turns its errors into short messages, each tied to a path
into the data (and to whether the key or the value is at fault), which ivr/flow.py maps to file lines.
Nodes are checked one by one against the definition their ``type`` selects, so a mistake in a menu is
reported as a menu's mistake rather than as "matches none of 14 node types".
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .hours import DAY_KEY_PATTERN

SCHEMA_ID = "urn:callcenter:schema:flow:1"
NODE_TYPES = ("play", "menu", "collect", "speech", "branch", "http", "set", "goto", "subflow", "return",
              "queue", "voicemail", "transfer", "hangup")
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
KEY_PATTERN = r"^[0-9*#]$"
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]+)*$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
DOTTED_PATTERN = r"^[^.\s]+(\.[^.\s]+)*$"
Path = tuple[str | int, ...]


def _s(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, **schema}


def _ref(name: str, description: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}", "description": description}


def _target(description: str) -> dict[str, Any]:
    return _ref("target", description)


_VOICE = {
    "voice": _s("espeak-ng voice name, e.g. \"en-gb\" or \"cmn\" (default: the flow's `voice`, else by language).",
                type="string", minLength=1),
    "language": _s("Language of this prompt, e.g. \"en\" or \"zh\" (default: the call's `language` variable).",
                   type="string", pattern=LANGUAGE_PATTERN),
    "rate": _s("Speaking rate in words per minute (default: the server's).", type="integer",
               minimum=80, maximum=450),
}
_SAY = _s("Text to speak (text-to-speech); `{variable}` placeholders are filled in, `{{` and `}}` are braces.",
          type="string", minLength=1)
_AUDIO = _s("A WAV file to play, relative to the flow file's folder (converted to the engine's rate once).",
            type="string", minLength=1)
_SAY_OR_AUDIO = [{"required": ["say"]}, {"required": ["audio"]}]
_RETRY = {
    "timeout": _s("Seconds of silence after the prompt before it counts as no input (default 5).",
                  type="number", exclusiveMinimum=0, maximum=120),
    "retries": _s("How many times the caller is asked again after a first failed attempt (default 2).",
                  type="integer", minimum=0, maximum=10),
    "invalid_prompt": _ref("prompt", "Said after an invalid entry, before asking again."),
    "timeout_prompt": _ref("prompt", "Said after no entry, before asking again."),
    "no_match": _target("Node after the last invalid entry (default: `fallback`)."),
    "no_input": _target("Node after the last timeout (default: `fallback`)."),
    "fallback": _target("Node after the last failure of either kind (default: hang up)."),
}
_BARGE = _s("Whether the caller may answer while the prompt still plays (default true).", type="boolean")


def _node(kind: str, description: str, props: dict[str, Any], required: tuple[str, ...] = (),
          **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"{kind} node",
        "description": description,
        "properties": {"type": {"const": kind, "description": f"`{kind}`: {description}"}, **props},
        "required": ["type", *required],
        "additionalProperties": False,
        **extra,
    }


def _digit_options(description: str, min_properties: int = 0) -> dict[str, Any]:
    return _s(description + " Keys are 0-9, \"*\" or \"#\" (quote * and #: YAML reads them specially).",
              type="object", propertyNames={"pattern": KEY_PATTERN}, minProperties=min_properties,
              additionalProperties={"$ref": "#/$defs/target"})


def _node_defs() -> dict[str, dict[str, Any]]:
    return {
        "play": _node("play", "Speak a text or play a WAV file, then go to `next`.", {
            "say": _SAY, "audio": _AUDIO, **_VOICE,
            "barge_in": _s("Whether a key press stops the prompt and goes on to `next` (default false).",
                           type="boolean"),
            "next": _target("Node after the prompt (default: the flow ends; in a subflow it returns)."),
        }, oneOf=_SAY_OR_AUDIO),
        "menu": _node("menu", "Ask the caller to press a key; each key leads to a node.", {
            "prompt": _ref("prompt", "What the caller hears, e.g. \"For sales press 1.\""),
            "options": _digit_options("Key -> node.", 1), **_RETRY, "barge_in": _BARGE,
        }, ("prompt", "options")),
        "collect": _node("collect", "Collect several digits (an account number, a PIN) into a variable.", {
            "prompt": _ref("prompt", "What the caller hears, e.g. \"Enter your account number, then hash.\""),
            "variable": _s("Variable the digits go into.", type="string", pattern=NAME_PATTERN),
            "next": _target("Node after a valid entry."),
            "min_length": _s("Fewest digits accepted (default 1).", type="integer", minimum=1, maximum=64),
            "max_length": _s("Most digits; input ends there by itself (default 16).", type="integer",
                             minimum=1, maximum=64),
            "terminator": _s("Key that ends the entry early, not stored (default \"#\"; null: none).",
                             type=["string", "null"], pattern=KEY_PATTERN),
            "inter_digit_timeout": _s("Seconds allowed between two digits (default 3).", type="number",
                                      exclusiveMinimum=0, maximum=60),
            "pattern": _s("A regular expression the whole entry must match, e.g. \"[0-9]{8}\".", type="string"),
            "sensitive": _s("Pause the recording while collecting and mask the digits in logs, events and the "
                            "API (default false).", type="boolean"),
            **_RETRY, "barge_in": _BARGE,
        }, ("prompt", "variable", "next")),
        "speech": _node("speech", "Listen for one of a set of spoken phrases (keys still work).", {
            "prompt": _ref("prompt", "What the caller hears, e.g. \"Say sales, billing or support.\""),
            "phrases": _s("Phrase -> node. Phrases are matched as lower-case words.", type="object",
                          minProperties=1, propertyNames={"minLength": 1},
                          additionalProperties={"$ref": "#/$defs/target"}),
            "options": _digit_options("Keys still accepted: key -> node."),
            "variable": _s("Variable that receives the phrase (or key) chosen.", type="string",
                           pattern=NAME_PATTERN),
            "confidence": _s("Recognitions below this confidence count as no match (0..1, default 0.5).",
                             type="number", minimum=0, maximum=1),
            "language": _s("Recognizer language (default: the call's `language`).", type="string",
                           pattern=LANGUAGE_PATTERN),
            **_RETRY, "barge_in": _BARGE,
        }, ("prompt", "phrases")),
        "branch": _node("branch", "Go to the first rule whose condition holds, else to `else`.", {
            "rules": _s("Rules tried in order.", type="array", minItems=1, items={
                "type": "object", "additionalProperties": False, "required": ["if", "next"],
                "properties": {
                    "if": _s("A condition, e.g. \"balance > 100 and open('office')\": comparisons == != < <= > "
                             ">=, in [..], startswith, endswith, matches, and/or/not, open('schedule').",
                             type="string", minLength=1),
                    "next": _target("Node when the condition holds."),
                }}),
            "else": _target("Node when no rule holds."),
        }, ("rules", "else")),
        "http": _node("http", "Call an external system with JSON (a CRM lookup); results go into variables.", {
            "url": _s("http:// or https:// URL; `{variable}` placeholders are filled in.", type="string",
                      minLength=1),
            "method": _s("GET (default) or POST.", enum=["GET", "POST"]),
            "headers": _s("Request headers; values may hold placeholders.", type="object",
                          additionalProperties={"type": "string"}),
            "body": _s("JSON body of a POST: key -> value (values may hold placeholders).", type="object",
                       additionalProperties={"type": ["string", "number", "boolean"]}),
            "timeout": _s("Seconds before giving up and going to `error` (default 3, at most 30).",
                          type="number", exclusiveMinimum=0, maximum=30),
            "results": _s("variable -> dotted path into the JSON reply, e.g. balance: account.balance.",
                          type="object", propertyNames={"pattern": NAME_PATTERN},
                          additionalProperties={"type": "string", "pattern": DOTTED_PATTERN}),
            "next": _target("Node after a successful reply."),
            "error": _target("Node after a timeout, a connection error, a non-2xx status or a reply that is not "
                             "JSON."),
        }, ("url", "next", "error")),
        "set": _node("set", "Assign variables, then go to `next`.", {
            "values": _s("variable -> value; text values may hold placeholders (converted to the variable's "
                         "type).", type="object", minProperties=1, propertyNames={"pattern": NAME_PATTERN},
                         additionalProperties={"type": ["string", "number", "boolean"]}),
            "next": _target("Node after assigning."),
        }, ("values", "next")),
        "goto": _node("goto", "Jump to `target`; with `max_visits`, at most that often per call.", {
            "target": _target("Node to jump to."),
            "max_visits": _s("Times the jump is taken per call before `otherwise` is used.", type="integer",
                             minimum=1),
            "otherwise": _target("Node once `max_visits` is used up (default: hang up)."),
        }, ("target",)),
        "subflow": _node("subflow", "Run another flow (its deployed version), then come back to `next`.", {
            "flow": _s("The other flow's `name`.", type="string", minLength=1),
            "next": _target("Node when the subflow returns (default: the flow ends)."),
        }, ("flow",)),
        "return": _node("return", "End a subflow (back to the caller's `next`); a top-level flow hangs up.", {}),
        "queue": _node("queue", "Hand the call to the ACD to wait for an agent.", {
            "queue": _s("Queue name.", type="string", minLength=1),
            "skills": _s("Skills the agent needs: {skill: minimum proficiency 1..5}, or a list of skill names "
                         "(proficiency 1).", oneOf=[
                             {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1,
                                                                         "maximum": 5}},
                             {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
                         ]),
            "priority": _s("Priority in the queue; higher is served first (default 0).", type="integer",
                           minimum=0, maximum=100),
            "no_agents": _target("Node when the ACD cannot take the call (default: hang up)."),
            "next": _target("Node when the ACD hands the call back (default: hang up)."),
        }, ("queue",)),
        "voicemail": _node("voicemail", "Record a message into a mailbox (listed in the API).", {
            "mailbox": _s("Mailbox name.", type="string", minLength=1),
            "prompt": _ref("prompt", "The greeting."),
            "beep": _s("Beep before recording (default true).", type="boolean"),
            "max_length": _s("Longest message in seconds (default 120); '#' or hanging up ends it sooner.",
                             type="number", exclusiveMinimum=0, maximum=3600),
            "next": _target("Node after saving (default: hang up)."),
        }, ("mailbox",)),
        "transfer": _node("transfer", "Transfer the call to a SIP URI (must match the server's allow-list).", {
            "target": _s("SIP URI, e.g. \"sip:desk@pbx.example.com\"; placeholders are filled in.",
                         type="string", minLength=1),
            "prompt": _ref("prompt", "Said before transferring."),
            "error": _target("Node when the transfer is refused or fails (default: hang up)."),
        }, ("target",)),
        "hangup": _node("hangup", "End the call, after an optional goodbye.", {
            "prompt": _ref("prompt", "A goodbye said before hanging up."),
        }),
    }


def _defs() -> dict[str, Any]:
    nodes = _node_defs()
    return {
        "target": _s("A node id of this flow.", type="string", pattern=ID_PATTERN),
        "prompt": _s("A text to speak, or a mapping {say | audio, voice, language, rate}.", oneOf=[
            {"type": "string", "minLength": 1, "description": "Text to speak; `{variable}` placeholders."},
            {"$ref": "#/$defs/prompt_object"},
        ]),
        "prompt_object": {"type": "object", "description": "A prompt: `say` (text) or `audio` (WAV file).",
                          "properties": {"say": _SAY, "audio": _AUDIO, **_VOICE},
                          "additionalProperties": False, "oneOf": _SAY_OR_AUDIO},
        "variable": _s("string, number or boolean, or {type, default, sensitive}.", oneOf=[
            {"enum": ["string", "number", "boolean"]},
            {"type": "object", "additionalProperties": False, "properties": {
                "type": _s("string (default), number or boolean.", enum=["string", "number", "boolean"]),
                "default": _s("Value before anything sets it (default: none).",
                              type=["string", "number", "boolean", "null"]),
                "sensitive": _s("Mask it in logs, events and the API (default false).", type="boolean"),
            }},
        ]),
        "schedule": {"type": "object", "description": "Opening hours, used as open('name') in a branch rule.",
                     "additionalProperties": False, "required": ["timezone", "weekly"], "properties": {
                         "timezone": _s("IANA time zone, e.g. Europe/London.", type="string", minLength=1),
                         "weekly": _s("Day(s) -> opening times: keys mon..sun, ranges (mon-fri), lists (sat,sun); "
                                      "values \"09:00-17:00\", several comma-separated, \"closed\" or \"24h\". "
                                      "Days not given are closed.", type="object",
                                      propertyNames={"pattern": DAY_KEY_PATTERN},
                                      additionalProperties={"oneOf": [
                                          {"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
                         "holidays": _s("Dates closed all day, YYYY-MM-DD.", type="array", items={
                             "type": "string", "pattern": DATE_PATTERN}),
                     }},
        **{f"{kind}_node": schema for kind, schema in nodes.items()},
        "node": {"type": "object", "description": "A node; its `type` decides which keys it takes.",
                 "required": ["type"],
                 "properties": {"type": _s("The kind of node.", enum=list(NODE_TYPES))},
                 "oneOf": [{"$ref": f"#/$defs/{kind}_node"} for kind in NODE_TYPES]},
    }


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "callcenter IVR flow",
        "description": "One IVR flow: a named graph of nodes, starting at `start`.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "start", "nodes"],
        "properties": {
            "name": _s("The flow's name (subflow nodes refer to it).", type="string", pattern=ID_PATTERN),
            "description": _s("Free text for operators.", type="string"),
            "start": _target("The first node of a call."),
            "language": _s("Default prompt and recognizer language (default \"en\").", type="string",
                           pattern=LANGUAGE_PATTERN),
            "voice": _s("Default espeak-ng voice (default: by language).", type="string", minLength=1),
            "on_error": _target("Where a call goes after an internal error, after an apology (default: hang up)."),
            "variables": _s("Declared variables: name -> type or {type, default, sensitive}. Built-ins "
                            "(caller_number, caller_name, dialled_number, call_id, language, last_input) need "
                            "no declaration.", type="object", propertyNames={"pattern": NAME_PATTERN},
                            additionalProperties={"$ref": "#/$defs/variable"}),
            "hours": _s("Business hours by name: {timezone, weekly, holidays}.", type="object",
                        propertyNames={"pattern": ID_PATTERN}, additionalProperties={"$ref": "#/$defs/schedule"}),
            "nodes": _s("Node id -> node.", type="object", minProperties=1, propertyNames={"pattern": ID_PATTERN},
                        additionalProperties={"$ref": "#/$defs/node"}),
        },
        "$defs": _defs(),
    }


def flow_schema() -> dict[str, Any]:
    """The JSON Schema of a flow file (a fresh copy: callers may change it)."""
    return copy.deepcopy(_schema())


# -- structural checking -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Problem:
    path: Path                           # into the data; the last item may be a key that is at fault
    message: str
    at: Literal["key", "value"] = "value"


@lru_cache(maxsize=1)
def _validators() -> tuple[Draft202012Validator, dict[str, Draft202012Validator]]:
    full = _schema()
    top = dict(full)
    top["properties"] = dict(full["properties"])
    top["properties"]["nodes"] = dict(full["properties"]["nodes"], additionalProperties={"type": "object"})
    per_type = {kind: Draft202012Validator({"$id": SCHEMA_ID, "$ref": f"#/$defs/{kind}_node", "$defs": full["$defs"]})
                for kind in NODE_TYPES}
    return Draft202012Validator(top), per_type


def structure_problems(data: Any) -> list[Problem]:
    """Everything structurally wrong with ``data`` (the whole flow), as short messages with paths."""
    top, per_type = _validators()
    problems = [p for e in top.iter_errors(data) for p in _translate(e, ())]
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if isinstance(nodes, dict):
        for node_id, node in nodes.items():
            if isinstance(node, dict):
                problems += _node_problems(("nodes", node_id), node, per_type)
    return problems


def _node_problems(path: Path, node: dict[str, Any], per_type: dict[str, Draft202012Validator]) -> list[Problem]:
    kind = node.get("type")
    if "type" not in node:
        return [Problem(path, f"node {path[-1]!r} needs a `type`: one of {', '.join(NODE_TYPES)}", "key")]
    if not isinstance(kind, str) or kind not in per_type:
        return [Problem(path + ("type",), f"unknown node type {kind!r}{_suggest(str(kind), NODE_TYPES)}; "
                        f"types are {', '.join(NODE_TYPES)}")]
    return [p for e in per_type[kind].iter_errors(node) for p in _translate(e, path, kind)]


def _suggest(word: str, choices: Any) -> str:
    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


_HINT = {"say": "put the text under `prompt`", "audio": "put the file under `prompt: {audio: ...}`",
         "prompt": "a play node takes `say` or `audio` directly"}


def _name(path: Path) -> str:
    return "`" + ".".join(str(p) for p in path) + "`" if path else "the flow"


def _kind_word(schema_type: Any) -> str:
    words: dict[str, str] = {"string": "text", "integer": "a whole number", "number": "a number",
                             "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "null"}
    types = schema_type if isinstance(schema_type, list) else [schema_type]
    return " or ".join(words.get(str(t), str(t)) for t in types)


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _any(value: object) -> Any:
    return value


def _schema_of(error: ValidationError) -> dict[str, Any]:
    return dict(error.schema) if isinstance(error.schema, dict) else {}


def _translate(error: ValidationError, base: Path, kind: str | None = None) -> Iterator[Problem]:
    path: Path = base + tuple(error.absolute_path)
    owner = f"{kind} node {base[-1]!r}" if kind else "the flow"
    where = _name(path[len(base):]) if path[len(base):] else owner
    v, inst, sv = error.validator, error.instance, _any(error.validator_value)
    schema = _schema_of(error)
    if list(error.relative_schema_path)[-2:-1] == ["propertyNames"]:
        yield _key_problem(path, where, inst, schema)
    elif v == "additionalProperties" and isinstance(inst, dict):
        allowed = list(schema.get("properties", {}))
        for key in inst:
            if key in allowed:
                continue
            hint = _suggest(str(key), allowed)
            if not hint and kind and key in _HINT and (kind == "play") == (key == "prompt"):
                hint = f" ({_HINT[key]})"
            yield Problem(path + (key,), f"unknown key {key!r} in {where}"
                          f"{hint}; allowed: {', '.join(allowed)}", "key")
    elif v == "required" and isinstance(inst, dict):
        for key in sv:
            if key not in inst:
                desc = schema.get("properties", {}).get(key, {}).get("description", "")
                yield Problem(path, f"{where} needs `{key}`"
                              + (f": {desc}" if desc else ""), "key")
    elif v in ("oneOf", "anyOf"):
        yield from _translate_choice(error, path, where, base, kind)
    elif v == "type":
        yield Problem(path, f"{where} must be {_kind_word(sv)}, not {_got(inst)}")
    elif v in ("enum", "const"):
        options = sv if v == "enum" else [sv]
        yield Problem(path, f"{where} must be {' or '.join(map(str, options))}, not {_got(inst)}"
                      + _suggest(str(inst), [str(o) for o in options]))
    elif v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        rel = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
               "exclusiveMaximum": "less than"}[str(v)]
        yield Problem(path, f"{where} must be {rel} {sv}, not {inst!r}")
    elif v == "minProperties":
        yield Problem(path, f"{where} is empty: give at least {sv} entr{'y' if sv == 1 else 'ies'}")
    elif v == "minItems":
        yield Problem(path, f"{where} is empty: give at least {sv} item{'' if sv == 1 else 's'}")
    elif v == "minLength":
        yield Problem(path, f"{where} must not be empty")
    elif v == "pattern":
        what = _PATTERN_WORDS.get(str(sv), f"in the expected form (pattern {sv})")
        yield Problem(path, f"{where}: {inst!r} is not {what}")
    elif v == "uniqueItems":
        yield Problem(path, f"{where} lists an item twice")
    else:
        yield Problem(path, f"{where}: {error.message}")


_PATTERN_WORDS = {
    ID_PATTERN: "a node id (letters, digits, _ . -)",
    NAME_PATTERN: "a variable name (letters, digits and _, not starting with a digit)",
    KEY_PATTERN: "a key: 0-9, '*' or '#'",
    LANGUAGE_PATTERN: "a language code such as en, zh or en-gb",
    DATE_PATTERN: "a date (write YYYY-MM-DD)",
    DOTTED_PATTERN: "a dotted path into the JSON reply, such as account.balance",
}


def _key_problem(path: Path, where: str, key: Any, rule: dict[str, Any]) -> Problem:
    pattern = rule.get("pattern")
    if pattern == KEY_PATTERN:
        msg = f"{key!r} is not a key: keys are 0-9, '*' or '#' (one each)"
    elif pattern == DAY_KEY_PATTERN:
        msg = f"{key!r} is not a day or days: use mon..sun, a range like mon-fri or a list like sat,sun"
    elif pattern == NAME_PATTERN:
        msg = f"{key!r} is not a variable name (letters, digits and _, not starting with a digit)"
    elif pattern == ID_PATTERN:
        msg = f"{key!r} is not a valid id (letters, digits, _ . -)"
    elif rule.get("minLength"):
        msg = "an empty key"
    else:
        msg = f"{key!r} is not allowed as a key here"
    return Problem(path + (str(key),), f"{where}: {msg}", "key")


def _wrong_kind(error: ValidationError) -> bool:
    """Whether ``error`` says a oneOf branch is for another kind of value (not a wrong value of its kind)."""
    if error.relative_path:
        return False
    if error.validator == "type":
        return True
    if error.validator == "enum":
        allowed: Any = error.validator_value
        return not any(type(a) is type(error.instance) for a in allowed)
    return False


def _translate_choice(error: ValidationError, path: Path, where: str, base: Path,
                      kind: str | None) -> Iterator[Problem]:
    branches: list[dict[str, Any]] = _any(error.validator_value)
    schema = _schema_of(error)
    if all(set(b) == {"required"} for b in branches):
        keys = [b["required"][0] for b in branches]
        present = [k for k in keys if isinstance(error.instance, dict) and k in error.instance]
        if present:
            yield Problem(path + (present[1],), f"{where}: give only one of {', '.join(f'`{k}`' for k in keys)}",
                          "key")
        else:
            yield Problem(path, f"{where} needs {' or '.join(f'`{k}`' for k in keys)}", "key")
        return
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    fitting = [errs for errs in by_branch.values() if not any(_wrong_kind(e) for e in errs)]
    if len(by_branch) == len(branches) and len(fitting) == 1:
        for sub in fitting[0]:
            yield from _translate(sub, base, kind)
        return
    expected = schema.get("description") or "not a valid value"
    yield Problem(path, f"{where}: {expected} (got {_got(error.instance)})")
