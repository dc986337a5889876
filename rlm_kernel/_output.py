"""Typed answers: an ``output=`` spec, what the model is told about it, and how a submission is checked.

A spec is a pydantic model class, a ``TypedDict``, a JSON schema (a ``dict``), or any other type
annotation pydantic can validate (``int``, ``list[str]``, ``dict[str, float]``, a ``Literal``, a
dataclass). ``output_spec(spec)`` turns it into one ``OutputSpec`` that

- tells the model the shape (``prompt_text``: the JSON schema, compact, and how to submit it),
- validates a candidate (``validate``): a Python object the code submitted, or a text that is JSON,
  through pydantic's ``TypeAdapter``, or for a JSON schema through the ``jsonschema`` package; a failure
  is a ``Rejected`` whose message is the validator's own, trimmed, fit to be the model's next
  observation,
- writes the validated value for records (``to_jsonable``) and as ``result.answer`` (``text``: a string
  answer as itself, anything else as JSON),
- describes itself for the session record (``describe``: kind, name, JSON schema), from which a replay
  or an export rebuilds a spec that validates the same JSON (``spec_from_record``) without the
  user's classes,
- and asks an endpoint for structured output (``response_format``, ``parse_structured``) for
  ``llm_query(prompt, output=...)``.

Submissions: ``FINAL(value)``, ``FINAL_VAR("name")``, ``answer["content"] = value`` and ``SUBMIT(value)``
submit one value; ``SUBMIT(field=..., ...)`` submits named fields, which are the object when the spec is
an object and the single field's value otherwise (DSPy's ``SUBMIT(answer=...)``).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from typing_extensions import is_typeddict

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

from . import _stdjson as json
from ._prompts import output_instructions
from .errors import ConfigError

Kind = Literal["model", "typeddict", "schema", "type"]

# What goes back to the model of a validator's message: enough to fix the answer, never a wall.
MESSAGE_CHARS = 2_000
# One jsonschema error quotes the whole failing instance, which may be the whole answer.
_ERROR_CHARS = 300
_URL_LINE = re.compile(r"^\s*For further information visit https?://\S+\s*$")
_FENCED = re.compile(r"\A\s*```[A-Za-z]*[ \t]*\r?\n(.*?)\r?\n?```\s*\Z", re.DOTALL)
UNTITLED = "the JSON schema"  # the name of a schema without a title
_QUALIFIER = re.compile(r"""('[^']*'|"[^"]*")|(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])""")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
# Keys whose value maps names to subschemas (a property called "title" is a name, not a title).
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


@dataclass(frozen=True)
class Accepted:
    """A candidate that matched: ``value`` is the validated object (a model instance, an ``int``…)."""

    value: Any

    ok: Literal[True] = True


@dataclass(frozen=True)
class Rejected:
    """A candidate that did not match: ``message`` is the validator's, trimmed to ``MESSAGE_CHARS``."""

    message: str

    ok: Literal[False] = False


Checked = Accepted | Rejected


