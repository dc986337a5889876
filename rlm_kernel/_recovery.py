"""Taking a session up again from its trajectory after a crash or a restart: ``rlm_kernel.resume``.

The record is re-enacted on a new session through its own ``propose``/``execute``/``rewind``/
``follow_up``, so nothing here re-implements the loop: every recorded step's code runs again, in record
order, with each root turn and sub-call answered from the record (no tokens). Superseded (rewound) steps
run too, because their side effects were in the crashed namespace. The history keeps the recorded
observations even where a re-run printed something else: that is what the model saw and answered, and
it keeps later decisions (compaction) the same; the difference is reported with a ``RecoveryWarning``.
Then the session switches to the live clients and appends to the same JSONL file.

This module sits above the session and uses only its public surface and the seam made for it, a
``Reenactment`` (``_reenact``: ``restore_records``, ``reopen``, ``end_as_recorded``,
``compact_if_due``, ``go_live``), which exists only until the session goes live; the session never
imports either.
"""

from __future__ import annotations

import difflib
import logging
import warnings
from collections import deque
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from . import _logging
from ._config import RLM
from ._context import describe_context, load_context
from ._recorder import autosave_path
from ._reenact import Reenactment
from ._replay import (
    _LOOP_SETTINGS,
    collect_answers,
    recorded_completion,
    recorded_settings,
    recorded_tools,
)
from ._retrieval_tools import require_retriever
from ._schema import FinalRecord, IterationRecord, Record, SessionRecord
from ._session import Session, SubTools, Tools
from ._trajectory import Trajectory, TrajectoryWriter, torn_tail
from .errors import ContextError, RecoveryWarning, ReplayMissError, RLMError, TrajectoryError
from .executors import Executor
from .models import Completion, Message, ModelClient
from .models._base import DeltaCallback
from .models.replay import ReplayClient

# The loop settings a replay takes from the record, plus the executor: code must run where it ran.
_RESUMED_SETTINGS = (*_LOOP_SETTINGS, "executor")
_DIFF_LINES = 12


@dataclass(frozen=True)
class Mismatch:
    """A re-run step whose output differs from the record's: ``diff`` is recorded → re-run.

    ``RecoveryWarning.mismatches`` holds these."""

    iteration: int
    diff: str


def resumed_config(recording: Trajectory, base: RLM | None = None) -> RLM:
    """``base`` (default: settings from the environment) with the record's loop settings, which the
    re-run must follow (request keys name the models; limits decide when it ends). A record's endpoint
    is used when ``base`` names none."""
    values = recorded_settings(recording, _RESUMED_SETTINGS)
    config = base or RLM()
    if not config.base_url and recording.session["config"].get("base_url"):
        values["base_url"] = recording.session["config"]["base_url"]
    return config.with_overrides(values)


def resume(
    trajectory_path: str | Path,
    context: object,
    *,
    config: RLM | None = None,
    client: ModelClient | None = None,
    sub_client: ModelClient | None = None,
    namespace: MutableMapping[str, Any] | None = None,
    executor: Executor | None = None,
    tools: Tools = None,
    sub_tools: SubTools = None,
    output: object = None,
    retriever: object = None,
    **settings: Any,
) -> Session:
    """Take a session up again from its trajectory, e.g. after a kernel crash or a restart.

    ``trajectory_path`` is the autosaved ``.jsonl`` (or a ``.json`` export). The recorded code runs
    again in a fresh namespace (``namespace``, default a private dict) with every model answer served
    from the record, so no tokens are spent; then the session is ``paused`` and new steps go to the
    live model: call ``run()``, ``step()``, or ``follow_up(question)`` on it. The context is never
    saved, so pass it again; it must be the one the session ran on (its sha256 is checked). It keeps
    its session id and history, and new records are appended to the same ``.jsonl``. Outputs that
    differ from the record are reported with a ``RecoveryWarning``.

    ``settings`` are ``RLM`` settings by name and override ``config`` (default: the environment),
    except the loop settings (models, limits, executor), which are the record's: the re-run must
    follow it. ``client``/``sub_client`` are the live clients (default: built from the settings).
    ``tools`` and ``sub_tools`` are the session's tools again (functions, MCP servers): the re-run
    calls them as the recorded one did. A session whose sub-models had tools and that is given none
    re-enacts them from the record, and its new sub-calls can only call them as recorded.
    A typed session (``output=``) validates by ``output`` when given (so ``value`` is an instance of
    the class again), else by the recorded JSON schema (``value`` is then plain JSON data).
    A session that searched a collection needs its ``retriever`` again (its code searches it);
    ``context`` is then None when the recorded run had none.
    """
    path = Path(trajectory_path)
    recording = Trajectory.load(path)
    recorded = recording.session
    if recorded.get("depth", 0) != 0:
        raise TrajectoryError(
            f"{path} is the trajectory of a child RLM (depth {recorded['depth']}); only a root "
            "session can be taken up again",
            fix="Load the root session's file: a child runs again as part of its parent's step",
        )
    cfg = resumed_config(recording, (config or RLM()).with_overrides(settings))
    _logging.emit(
        "rlm_kernel.recovery",
        logging.INFO,
        f"session {recorded['session_id']}: resuming from {path} ({len(recording.records)} records)",
        cfg.secrets,
    )
    require_retriever(recorded, retriever)
    loaded = (  # as the recorded run loaded it
        None
        if context is None and retriever is not None
        else load_context(context, **cfg.load_rules().options())
    )
    _check_context(loaded, recorded, path)
    if client is None:
        from .models.openai import OpenAIClient  # only now: the SDK is slow to import

        client = OpenAIClient(cfg)  # fails now, not after the catch-up, when no model is set
    root = _RecordedTurns()
    reenacted = Reenactment(
        recording,
        loaded,
        config=cfg,
        client=root,
        sub_client=ReplayClient(keyed=_recorded_subcalls(recording.records)),
        namespace=namespace,
        executor=executor,
        tools=tools,
        sub_tools=sub_tools if sub_tools is not None else recorded_tools(recording),
        output=output,
        retriever=retriever,
    )
    session = reenacted.session
    mismatches = _catch_up(reenacted, root, recording.records, path)
    reenacted.restore_records(recording)
    writer = _writer(path, recording, session) if cfg.autosave else None
    # From here on every turn and sub-call is new: the children share these clients.
    message = _message(path, recording, mismatches)
    reenacted.go_live(client, sub_client, writer=writer, message=message)
    # What the notebook is told, on rlm_kernel.recovery too (no output: it may quote the context).
    level = logging.WARNING if mismatches else logging.INFO
    _logging.emit("rlm_kernel.recovery", level, f"session {session.id}: {message}", cfg.secrets)
    _warn(session, mismatches)
    return session


