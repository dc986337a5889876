"""The comm protocol (v1) against the fixture that the TypeScript tests load too."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel._notebook import _protocol as protocol
from rlm_kernel._notebook._protocol import validate
from rlm_kernel.errors import ProtocolError

FIXTURE = Path(__file__).parent / "fixtures" / "protocol_v1.json"
DATA: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_fixture_matches_the_constants() -> None:
    assert DATA["protocol"] == protocol.PROTOCOL_VERSION == 1
    assert DATA["comm_target"] == protocol.COMM_TARGET == "rlm_kernel"


def test_fixture_has_one_valid_example_of_every_message_type() -> None:
    seen = {case["message"]["type"] for case in DATA["valid"]}
    assert seen == set(protocol.MESSAGE_TYPES)
    assert seen == protocol.KERNEL_MESSAGE_TYPES | protocol.FRONTEND_MESSAGE_TYPES


@pytest.mark.parametrize("case", DATA["valid"], ids=lambda case: case["name"])
def test_valid_messages_pass(case: dict[str, Any]) -> None:
    message = validate(case["message"])
    assert message is case["message"]
    kernel_side = case["direction"] == "kernel_to_frontend"
    assert protocol.is_kernel_message(message) is kernel_side
    assert protocol.is_frontend_message(message) is not kernel_side


@pytest.mark.parametrize("case", DATA["invalid"], ids=lambda case: case["name"])
def test_invalid_messages_raise_a_clear_error(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        validate(case["message"])
    text = str(caught.value)
    assert text.startswith("rlm_kernel protocol 1: ")
    if case["field"] is not None:
        assert f"'{case['field']}'" in text
    assert isinstance(caught.value, ValueError)


def test_error_names_the_message_type_and_what_was_wrong() -> None:
    with pytest.raises(
        ProtocolError,
        match=r"'control' message: field 'action' must be one of 'pause', 'resume', 'step', 'stop', got string",
    ):
        validate({"type": "control", "action": "explode", "session": "s"})
    with pytest.raises(ProtocolError, match=r"'mark_stale' message: field 'remove' is missing"):
        validate({"type": "mark_stale", "session": "s", "from_iteration": 1})
    with pytest.raises(ProtocolError, match=r"unknown message type \"nope\""):
        validate({"type": "nope"})


def test_bool_is_not_an_integer_and_nan_is_not_a_number() -> None:
    base = {"type": "cell_inserted", "request_id": "r", "cell_id": "c", "index": True}
    with pytest.raises(ProtocolError, match="'index' must be an integer, got boolean"):
        validate(base)
    status = next(c["message"] for c in DATA["valid"] if c["message"]["type"] == "status")
    with pytest.raises(ProtocolError, match="'elapsed' must be a number"):
        validate({**status, "elapsed": float("nan")})


def test_typed_dicts_declare_every_field_of_the_table() -> None:
    """The TypedDicts and the validation table describe the same fields."""
    classes: dict[str, type] = {
        "announce": protocol.AnnounceMessage,
        "insert_cell": protocol.InsertCellMessage,
        "mark_stale": protocol.MarkStaleMessage,
        "status": protocol.StatusMessage,
        "update_cell": protocol.UpdateCellMessage,
        "sync": protocol.SyncMessage,
        "hello": protocol.HelloMessage,
        "cell_inserted": protocol.CellInsertedMessage,
        "cell_executed": protocol.CellExecutedMessage,
        "control": protocol.ControlMessage,
    }
    for message_type, fields in protocol._FIELDS.items():
        cls = classes[message_type]
        hints = typing.get_type_hints(cls)
        assert set(hints) == {"type"} | {name for name, _, _ in fields}, message_type
        required = {name for name, _, req in fields if req} | {"type"}
        assert cls.__required_keys__ == required, message_type  # type: ignore[attr-defined]


def test_the_status_message_is_the_snapshot_field_for_field() -> None:
    """The toolbar shows the session's snapshot: the message's fields are its fields, by name."""
    import dataclasses

    from rlm_kernel._snapshot import Snapshot

    status = {name for name, _, _ in protocol._FIELDS["status"]} - {"for_session"}
    assert status == {f.name for f in dataclasses.fields(Snapshot)}


@pytest.mark.parametrize("case", DATA["status_lines"], ids=lambda case: case["name"])
def test_the_status_line_is_the_one_the_toolbar_tooltip_shows(case: dict[str, Any]) -> None:
    """``_snapshot.describe`` (the CLI line, the status bar) and the toolbar's ``statusDetail``
    (labextension/test/logic.test.ts) write the same line for the same status."""
    from rlm_kernel._snapshot import Snapshot, describe

    message = validate(dict(case["message"]))
    fields = {k: v for k, v in message.items() if k != "type"}
    assert describe(Snapshot(**fields)) == case["line"]