class OutputSpec:
    """One ``output=`` spec (build it with ``output_spec``; the module docstring says what it does)."""

    def __init__(
        self,
        kind: Kind,
        name: str,
        schema: dict[str, Any],
        *,
        adapter: TypeAdapter[Any] | None = None,
        validator: Any = None,
    ) -> None:
        self.kind: Kind = kind
        self.name = name
        self.schema = schema
        self._adapter = adapter
        self._validator = validator
        self._object_root = _is_object_schema(schema)

    def __repr__(self) -> str:
        return f"OutputSpec({self.kind}, {self.name!r})"

    # --- what the model is told -------------------------------------------------------------------
    def schema_text(self) -> str:
        """The JSON schema as the prompt shows it: one line, without pydantic's generated titles."""
        return json.dumps(_without_titles(self.schema), ensure_ascii=False, separators=(",", ":"))

    def prompt_text(self) -> str:
        """The system prompt's section on the answer's shape and how to submit it."""
        name = None if self.name == UNTITLED else self.name
        return output_instructions(name, self.schema_text(), fields=self._object_root)

    # --- validation ---------------------------------------------------------------------------------
    def validate(self, candidate: object, *, fields: Mapping[str, object] | None = None) -> Checked:
        """Check a submission: ``candidate`` (a Python object, or text that may be JSON), or the named
        ``fields`` of ``SUBMIT(name=..., ...)``."""
        if fields is not None:
            if self._object_root or len(fields) != 1:
                candidate = dict(fields)
            else:
                candidate = next(iter(fields.values()))
        if self._adapter is not None:
            return self._validate_python(self._adapter, candidate)
        return self._validate_schema(candidate)

    def _validate_python(self, adapter: TypeAdapter[Any], candidate: object) -> Checked:
        from pydantic import ValidationError

        try:
            return Accepted(adapter.validate_python(candidate))
        except ValidationError as exc:
            first = exc
        if not isinstance(candidate, str):
            return Rejected(_pydantic_message(first))
        text = _unfenced(candidate)
        try:
            json.loads(text)
        except ValueError as not_json:
            return Rejected(_not_json(_pydantic_message(first), not_json))
        try:
            return Accepted(adapter.validate_json(text))
        except ValidationError as exc:
            return Rejected(_pydantic_message(exc))

    def _validate_schema(self, candidate: object) -> Checked:
        from pydantic_core import PydanticSerializationError, to_jsonable_python

        try:
            instance = to_jsonable_python(candidate)
        except PydanticSerializationError:
            return Rejected(
                f"The answer is a {type(candidate).__name__}, which has no JSON form. Submit plain "
                "values: dict, list, str, int, float, bool or None."
            )
        errors = self._schema_errors(instance)
        if not errors:
            return Accepted(instance)
        if not isinstance(candidate, str):
            return Rejected(errors)
        try:
            parsed = json.loads(_unfenced(candidate))
        except ValueError as not_json:
            return Rejected(_not_json(errors, not_json))
        errors = self._schema_errors(parsed)
        return Accepted(parsed) if not errors else Rejected(errors)

    def _schema_errors(self, instance: object) -> str:
        found = sorted(self._validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if not found:
            return ""
        lines = [f"{len(found)} validation error{'s' if len(found) > 1 else ''} for {self.name}"]
        for error in found:
            where = error.json_path if error.absolute_path else "the answer"
            lines.append(f"at {where}: {_clip(error.message, _ERROR_CHARS)}")
        return _trimmed(lines)

    # --- what is kept ---------------------------------------------------------------------------------
    def to_jsonable(self, value: object) -> Any:
        """The validated value as plain JSON data, for records and exports."""
        if self._adapter is not None:
            return self._adapter.dump_python(value, mode="json")
        from pydantic_core import to_jsonable_python

        return to_jsonable_python(value)

    def text(self, value: object) -> str:
        """``result.answer``: a string answer as itself, anything else as JSON."""
        data = self.to_jsonable(value)
        return data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)

    def describe(self) -> dict[str, Any]:
        """What the session record keeps of the spec: its kind, its name and its JSON schema."""
        return {"kind": self.kind, "name": self.name, "schema": self.schema}

    # --- structured output for sub-calls -------------------------------------------------------------
    def response_format(self) -> dict[str, Any]:
        """The ``response_format`` of a chat-completions request for this shape. Endpoints take an
        object at the root only, so any other shape is wrapped as ``{"value": ...}``."""
        schema = self.schema if self._object_root else _wrapped(self.schema)
        name = _NAME_CHARS.sub("_", self.name).strip("_")[:64] or "answer"
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": False},
        }

    def parse_structured(self, text: str) -> Checked:
        """Validate a reply to a request made with ``response_format`` (unwrapping ``value``)."""
        if not self._object_root:
            try:
                data = json.loads(_unfenced(text))
            except ValueError:
                data = None
            if isinstance(data, dict) and set(data) == {"value"}:
                return self.validate(data["value"])
        return self.validate(text)


