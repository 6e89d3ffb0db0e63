"""Branch conditions: a small, safe expression language (parsed here, never ``eval``-ed).

    balance > 100 and open('office')
    caller_number startswith '+44' or choice in ['1', '2']
    not (account matches '[0-9]{8}')

- literals: ``'text'`` or ``"text"`` (backslash escapes the quote or a backslash), numbers (``12``,
  ``-3.5``), ``true``, ``false``; lists ``['a', 'b']`` only after ``in``;
- variable names (letters, digits, ``_``); a variable the call does not have is *missing*;
- comparisons ``== != < <= > >=``; ``x in [..]`` (membership) or ``x in 'text'`` (substring);
  ``startswith``, ``endswith``; ``matches 'regex'`` (the whole value must match, like a collect
  node's ``pattern``); ``and``, ``or``, ``not``, parentheses; ``open('schedule')`` asks the flow's
  business hours. One comparison per operand pair: write ``a < b and b < c``, not ``a < b < c``.

Meaning, chosen so that a caller's typed digits behave: when either side is a number and the other is
a numeric string, they compare as numbers (``choice == 1`` holds for "1" and "01"); two numeric strings
order numerically (``"10" > "9"``); other strings compare as text. Booleans equal ``true``/``false``
and the strings "true"/"false"/"yes"/"no". A missing variable (None) makes every comparison false,
``!=`` included (like SQL's NULL); test for it with ``not name``. A bare value is true unless it is
missing, false, 0 or "". Evaluation never raises.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .exceptions import ExpressionError
from .template import format_value

IsOpen = Callable[[str], bool]

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "startswith", "endswith", "matches", "open"})
_COMPARE = ("==", "!=", "<=", ">=", "<", ">")
_TEXT_OPS = ("startswith", "endswith", "matches")
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|-)
  | (?P<str>['"])
""", re.VERBOSE)
_HINTS = {"=": "use '==' to compare", "&": "use 'and'", "|": "use 'or'", "!": "use 'not' (or '!=')"}
_NUMERIC = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*\Z")
_TRUE, _FALSE = frozenset({"true", "yes"}), frozenset({"false", "no"})


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str            # "num" "name" "kw" "op" "str" "end"
    value: Any
    col: int             # 1-based


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            hint = _HINTS.get(ch)
            raise ExpressionError(f"unexpected {ch!r}" + (f": {hint}" if hint else ""), i + 1)
        kind = m.lastgroup or ""
        if kind == "str":
            quote, j, chars = m.group(), m.end(), []
            while True:
                if j >= len(text):
                    raise ExpressionError(f"text starting with {quote} is never closed", i + 1)
                ch = text[j]
                if ch == "\\" and j + 1 < len(text):
                    chars.append(text[j + 1])
                    j += 2
                    continue
                if ch == quote:
                    break
                chars.append(ch)
                j += 1
            out.append(_Tok("str", "".join(chars), i + 1))
            i = j + 1
            continue
        if kind == "num":
            raw = m.group()
            out.append(_Tok("num", float(raw) if "." in raw else int(raw), i + 1))
        elif kind == "name":
            word = m.group()
            out.append(_Tok("kw" if word in KEYWORDS else "name", word, i + 1))
        elif kind == "op":
            out.append(_Tok("op", m.group(), i + 1))
        i = m.end()
    out.append(_Tok("end", None, len(text) + 1))
    return out


# -- the tree ---------------------------------------------------------------------------------------

class _Node:
    __slots__ = ()

    def eval(self, values: Mapping[str, Any], is_open: IsOpen | None) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Lit(_Node):
    value: Any

    def eval(self, values: Mapping[str, Any], is_open: IsOpen | None) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class _List(_Node):
    items: tuple[Any, ...]

    def eval(self, values: Mapping[str, Any], is_open: IsOpen | None) -> Any:
        return list(self.items)


@dataclass(frozen=True, slots=True)
class _Var(_Node):
    name: str

    def eval(self, values: Mapping[str, Any], is_open: IsOpen | None) -> Any:
        return values.get(self.name)


