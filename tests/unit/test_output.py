"""``output=`` specs (``_output``): each kind of spec, what the model is told, what validation says back,
and what records keep."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from rlm_kernel._output import (
    MESSAGE_CHARS,
    Accepted,
    Checked,
    OutputSpec,
    Rejected,
    output_spec,
    spec_from_record,
)
from rlm_kernel.errors import ConfigError


class Item(BaseModel):
    name: str
    price: float


class Invoice(BaseModel):
    customer: str
    total: float = Field(ge=0)
    items: list[Item] = []


class Person(TypedDict):
    name: str
    year: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


INVOICE_SCHEMA: dict[str, Any] = {
    "title": "Invoice",
    "type": "object",
    "properties": {
        "customer": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "title": {"type": "string"},  # a property called "title" stays in the prompt's schema
    },
    "required": ["customer", "total"],
}


def accepted(checked: Checked) -> Any:
    assert isinstance(checked, Accepted), checked
    return checked.value


def rejected(checked: Checked) -> str:
    assert isinstance(checked, Rejected), checked
    return checked.message


# --- each kind of spec ---------------------------------------------------------------------------


def test_pydantic_model_takes_a_dict_an_instance_and_json_text() -> None:
    spec = output_spec(Invoice)
    assert (spec.kind, spec.name) == ("model", "Invoice")
    from_dict = accepted(spec.validate({"customer": "ACME", "total": 3, "items": []}))
    assert isinstance(from_dict, Invoice)
    assert from_dict.total == 3.0
    same = Invoice(customer="ACME", total=3)
    assert accepted(spec.validate(same)) == same
    from_text = accepted(spec.validate('{"customer": "ACME", "total": 2.5}'))
    assert from_text == Invoice(customer="ACME", total=2.5)
    # Models fence JSON even when told not to.
    fenced = '```json\n{"customer": "B", "total": 1}\n```'
    assert accepted(spec.validate(fenced)).customer == "B"


def test_pydantic_model_failure_is_the_validators_message_without_its_urls() -> None:
    message = rejected(output_spec(Invoice).validate({"customer": "ACME", "total": -1}))
    assert message.startswith("1 validation error for Invoice\ntotal\n")
    assert "Input should be greater than or equal to 0" in message
    assert "errors.pydantic.dev" not in message
    nested = rejected(
        output_spec(Invoice).validate({"customer": "A", "total": 1, "items": [{"name": "x"}]})
    )
    assert "items.0.price\n  Field required" in nested


def test_json_text_that_fails_reports_the_fields_and_prose_says_it_is_not_json() -> None:
    spec = output_spec(Invoice)
    bad_json = rejected(spec.validate('{"customer": "A", "total": "lots"}'))
    assert "total\n  Input should be a valid number" in bad_json
    assert "not JSON" not in bad_json
    prose = rejected(spec.validate("The total is 12 dollars."))
    assert "Input should be a valid dictionary or instance of Invoice" in prose
    assert "The answer was text, and not JSON either" in prose


def test_typeddict() -> None:
    spec = output_spec(Person)
    assert (spec.kind, spec.name) == ("typeddict", "Person")
    assert accepted(spec.validate({"name": "Ada", "year": "1815"})) == {"name": "Ada", "year": 1815}
    assert "year\n  Field required" in rejected(spec.validate({"name": "Ada"}))
    assert spec.schema["required"] == ["name", "year"]


def test_plain_types() -> None:
    assert accepted(output_spec(int).validate("42")) == 42
    assert accepted(output_spec(int).validate(7)) == 7
    assert "Input should be a valid integer" in rejected(output_spec(int).validate("many"))
    words = output_spec(list[str])
    assert (words.kind, words.name) == ("type", "list[str]")
    assert accepted(words.validate(["a", "b"])) == ["a", "b"]
    assert accepted(words.validate('["a", "b"]')) == ["a", "b"]
    assert accepted(words.validate(("a", "b"))) == ["a", "b"]
    two = rejected(words.validate([1, "b", 2]))
    assert two.startswith("2 validation errors for list[str]\n0\n")
    scores = output_spec(dict[str, float])
    assert scores.name == "dict[str, float]"
    assert accepted(scores.validate({"a": 1})) == {"a": 1.0}
    assert "Input should be a valid number" in rejected(scores.validate({"a": "x"}))
    choice = output_spec(Literal["yes", "no"])
    assert choice.name == "Literal['yes', 'no']"
    assert "Input should be 'yes' or 'no'" in rejected(choice.validate("maybe"))
    assert accepted(output_spec(str).validate("plain text")) == "plain text"
    assert accepted(output_spec(Point).validate({"x": 1, "y": "2"})) == Point(1, 2)


def test_json_schema_dict() -> None:
    spec = output_spec(INVOICE_SCHEMA)
    assert (spec.kind, spec.name) == ("schema", "Invoice")
    assert accepted(spec.validate({"customer": "A", "total": 1})) == {"customer": "A", "total": 1}
    assert accepted(spec.validate('{"customer": "A", "total": 1}')) == {"customer": "A", "total": 1}
    message = rejected(spec.validate({"customer": 5, "total": -2}))
    assert message.splitlines() == [
        "2 validation errors for Invoice",
        "at $.customer: 5 is not of type 'string'",
        "at $.total: -2 is less than the minimum of 0",
    ]
    missing = rejected(spec.validate({"customer": "A"}))
    assert "at the answer: 'total' is a required property" in missing
    assert "not JSON either" in rejected(spec.validate("no idea"))
    # Python values that have a JSON form are judged by it: a tuple is an array.
    pair = output_spec({"type": "array", "items": {"type": "integer"}})
    assert pair.name == "the JSON schema"
    assert accepted(pair.validate((1, 2))) == [1, 2]
    assert "has no JSON form" in rejected(pair.validate(object()))


def test_a_string_schema_keeps_text_that_happens_to_be_json() -> None:
    assert accepted(output_spec({"type": "string"}).validate("[1, 2]")) == "[1, 2]"
    assert accepted(output_spec(str).validate("[1, 2]")) == "[1, 2]"


def test_unusable_specs_are_config_errors_that_say_what_is_accepted() -> None:
    for bad in ("Invoice", None, b"{}"):
        with pytest.raises(ConfigError, match="is not a type or a JSON schema") as caught:
            output_spec(bad)
        assert "pydantic model class" in caught.value.fix
    with pytest.raises(ConfigError, match="cannot be validated"):
        output_spec(object())
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        output_spec({"type": "no-such-type"})
    assert output_spec(output_spec(int)).name == "int"


# --- SUBMIT's fields -----------------------------------------------------------------------------


def test_submit_fields_are_the_object_or_the_one_fields_value() -> None:
    person = output_spec(Person)
    assert accepted(person.validate(None, fields={"name": "Ada", "year": 1815}))["year"] == 1815
    # DSPy's SUBMIT(answer=...) for a plain type: the one field is the answer.
    assert accepted(output_spec(int).validate(None, fields={"answer": "3"})) == 3
    # Several fields for a plain type: the dict is judged, and the message says why it fails.
    assert "valid integer" in rejected(output_spec(int).validate(None, fields={"a": 1, "b": 2}))

    # A one-field object is still the object.
    class One(BaseModel):
        name: str

    assert accepted(output_spec(One).validate(None, fields={"name": "x"})) == One(name="x")


# --- what the model is told ------------------------------------------------------------------------


def test_prompt_text_shows_the_compact_schema_and_every_way_to_submit() -> None:
    text = output_spec(Invoice).prompt_text()
    assert "The final answer must be a value of type Invoice, matching this JSON schema:" in text
    schema_line = text.splitlines()[2]
    schema = json.loads(schema_line)
    assert " " not in schema_line.replace("a value", "")
    assert "title" not in schema["properties"]["customer"]
    assert "title" not in schema["$defs"]["Item"]
    for way in ("FINAL(value)", "SUBMIT(value)", "SUBMIT(field=..., ...)", 'FINAL_VAR("name")'):
        assert way in text
    assert 'answer["content"] = value' in text
    # A plain type has no fields to submit by name.
    assert "SUBMIT(field=" not in output_spec(list[str]).prompt_text()
    untitled = output_spec({"type": "array"}).prompt_text()
    assert "must be a JSON value, matching" in untitled


def test_a_property_named_title_stays_in_the_prompt() -> None:
    shown = json.loads(output_spec(INVOICE_SCHEMA).schema_text())
    assert shown["properties"]["title"] == {"type": "string"}
    assert "title" not in shown


# --- long messages ---------------------------------------------------------------------------------


def test_a_long_validator_message_is_trimmed_and_says_so() -> None:
    message = rejected(output_spec(list[int]).validate(["x"] * 500))
    assert len(message) <= MESSAGE_CHARS + 200
    assert message.startswith("500 validation errors for list[int]")
    assert message.rstrip().endswith("more line(s) of the validator's message cut]")
    huge = "y" * 100_000
    one = rejected(output_spec({"type": "integer"}).validate([huge]))
    assert len(one) < 600


# --- records, text, replay -------------------------------------------------------------------------


def test_text_and_jsonable() -> None:
    spec = output_spec(Invoice)
    value = accepted(spec.validate({"customer": "A", "total": 2}))
    assert spec.to_jsonable(value) == {"customer": "A", "total": 2.0, "items": []}
    assert json.loads(spec.text(value)) == {"customer": "A", "total": 2.0, "items": []}
    assert output_spec(str).text("plain") == "plain"
    assert output_spec(int).text(42) == "42"
    assert output_spec(list[str]).text(["é"]) == '["é"]'


def test_describe_and_rebuild_from_the_record() -> None:
    described = output_spec(Invoice).describe()
    assert described["kind"] == "model"
    assert described["name"] == "Invoice"
    round_tripped = json.loads(json.dumps(described))
    again = spec_from_record(round_tripped)
    assert isinstance(again, OutputSpec)
    assert (again.kind, again.name) == ("model", "Invoice")
    # The rebuilt spec validates the same JSON, by the schema (with its $defs), as plain data.
    assert accepted(again.validate('{"customer": "A", "total": 1, "items": []}')) == {
        "customer": "A",
        "total": 1,
        "items": [],
    }
    assert "price" in rejected(again.validate({"customer": "A", "total": 1, "items": [{}]}))
    assert again.text({"customer": "A", "total": 1}) == '{"customer": "A", "total": 1}'


# --- structured output for sub-calls ----------------------------------------------------------------


def test_response_format_for_an_object_and_a_wrapped_plain_type() -> None:
    fmt = output_spec(Invoice).response_format()
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Invoice"
    assert fmt["json_schema"]["schema"] == Invoice.model_json_schema()
    words = output_spec(list[Item]).response_format()["json_schema"]
    assert words["name"] == "list_Item"
    assert words["schema"]["required"] == ["value"]
    assert words["schema"]["properties"]["value"]["items"] == {"$ref": "#/$defs/Item"}
    assert "Item" in words["schema"]["$defs"]


def test_parse_structured_unwraps_value() -> None:
    words = output_spec(list[str])
    assert accepted(words.parse_structured('{"value": ["a"]}')) == ["a"]
    assert accepted(words.parse_structured('["a"]')) == ["a"]
    assert "valid list" in rejected(words.parse_structured('{"value": 3}'))
    invoice = output_spec(Invoice)
    assert accepted(invoice.parse_structured('{"customer": "A", "total": 0}')).total == 0
