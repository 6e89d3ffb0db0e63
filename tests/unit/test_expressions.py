"""ivr/expressions.py: parsing, names and schedules, evaluation semantics, and error columns."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

from ivr.exceptions import ExpressionError, IvrError
from ivr.expressions import compile_expr


def ev(text: str, values: dict[str, Any] | None = None, open_: Collection[str] = ()) -> bool:
    return compile_expr(text).evaluate(values or {}, lambda name: name in open_)


def test_names_and_schedules() -> None:
    e = compile_expr("balance > 100 and open('office') or not (choice in ['1', '2']) and open(\"desk\")")
    assert e.names == frozenset({"balance", "choice"})
    assert e.schedules == frozenset({"office", "desk"})
    assert compile_expr("true").names == frozenset()


@pytest.mark.parametrize("text, values, expected", [
    ("1 == 1", {}, True),
    ("'a' == \"a\"", {}, True),
    ("x == 'abc'", {"x": "abc"}, True),
    ("x != 'abc'", {"x": "abd"}, True),
    ("choice == 1", {"choice": "1"}, True),        # collected digits compare as numbers
    ("choice == 1", {"choice": "01"}, True),
    ("choice == '1'", {"choice": "01"}, False),     # two strings compare as text
    ("n > 9", {"n": "10"}, True),
    ("n > '9'", {"n": "10"}, True),                 # numeric strings order numerically
    ("n < 5", {"n": "abc"}, False),                 # not a number: no order with a number
    ("a < b", {"a": "apple", "b": "banana"}, True),
    ("balance >= 100.5", {"balance": 100.5}, True),
    ("balance <= -1", {"balance": -2}, True),
    ("x > -1.5", {"x": "-1"}, True),
    ("vip == true", {"vip": True}, True),
    ("vip == true", {"vip": "yes"}, True),
    ("vip == false", {"vip": True}, False),
    ("vip == 1", {"vip": True}, False),
    ("vip", {"vip": True}, True),
    ("vip", {"vip": False}, False),
    ("name", {"name": ""}, False),
    ("name", {"name": "x"}, True),
    ("count", {"count": 0}, False),
    ("choice in ['1', '2']", {"choice": "2"}, True),
    ("choice in [1, 2]", {"choice": "2"}, True),
    ("choice in ['1', '2']", {"choice": "3"}, False),
    ("choice not in ['1', '2']", {"choice": "3"}, True),
    ("'lo' in greeting", {"greeting": "hello"}, True),
    ("code in items", {"code": "b", "items": ["a", "b"]}, True),
    ("caller_number startswith '+44'", {"caller_number": "+442071234567"}, True),
    ("caller_number endswith '67'", {"caller_number": "+442071234567"}, True),
    ("caller_number startswith '+1'", {"caller_number": "+442071234567"}, False),
    ("account matches '[0-9]{8}'", {"account": "12345678"}, True),
    ("account matches '[0-9]{8}'", {"account": "123456789"}, False),   # whole value
    ("account matches pat", {"account": "ab", "pat": "a."}, True),
    ("account matches pat", {"account": "ab", "pat": "("}, False),      # bad runtime regex: false
    ("not x == 1", {"x": 2}, True),
    ("not not x", {"x": "y"}, True),
    ("a == 1 or b == 2 and c == 3", {"a": 0, "b": 2, "c": 3}, True),
    ("(a == 1 or b == 2) and c == 3", {"a": 1, "b": 0, "c": 4}, False),
    ("a == 1 and b == 2 or c == 3", {"a": 0, "b": 0, "c": 3}, True),
    ("x == 'it\\'s'", {"x": "it's"}, True),
])
def test_evaluation(text: str, values: dict[str, Any], expected: bool) -> None:
    assert ev(text, values) is expected


@pytest.mark.parametrize("text", [
    "missing == 1", "missing != 1", "missing < 1", "missing >= 1", "missing in ['a']", "missing not in ['a']",
    "missing startswith 'a'", "missing matches '.*'", "missing", "missing == missing", "1 == missing",
])
def test_a_missing_variable_compares_false_and_never_raises(text: str) -> None:
    assert ev(text, {}) is False


def test_open_asks_the_schedule() -> None:
    assert ev("open('office')", open_={"office"}) is True
    assert ev("open('office')", open_={"desk"}) is False
    assert ev("not open('office')", open_=set()) is True
    assert compile_expr("open('office')").evaluate({}) is False     # no schedule answerer: closed
    asked: list[str] = []

    def is_open(name: str) -> bool:
        asked.append(name)
        return name == "a"

    assert compile_expr("open('a') or open('b')").evaluate({}, is_open) is True
    assert asked == ["a"]                                            # `or` short-circuits


def test_compile_is_cached_and_no_eval_is_possible() -> None:
    assert compile_expr("x == 1") is compile_expr("x == 1")
    for hostile in ("__import__('os')", "x.__class__", "x; y", "lambda: 1"):
        with pytest.raises(ExpressionError):
            compile_expr(hostile)


@pytest.mark.parametrize("text, column, words", [
    ("", 1, "empty"),
    ("a = 1", 3, "'=='"),
    ("a && b", 3, "'and'"),
    ("a || b", 3, "'or'"),
    ("!a", 1, "'not'"),
    ("a < b < c", 7, "chain"),
    ("open(office)", 6, "in quotes"),
    ("open('a'", 9, "')'"),
    ("foo(1)", 1, "unknown function"),
    ("x matches '('", 11, "bad regular expression"),
    ("x matches 5", 11, "in quotes"),
    ("'abc", 1, "never closed"),
    ("[1, 2] in x", 1, "list only goes after 'in'"),
    ("x == [1]", 6, "list only goes after 'in'"),
    ("x in [y]", 7, "literals only"),
    ("x in [1 2]", 9, "',' or ']'"),
    ("a and", 6, "expected a value"),
    ("(a == 1", 8, "')'"),
    ("a == 1)", 7, "unexpected"),
    ("a @ b", 3, "unexpected '@'"),
    ("x ==", 5, "expected a value"),
])
def test_errors_carry_the_column(text: str, column: int, words: str) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_expr(text)
    assert err.value.column == column, str(err.value)
    assert words in err.value.message
    assert isinstance(err.value, IvrError)