@dataclass(frozen=True, slots=True)
class _Open(_Node):
    schedule: str

    def eval(self, values: Mapping[str, Any], is_open: IsOpen | None) -> Any:
        return bool(is_open(self.schedule)) if is_open is not None else False


@dataclass(frozen=True, slots=True)
class _Not(_Node):
    arg: _Node

    def eval(self, values: Mapping[str, Any], is_open: IsOpen | None) -> Any:
        return not truth(self.arg.eval(values, is_open))


@dataclass(frozen=True, slots=True)
class _Logic(_Node):
    op: str                     # "and" | "or"
    args: tuple[_Node, ...]

    def eval(self, values: Mapping[str, Any], is_open: IsOpen | None) -> Any:
        if self.op == "and":
            return all(truth(a.eval(values, is_open)) for a in self.args)
        return any(truth(a.eval(values, is_open)) for a in self.args)


@dataclass(frozen=True, slots=True)
class _Compare(_Node):
    op: str
    left: _Node
    right: _Node
    regex: re.Pattern[str] | None = None      # a literal `matches` pattern, compiled once

    def eval(self, values: Mapping[str, Any], is_open: IsOpen | None) -> Any:
        a, b = self.left.eval(values, is_open), self.right.eval(values, is_open)
        if a is None or b is None:
            return False
        op = self.op
        if op == "==":
            return equal(a, b)
        if op == "!=":
            return not equal(a, b)
        if op in ("<", "<=", ">", ">="):
            return _order(op, a, b)
        if op == "in":
            return _contains(b, a)
        if op == "not in":
            return not _contains(b, a)
        if op == "startswith":
            return format_value(a).startswith(format_value(b))
        if op == "endswith":
            return format_value(a).endswith(format_value(b))
        pattern = self.regex if self.regex is not None else _regex(format_value(b))
        return pattern is not None and pattern.fullmatch(format_value(a)) is not None


def truth(value: Any) -> bool:
    """A bare value as a condition: false if missing, false, 0 or ""."""
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    return bool(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMERIC.match(value):
        return float(value)
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else None
    return None


def equal(a: Any, b: Any) -> bool:
    """``a == b`` in the language's meaning (see the module docstring)."""
    if isinstance(a, bool) or isinstance(b, bool):
        x, y = _boolean(a), _boolean(b)
        return x is not None and x == y
    if isinstance(a, int | float) or isinstance(b, int | float):
        x2, y2 = _number(a), _number(b)
        return x2 is not None and x2 == y2
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return bool(a == b)


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _order(op: str, a: Any, b: Any) -> bool:
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return bool(_ORDER[op](x, y))
    if isinstance(a, str) and isinstance(b, str):
        return bool(_ORDER[op](a, b))
    return False


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, list | tuple):
        return any(equal(item, x) for x in container)
    if isinstance(container, str):
        return format_value(item) in container
    return False


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