# --- the catch-up ---------------------------------------------------------------------------------


class _RecordedTurns:
    """The root model while catching up: answers one recorded step at a time with the turns the
    record holds for it (its own, its child RLMs', a forced final answer), so a re-run that goes
    another way cannot shift the answers of later steps."""

    endpoint = "the recording"

    def __init__(self) -> None:
        self.queue: deque[Completion] = deque()

    def complete(
        self, messages: Sequence[Message], *, model: str, on_delta: DeltaCallback | None = None
    ) -> Completion:
        if not self.queue:
            raise ReplayMissError(
                f"The re-run asked {model!r} for a turn the record does not hold",
                fix="The code went another way than when it was recorded",
            )
        hit = replace(self.queue.popleft(), cached=True)
        if on_delta is not None:
            on_delta(hit.text)
        return hit

    async def acomplete(self, messages: Sequence[Message], *, model: str) -> Completion:
        return self.complete(messages, model=model)


def _recorded_subcalls(records: list[Record]) -> list[tuple[str, Completion]]:
    """Every sub-call answer by request key, superseded steps' included (the re-run repeats them)."""
    calls: list[tuple[str, Completion]] = []
    for record in records:
        if record["type"] == "iteration":
            collect_answers([record], [], calls)
    return calls


def _catch_up(
    reenacted: Reenactment, root: _RecordedTurns, records: list[Record], path: Path
) -> list[Mismatch]:
    session = reenacted.session
    mismatches: list[Mismatch] = []
    for index in range(1, len(records)):
        record = records[index]
        # What the session had written before this record (rewind and execute read it), and the
        # history it makes: the recorded observations, whatever a re-run printed.
        reenacted.restore_records(Trajectory(records[:index]))
        kind = record["type"]
        try:
            if record["type"] == "compaction":
                # Due now, as it was when recorded: the history is the one it was made from.
                root.queue = deque([recorded_completion(record["summary"], record["model_call"])])
                reenacted.compact_if_due()
            elif record["type"] == "iteration":
                # A guard's record may stand between a step and the ending it led to.
                later = (r for r in records[index + 1 :] if r["type"] != "guard")
                after = next(later, None)
                root.queue = deque(_turns_for(session, record, after))
                mismatches.extend(_step(reenacted, record))
            elif record["type"] == "rewind":
                session.rewind(record["to_iteration"])
            elif record["type"] == "follow_up":
                if session.state == "idle":
                    session.pause()  # it ended before its first step (e.g. a model error)
                session.follow_up(record["question"])
            elif record["type"] == "final":
                _final(reenacted, record)
        except RLMError as exc:
            raise TrajectoryError(
                f"{path}: record {index + 1} ({kind}) could not be re-enacted: {exc}",
                fix="The session went another way when re-run than when it was recorded. Start a "
                "new session on the same context, or replay it (`rlm-kernel replay`) to see where",
            ) from exc
    root.queue.clear()
    return mismatches


def _turns_for(session: Session, record: IterationRecord, after: Record | None) -> list[Completion]:
    """The root turns one recorded step used: its proposal (unless a rewind re-runs a proposal the
    session already has), its child RLMs' turns, and the best-answer call a limit forced after it."""
    turns: list[Completion] = []
    collect_answers([record], turns, [])
    pending = session.pending
    if pending is not None and pending.iteration == record["iteration"] and turns:
        turns = turns[1:]  # collect_answers puts the step's own turn first
    if after is not None and after["type"] == "final" and after["reason"] != "baseline":
        forced = after["forced"]
        if forced:
            turns.append(recorded_completion(forced["response"], forced["model_call"]))
    return turns