def output_spec(spec: object) -> OutputSpec:
    """Build the ``OutputSpec`` of ``spec`` (see the module docstring); an unusable spec is a
    ``ConfigError`` that says what is accepted."""
    if isinstance(spec, OutputSpec):
        return spec
    if isinstance(spec, Mapping):
        return _schema_spec(dict(spec))
    if isinstance(spec, (str, bytes)) or spec is None:
        raise ConfigError(
            f"output={spec!r} is not a type or a JSON schema",
            fix="Pass a pydantic model class, a TypedDict, a type such as int or list[str], or a JSON "
            "schema as a dict (the CLI's --output takes a JSON schema file)",
        )
    # Imported only now, as jsonschema is below: pydantic costs ``import rlm_kernel`` (and every
    # kernel start) tens of milliseconds, for sessions that ask for a typed answer.
    from pydantic import BaseModel, PydanticSchemaGenerationError, PydanticUserError, TypeAdapter

    if isinstance(spec, type) and issubclass(spec, BaseModel):
        kind: Kind = "model"
    elif is_typeddict(spec):
        kind = "typeddict"
    else:
        kind = "type"
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(cast(Any, spec))  # a TypeForm, checked at run time
        schema = adapter.json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"output={_type_name(spec)} cannot be validated: {_clip(str(exc), 300)}",
            fix="Pass a pydantic model class, a TypedDict, a type pydantic can validate (int, "
            "list[str], dict[str, float], a dataclass) or a JSON schema dict",
        ) from exc
    return OutputSpec(kind, _type_name(spec), schema, adapter=adapter)


def spec_from_record(described: Mapping[str, Any]) -> OutputSpec:
    """The spec a session record describes (``OutputSpec.describe``), rebuilt from its JSON schema:
    it validates the same JSON without the user's classes (a replay, an export, a resume)."""
    spec = _schema_spec(dict(described["schema"]), name=str(described.get("name") or "answer"))
    spec.kind = described.get("kind", "schema")
    return spec


def _schema_spec(schema: dict[str, Any], name: str | None = None) -> OutputSpec:
    # Imported only now: jsonschema takes about 1.3 s to import (its format checkers), which
    # ``import rlm_kernel`` and every kernel start would pay for a feature few sessions use.
    import jsonschema

    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(
            f"output= is not a valid JSON schema: {_clip(exc.message, 300)}",
            fix="Check the schema against its $schema draft (default: 2020-12)",
        ) from exc
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    title = schema.get("title")
    return OutputSpec(
        "schema",
        name or (title if isinstance(title, str) and title else UNTITLED),
        schema,
        validator=validator,
    )


def _type_name(spec: object) -> str:
    if isinstance(spec, type) and not typing.get_args(spec):
        return spec.__name__
    # list[pkg.models.Item] reads as list[Item]; quoted literals are kept as written.
    return _QUALIFIER.sub(lambda m: m.group(1) or "", repr(spec))


def _is_object_schema(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" or (
        "type" not in schema and isinstance(schema.get("properties"), Mapping)
    )


def _wrapped(schema: dict[str, Any]) -> dict[str, Any]:
    # References such as "#/$defs/Item" point at the root, so the definitions move up with them.
    inner = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    outer: dict[str, Any] = {
        "type": "object",
        "properties": {"value": inner},
        "required": ["value"],
        "additionalProperties": False,
    }
    for key in ("$defs", "definitions"):
        if key in schema:
            outer[key] = schema[key]
    return outer


def _without_titles(node: Any) -> Any:
    """pydantic titles every property with its own name: noise in a prompt."""
    if isinstance(node, list):
        return [_without_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _without_titles(sub) for name, sub in value.items()}
        else:
            out[key] = _without_titles(value)
    return out


def _unfenced(text: str) -> str:
    """Models wrap JSON in a fence even when asked not to."""
    match = _FENCED.match(text)
    return match.group(1) if match else text


def _pydantic_message(exc: ValidationError) -> str:
    return _trimmed([line for line in str(exc).splitlines() if not _URL_LINE.match(line)])


def _not_json(message: str, error: ValueError) -> str:
    return f"{message}\n(The answer was text, and not JSON either: {_clip(str(error), 200)}.)"


def _trimmed(lines: list[str]) -> str:
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        if kept and used + len(line) > MESSAGE_CHARS:
            kept.append(f"[… {len(lines) - index} more line(s) of the validator's message cut]")
            break
        kept.append(_clip(line, MESSAGE_CHARS))
        used += len(line) + 1
    return "\n".join(kept)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