# -- the parser -------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.names: set[str] = set()
        self.schedules: set[str] = set()

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, value: Any = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (value is None or tok.value == value)

    def expect(self, kind: str, value: str, what: str) -> _Tok:
        if not self.at(kind, value):
            raise ExpressionError(f"expected {what}, found {_describe(self.tok)}", self.tok.col)
        return self.take()

    def parse(self) -> _Node:
        if self.at("end"):
            raise ExpressionError("the condition is empty", 1)
        node = self.or_expr()
        if not self.at("end"):
            tok = self.tok
            hint = " (chain comparisons with 'and')" if tok.kind == "op" and tok.value in _COMPARE else ""
            raise ExpressionError(f"unexpected {_describe(tok)}{hint}", tok.col)
        return node

    def or_expr(self) -> _Node:
        args = [self.and_expr()]
        while self.at("kw", "or"):
            self.take()
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else _Logic("or", tuple(args))

    def and_expr(self) -> _Node:
        args = [self.not_expr()]
        while self.at("kw", "and"):
            self.take()
            args.append(self.not_expr())
        return args[0] if len(args) == 1 else _Logic("and", tuple(args))

    def not_expr(self) -> _Node:
        if self.at("kw", "not"):
            self.take()
            return _Not(self.not_expr())
        return self.comparison()

    def comparison(self) -> _Node:
        left = self.operand()
        tok = self.tok
        if tok.kind == "op" and tok.value in _COMPARE:
            op = self.take().value
        elif tok.kind == "kw" and tok.value in ("in", *_TEXT_OPS):
            op = self.take().value
        elif tok.kind == "kw" and tok.value == "not" and self.toks[self.i + 1].value == "in":
            self.i += 2
            op = "not in"
        else:
            if isinstance(left, _List):
                raise ExpressionError("a list only goes after 'in'", tok.col)
            return left
        if isinstance(left, _List):
            raise ExpressionError("a list only goes after 'in'", tok.col)
        right_tok = self.tok
        right = self.operand(allow_list=op in ("in", "not in"))
        regex = None
        if op == "matches" and isinstance(right, _Lit):
            if not isinstance(right.value, str):
                raise ExpressionError("'matches' needs a regular expression in quotes", right_tok.col)
            try:
                regex = re.compile(right.value)
            except re.error as exc:
                raise ExpressionError(f"bad regular expression {right.value!r}: {exc}", right_tok.col) from None
        return _Compare(op, left, right, regex)

    def operand(self, allow_list: bool = False) -> _Node:
        tok = self.take()
        if tok.kind in ("str", "num"):
            return _Lit(tok.value)
        if tok.kind == "op" and tok.value == "-" and self.at("num"):
            return _Lit(-self.take().value)
        if tok.kind == "kw" and tok.value in ("true", "false"):
            return _Lit(tok.value == "true")
        if tok.kind == "name":
            if self.at("op", "("):
                raise ExpressionError(f"unknown function {tok.value!r} (the only one is open('schedule'))", tok.col)
            self.names.add(tok.value)
            return _Var(tok.value)
        if tok.kind == "kw" and tok.value == "open":
            self.expect("op", "(", "'(' after open")
            arg = self.take()
            if arg.kind != "str":
                raise ExpressionError("open() takes a schedule name in quotes, e.g. open('office')", arg.col)
            self.expect("op", ")", "')' after the schedule name")
            self.schedules.add(arg.value)
            return _Open(arg.value)
        if tok.kind == "op" and tok.value == "(":
            inner = self.or_expr()
            self.expect("op", ")", "')'")
            return inner
        if tok.kind == "op" and tok.value == "[":
            if not allow_list:
                raise ExpressionError("a list only goes after 'in'", tok.col)
            return _List(self.list_items())
        raise ExpressionError(f"expected a value, found {_describe(tok)}", tok.col)

    def list_items(self) -> tuple[Any, ...]:
        items: list[Any] = []
        while not self.at("op", "]"):
            tok = self.take()
            if tok.kind == "op" and tok.value == "-" and self.at("num"):
                items.append(-self.take().value)
            elif tok.kind in ("str", "num"):
                items.append(tok.value)
            elif tok.kind == "kw" and tok.value in ("true", "false"):
                items.append(tok.value == "true")
            else:
                raise ExpressionError(f"a list holds literals only, found {_describe(tok)}", tok.col)
            if self.at("op", ","):
                self.take()
            elif not self.at("op", "]"):
                raise ExpressionError(f"expected ',' or ']', found {_describe(self.tok)}", self.tok.col)
        self.take()
        return tuple(items)


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "the end of the condition"
    if tok.kind == "str":
        return f"text {tok.value!r}"
    return repr(tok.value) if tok.kind != "num" else f"number {tok.value}"


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled condition. ``names``: the variables it reads; ``schedules``: the ``open()`` names."""

    text: str
    names: frozenset[str]
    schedules: frozenset[str]
    _root: _Node = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, Any], is_open: IsOpen | None = None) -> bool:
        """Whether the condition holds; ``is_open(name)`` answers ``open('name')`` (None: closed)."""
        return truth(self._root.eval(values, is_open))


@lru_cache(maxsize=1024)
def compile_expr(text: str) -> Expr:
    """Parse ``text``; raises ExpressionError(message, column) if it is not a valid condition."""
    parser = _Parser(text)
    root = parser.parse()
    return Expr(text, frozenset(parser.names), frozenset(parser.schedules), root)

