"""ivr/template.py: placeholders, escapes, value formatting, masking and error columns."""

from __future__ import annotations

import pytest

from ivr.exceptions import IvrError, TemplateError
from ivr.template import format_value, names, render


def test_names_of_a_template() -> None:
    assert names("Your balance is {balance}, {caller_name}. {balance} again") == {"balance", "caller_name"}
    assert names("no placeholders") == set()
    assert names("{{not_a_name}} and {_x1}") == {"_x1"}
    assert all(type(n) is str for n in names("{a}{b}"))


def test_render_fills_placeholders_and_escapes() -> None:
    assert render("Hello {name}!", {"name": "Ann"}) == "Hello Ann!"
    assert render("{{literal}} {x}}}", {"x": 1}) == "{literal} 1}"
    assert render("{a}{b}", {"a": "x", "b": "y"}) == "xy"
    assert render("", {}) == ""


@pytest.mark.parametrize("value, text", [
    (12.0, "12"), (12.5, "12.5"), (0.1, "0.1"), (-3.0, "-3"), (7, "7"), (True, "yes"), (False, "no"),
    (None, ""), ("text", "text"), ([1, "a"], '[1, "a"]'), ({"k": "é"}, '{"k": "é"}'), (float("inf"), "inf"),
])
def test_values_render_naturally(value: object, text: str) -> None:
    assert format_value(value) == text
    assert render("[{v}]", {"v": value}) == f"[{text}]"


def test_missing_variable_renders_empty() -> None:
    assert render("a{missing}b", {}) == "ab"


def test_masked_variables_render_as_stars() -> None:
    values = {"pin": "1234", "name": "Bo"}
    assert render("{name} entered {pin}", values, masked={"pin"}) == "Bo entered ****"
    assert render("{name} entered {pin}", values, masked=("pin", "name")) == "**** entered ****"
    assert render("{pin}", {}, masked={"pin"}) == "****"


@pytest.mark.parametrize("text, column, words", [
    ("Hello {name", 7, "never closed"),
    ("abc }", 5, "single '}'"),
    ("x {} y", 3, "empty placeholder"),
    ("x { name }", 3, "not a variable name"),
    ("{1abc}", 1, "not a variable name"),
    ("{a{b}", 1, "never closed"),
    ("{a.b}", 1, "not a variable name"),
])
def test_malformed_templates_raise_with_column(text: str, column: int, words: str) -> None:
    with pytest.raises(TemplateError) as err:
        names(text)
    assert err.value.column == column
    assert words in err.value.message
    assert f"(column {column})" in str(err.value)
    assert isinstance(err.value, IvrError)
    with pytest.raises(TemplateError):
        render(text, {})