def _step(reenacted: Reenactment, record: IterationRecord) -> list[Mismatch]:
    session = reenacted.session
    found: list[Mismatch] = []
    if session.state == "done":
        # The re-run submitted an answer where the recorded run went on: follow the record.
        found.append(Mismatch(record["iteration"] - 1, "the re-run ended with an answer here"))
        reenacted.reopen("recovering")
    pending = session.pending
    if pending is None or pending.iteration != record["iteration"]:
        session.propose()
    rerun = session.execute(record["code"] if record["edited_by_user"] else None)
    if rerun["type"] == "interrupted":
        raise KeyboardInterrupt
    if rerun["type"] == "guard":
        raise TrajectoryError(
            f"The loop guard stopped iteration {record['iteration']}, which the recorded run ran",
            fix="Resume with the recorded RLM.loop_guard setting",
        )
    output = cast(IterationRecord, rerun)["output"]
    if output != record["output"]:
        found.append(Mismatch(record["iteration"], _short_diff(record["output"], output)))
    return found


def _final(reenacted: Reenactment, record: FinalRecord) -> None:
    """The recorded ending stands, whether or not the re-run reached it the same way (stopped,
    baseline, or a re-run whose code went another way)."""
    reenacted.end_as_recorded(
        record["answer"], record["reason"], record["message"], record["forced"]
    )


def _short_diff(recorded: str, rerun: str) -> str:
    lines = list(
        difflib.unified_diff(
            recorded.splitlines(), rerun.splitlines(), "recorded", "re-run", lineterm="", n=1
        )
    )
    shown = [line if len(line) <= 200 else line[:200] + "…" for line in lines[:_DIFF_LINES]]
    if len(lines) > _DIFF_LINES:
        shown.append(f"… {len(lines) - _DIFF_LINES} more lines")
    return "\n".join(shown)


# --- checks, the file, the report ---------------------------------------------------------------


def _check_context(loaded: object, recorded: SessionRecord, path: Path) -> None:
    info, want = describe_context(loaded), recorded["context"]
    if info.sha256 == want["sha256"]:
        return
    raise ContextError(
        f"This context is not the one session {recorded['session_id']} ({path.name}) ran on: "
        f"given a {info.type} of {info.chars:,} chars (sha256 {info.sha256[:12]}…), recorded a "
        f"{want['type']} of {want['chars']:,} chars (sha256 {want['sha256'][:12]}…)",
        fix="Pass the very context the session ran on; the record keeps only its fingerprint, "
        "never the context itself",
    )


def _writer(path: Path, recording: Trajectory, session: Session) -> TrajectoryWriter:
    """The same file for a JSONL record; a ``.json`` export cannot be appended to, so it starts a
    new autosave file holding every record so far (the session stays one file either way)."""
    redactor = session.redactor
    if path.suffix == ".jsonl":
        writer = TrajectoryWriter(
            path,
            redactor,
            fix="Make the file writable, or resume with autosave=False (the new steps are then "
            "kept in memory only: save them with session.trajectory.save(path))",
            setting="RLM.autosave",
        )
        _mend_tail(path)
        return writer
    number = 1
    target = autosave_path(session.config, session.id)
    while target.exists():  # the session's own autosave file, say: never append a second copy
        number += 1
        target = autosave_path(session.config, session.id, number)
    writer = TrajectoryWriter(target, redactor)
    for record in recording.records:
        writer.write(record)
    return writer


def _mend_tail(path: Path) -> None:
    """A crash mid-write can leave a torn last line (already skipped by Trajectory.load): records
    appended after it would make it a damaged line in the middle, and the file would no longer
    load. It is cut off; a whole last line without its newline is ended."""
    data = path.read_bytes()
    cut = torn_tail(data)
    if cut is not None:
        with path.open("r+b") as f:
            f.truncate(cut)
    elif data and not data.endswith(b"\n"):
        with path.open("ab") as f:
            f.write(b"\n")


def _message(path: Path, recording: Trajectory, mismatches: list[Mismatch]) -> str:
    steps = len([r for r in recording.records if r["type"] == "iteration"])
    numbers = ", ".join(str(m.iteration) for m in mismatches)
    return (
        f"Taken up again from {path}: {steps} recorded step(s) re-run with the recorded model "
        "answers (no tokens spent)"
        + (f"; outputs differ at iteration(s) {numbers}" if numbers else "")
    )


def _warn(session: Session, mismatches: list[Mismatch]) -> None:
    if not mismatches:
        return
    numbers = ", ".join(str(m.iteration) for m in mismatches)
    details = "\n".join(f"iteration {m.iteration}:\n{m.diff}" for m in mismatches)
    warnings.warn(
        RecoveryWarning(
            f"Session {session.id}: re-running the record printed something else at iteration(s) "
            f"{numbers}. The namespace holds what the re-run made; the model's history keeps what "
            f"it saw. Check those variables before going on.\n{details}",
            mismatches,
        ),
        stacklevel=3,  # the caller of rlm_kernel.resume
    )
