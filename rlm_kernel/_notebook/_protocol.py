"""The rlm_kernel comm protocol, version 1: the kernel side, defined once.

The frontend side is ``labextension/src/protocol.ts``; both are checked against the shared fixture
``tests/fixtures/protocol_v1.json``. Keep the field tables and the error wording of the two files in
step. Every message is a JSON object with a ``type``; extra fields are allowed (forward
compatibility), missing or mistyped ones are not.

Kernel to frontend: ``announce``, ``insert_cell``, ``mark_stale``, ``status``, ``update_cell``, ``sync``.
Frontend to kernel: ``hello``, ``cell_inserted``, ``cell_executed``, ``control``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict, cast

from .. import _stdjson as json
from ..errors import ProtocolError

PROTOCOL_VERSION: Final = 1
COMM_TARGET: Final = "rlm_kernel"

Role = Literal["start", "step", "reasoning", "answer"]
CellType = Literal["code", "markdown"]
SessionState = Literal["idle", "running", "paused", "done", "failed"]
ControlAction = Literal["pause", "resume", "step", "stop"]
FrontendName = Literal["jupyterlab", "notebook", "nbclient"]

ROLES: Final = ("start", "step", "reasoning", "answer")
CELL_TYPES: Final = ("code", "markdown")
SESSION_STATES: Final = ("idle", "running", "paused", "done", "failed")
CONTROL_ACTIONS: Final = ("pause", "resume", "step", "stop")
FRONTENDS: Final = ("jupyterlab", "notebook", "nbclient")


class _RlmCellMetadataOptional(TypedDict, total=False):
    subcalls: int
    guard: str  # a guard stepped in at this step (``_guards.guard_badge``)
    stale: bool


class RlmCellMetadata(_RlmCellMetadataOptional):
    """``metadata.rlm`` of a cell that belongs to an RLM session."""

    session: str
    iteration: int
    role: Role


class _CellMetadataOptional(TypedDict, total=False):
    tags: list[str]


class CellMetadata(_CellMetadataOptional):
    """The whole metadata of an inserted cell; other keys are allowed at run time."""

    rlm: RlmCellMetadata


# ---- kernel -> frontend ----------------------------------------------------------------------


class AnnounceMessage(TypedDict):
    """comm_open data (or comm_msg) from the kernel asking the frontend for a ``hello``."""

    type: Literal["announce"]
    protocol: int


class _ForSession(TypedDict, total=False):
    # The frontend client session (``parent_header.session``) a message is for; absent/None: any.
    for_session: str | None


class _InsertCellOptional(_ForSession, total=False):
    cell_id: str | None  # an id for the new cell, so later messages can address it


class InsertCellMessage(_InsertCellOptional):
    """Insert a cell (after ``after_cell_id``; None: after the cell whose run sent this) and maybe run it."""

    type: Literal["insert_cell"]
    request_id: str
    session: str
    iteration: int
    after_cell_id: str | None
    cell_type: CellType
    source: str
    metadata: CellMetadata
    run: bool
    collapsed: bool  # the reasoning markdown cell is inserted with its source hidden


class MarkStaleMessage(_ForSession):
    """Mark (or remove) the step and reasoning cells of ``session`` from ``from_iteration`` on, and
    remove its answer cells from ``from_iteration - 1`` on (the re-run step's answer is superseded;
    a stale answer left in place would read as the notebook's conclusion)."""

    type: Literal["mark_stale"]
    session: str
    from_iteration: int
    remove: bool


class _StatusOptional(_ForSession, total=False):
    # Added after protocol 1 was first released: a page of that release gets them and ignores them,
    # and a kernel of that release sends none. This kernel sends every field of its snapshot.
    root_tokens: int
    subcalls: int
    wave: int


class StatusMessage(_StatusOptional):
    """Session status for the notebook toolbar: the session's snapshot (``_snapshot.Snapshot``),
    field for field."""

    type: Literal["status"]
    session: str
    session_state: (
        SessionState  # not "state": nbclient takes any comm data with "state" for widget state
    )
    iteration: int
    max_iterations: int
    tokens: int
    cost: float | None
    in_flight: int
    elapsed: float
    question: str


class _UpdateCellOptional(_ForSession, total=False):
    role: Role  # which cell of the iteration; default "step"
    cell_id: str | None  # address the cell directly


class UpdateCellMessage(_UpdateCellOptional):
    """Merge ``metadata`` into ``metadata.rlm`` of one iteration's cell (e.g. ``{"subcalls": 3}``)."""

    type: Literal["update_cell"]
    session: str
    iteration: int
    metadata: dict[str, Any]


class SyncCell(TypedDict):
    """One cell of a session as the kernel's record has it (``sync``)."""

    cell_id: str
    cell_type: CellType
    source: str
    metadata: CellMetadata
    collapsed: bool
    outputs: list[dict[str, Any]]  # nbformat outputs: what the step printed, from its record


class _SyncOptional(_ForSession, total=False):
    start_cell_id: str | None  # the ``%rlm`` cell (JupyterLab's id); None: not known


class SyncMessage(_SyncOptional):
    """Sent to a page that (re)connects: the session's live cells in notebook order. The page
    inserts those it lacks after the one before them (the first after the ``%rlm`` cell; with
    neither there, at the end, never at the top), fills in the outputs of step cells that have
    none, and runs nothing (a waiting step comes after as an ``insert_cell`` with ``run``)."""

    type: Literal["sync"]
    session: str
    cells: list[SyncCell]


# ---- frontend -> kernel ----------------------------------------------------------------------


class _HelloOptional(TypedDict, total=False):
    # After a page reload: the client session this tab had before (its messages now come here).
    replaces: str | None


class HelloMessage(_HelloOptional):
    """comm_open data of a frontend-opened comm, or the reply to ``announce``."""

    type: Literal["hello"]
    protocol: int
    frontend: FrontendName
    version: str
    session: (
        str  # the frontend's kernel clientId == parent_header["header"]["session"] of its requests
    )


class CellInsertedMessage(TypedDict):
    type: Literal["cell_inserted"]
    request_id: str
    cell_id: str
    index: int


class CellExecutedMessage(TypedDict):
    type: Literal["cell_executed"]
    request_id: str
    cell_id: str
    ok: bool


class ControlMessage(TypedDict):
    """A toolbar button. Handled on a subshell thread mid-cell on JupyterLab >= 4.4."""

    type: Literal["control"]
    action: ControlAction
    session: str


KernelMessage = (
    AnnounceMessage
    | InsertCellMessage
    | MarkStaleMessage
    | StatusMessage
    | UpdateCellMessage
    | SyncMessage
)
FrontendMessage = HelloMessage | CellInsertedMessage | CellExecutedMessage | ControlMessage
Message = KernelMessage | FrontendMessage


# ---- validation ------------------------------------------------------------------------------


# A kind is one of these names or a tuple of allowed string values.
_Kind = str | tuple[str, ...]
# (name, kind, required): the same table as FIELDS in protocol.ts.
_Field = tuple[str, _Kind, bool]

_FIELDS: Final[dict[str, tuple[_Field, ...]]] = {
    "announce": (("protocol", "int", True),),
    "insert_cell": (
        ("request_id", "string", True),
        ("for_session", "string|null", False),
        ("session", "string", True),
        ("iteration", "int", True),
        ("after_cell_id", "string|null", True),
        ("cell_id", "string|null", False),
        ("cell_type", CELL_TYPES, True),
        ("source", "string", True),
        ("metadata", "cell_metadata", True),
        ("run", "bool", True),
        ("collapsed", "bool", True),
    ),
    "mark_stale": (
        ("for_session", "string|null", False),
        ("session", "string", True),
        ("from_iteration", "int", True),
        ("remove", "bool", True),
    ),
    "status": (
        ("for_session", "string|null", False),
        ("session", "string", True),
        ("session_state", SESSION_STATES, True),
        ("iteration", "int", True),
        ("max_iterations", "int", True),
        ("tokens", "int", True),
        ("cost", "number|null", True),
        ("in_flight", "int", True),
        ("elapsed", "number", True),
        ("question", "string", True),
        ("root_tokens", "int", False),
        ("subcalls", "int", False),
        ("wave", "int", False),
    ),
    "update_cell": (
        ("for_session", "string|null", False),
        ("session", "string", True),
        ("iteration", "int", True),
        ("role", ROLES, False),
        ("cell_id", "string|null", False),
        ("metadata", "object", True),
    ),
    "sync": (
        ("for_session", "string|null", False),
        ("session", "string", True),
        ("start_cell_id", "string|null", False),
        ("cells", "sync_cells", True),
    ),
    "hello": (
        ("protocol", "int", True),
        ("frontend", FRONTENDS, True),
        ("version", "string", True),
        ("session", "string", True),
        ("replaces", "string|null", False),
    ),
    "cell_inserted": (
        ("request_id", "string", True),
        ("cell_id", "string", True),
        ("index", "int", True),
    ),
    "cell_executed": (
        ("request_id", "string", True),
        ("cell_id", "string", True),
        ("ok", "bool", True),
    ),
    "control": (
        ("action", CONTROL_ACTIONS, True),
        ("session", "string", True),
    ),
}

_CELL_RLM_FIELDS: Final[tuple[_Field, ...]] = (
    ("session", "string", True),
    ("iteration", "int", True),
    ("role", ROLES, True),
    ("subcalls", "int", False),
    ("guard", "string", False),
)

_SYNC_CELL_FIELDS: Final[tuple[_Field, ...]] = (
    ("cell_id", "string", True),
    ("cell_type", CELL_TYPES, True),
    ("source", "string", True),
    ("metadata", "cell_metadata", True),
    ("collapsed", "bool", True),
    ("outputs", "array", True),
)

KERNEL_MESSAGE_TYPES: Final = frozenset(
    {"announce", "insert_cell", "mark_stale", "status", "update_cell", "sync"}
)
FRONTEND_MESSAGE_TYPES: Final = frozenset({"hello", "cell_inserted", "cell_executed", "control"})
MESSAGE_TYPES: Final = tuple(_FIELDS)

_KIND_NAMES: Final = {
    "string": "a string",
    "string|null": "a string or null",
    "int": "an integer",
    "number": "a number",
    "number|null": "a number or null",
    "bool": "a boolean",
    "object": "an object",
    "cell_metadata": 'an object with an "rlm" object',
    "array": "an array",
    "sync_cells": "an array of cells",
}


def _describe(value: object) -> str:
    """The JSON type name of ``value``, as protocol.ts says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _kind_name(kind: _Kind) -> str:
    if isinstance(kind, str):
        return _KIND_NAMES[kind]
    return "one of " + ", ".join(f"'{k}'" for k in kind)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return (
        isinstance(value, float) and value == value and value not in (float("inf"), -float("inf"))
    )


def _check_kind(value: object, kind: _Kind) -> bool:
    if not isinstance(kind, str):
        return isinstance(value, str) and value in kind
    if kind == "string":
        return isinstance(value, str)
    if kind == "string|null":
        return value is None or isinstance(value, str)
    if kind == "int":
        return _is_int(value)
    if kind == "number":
        return _is_number(value)
    if kind == "number|null":
        return value is None or _is_number(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("object", "cell_metadata"):
        return isinstance(value, Mapping)
    if kind in ("array", "sync_cells"):
        return isinstance(value, list)
    raise AssertionError(f"unknown field kind {kind!r}")


def _fail(message_type: str, text: str) -> ProtocolError:
    return ProtocolError(
        f"rlm_kernel protocol {PROTOCOL_VERSION}: '{message_type}' message: {text}",
        fix="Make the kernel and the JupyterLab extension the same rlm_kernel version",
    )


def _check_fields(
    message_type: str, data: Mapping[str, object], fields: tuple[_Field, ...], prefix: str
) -> None:
    for name, kind, required in fields:
        path = prefix + name
        if name not in data:
            if required:
                raise _fail(message_type, f"field '{path}' is missing")
            continue
        value = data[name]
        if not _check_kind(value, kind):
            raise _fail(
                message_type,
                f"field '{path}' must be {_kind_name(kind)}, got {_describe(value)}",
            )
        if kind == "cell_metadata":
            rlm = cast(Mapping[str, object], value).get("rlm")
            if not isinstance(rlm, Mapping):
                raise _fail(
                    message_type, f"field '{path}.rlm' must be an object, got {_describe(rlm)}"
                )
            _check_fields(message_type, rlm, _CELL_RLM_FIELDS, f"{path}.rlm.")
        if kind == "sync_cells":
            for index, cell in enumerate(cast(list[object], value)):
                if not isinstance(cell, Mapping):
                    raise _fail(
                        message_type,
                        f"field '{path}[{index}]' must be an object, got {_describe(cell)}",
                    )
                _check_fields(message_type, cell, _SYNC_CELL_FIELDS, f"{path}[{index}].")


def validate(message: object) -> Message:
    """Check that ``message`` is a protocol-1 message and return it, typed.

    Raises ProtocolError naming the message type and the offending field: an unknown ``type``,
    a missing required field, or a field of the wrong JSON type or outside its allowed values.
    """
    if not isinstance(message, Mapping):
        raise ProtocolError(
            f"rlm_kernel protocol {PROTOCOL_VERSION}: a message must be an object, got {_describe(message)}",
            fix="Send a JSON object with a 'type' field",
        )
    message_type = message.get("type")
    if not isinstance(message_type, str) or message_type not in _FIELDS:
        raise ProtocolError(
            f"rlm_kernel protocol {PROTOCOL_VERSION}: unknown message type {json.dumps(message_type)} "
            f"(field 'type'; known: {', '.join(_FIELDS)})",
            fix="Make the kernel and the JupyterLab extension the same rlm_kernel version",
        )
    _check_fields(message_type, message, _FIELDS[message_type], "")
    return cast(Message, message)


def is_kernel_message(message: Message) -> bool:
    """True for the messages the kernel sends (announce, insert_cell, ...)."""
    return message["type"] in KERNEL_MESSAGE_TYPES


def is_frontend_message(message: Message) -> bool:
    """True for the messages the frontend sends (hello, cell_inserted, ...)."""
    return message["type"] in FRONTEND_MESSAGE_TYPES
