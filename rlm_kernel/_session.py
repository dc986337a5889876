"""The RLM loop as a state machine, independent of any front end.

States: ``idle`` → ``running`` ⇄ ``paused`` → ``done`` | ``failed``. Front ends drive a session with
``propose()`` (ask the root model for the next step), ``execute(code)`` (run it, possibly edited by a
person), ``step()`` (both), ``run()`` (until finished or paused), ``pause()``, ``stop()`` and
``rewind(n)``, and observe it through events (``subscribe``). The blocking drivers (API, CLI, inline
notebook) call ``run()``; the cells driver calls ``propose``/``execute`` from successive cells.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from ._children import Children
from ._closing import closing_record, settled
from ._config import RLM
from ._context import ContextInfo, context_value, describe_context, load_context
from ._endings import Ending, exceeded_limit, uses_baseline
from ._events import (
    CodeReady,
    Event,
    Finished,
    Guarded,
    IterationFinished,
    IterationStarted,
    Listener,
    StateChanged,
    StateName,
)
from ._final import FinalSlot
from ._namespace import weakly
from ._output import OutputSpec, output_spec, spec_from_record
from ._prompts import follow_up_text
from ._records import Proposal, Result
from ._retrieval_tools import CollectionTools, collection_tools
from ._root_model import RootModel
from ._schema import (
    GuardRecord,
    IterationRecord,
    Record,
    follow_up_record,
    rewind_record,
)
from ._secrets import Redactor
from ._session_parts import assemble
from ._snapshot import Snapshot, take
from ._trajectory import Trajectory
from ._tree import SessionTree
from .errors import IterationTimeout, ModelError, ReplayMissError, RLMError, SessionStateError
from .executors import Executor, release_executor
from .models import Message, ModelClient, UsageSummary

# Functions (by their names, or under the mapping's keys) and MCP servers (``MCPServer``), whose tools
# come under their own names; sub-model tools may also be ``SubTool`` values.
Tools = Mapping[str, Any] | list[Any] | None
SubTools = Mapping[str, Any] | list[Any] | None


class Session:
    """One RLM session: a question about a context, answered step by step (see the module docstring).

    ``Session(question, context, *, config=None, client=None, sub_client=None, namespace=None,
    executor=None, tools=None)``: ``config`` defaults to the environment, ``client`` to an
    ``OpenAIClient`` built from it, ``sub_client`` to ``client``; the code runs in ``namespace`` (a
    private dict by default) through ``executor`` (from ``RLM.executor`` by default). ``output``
    asks for a typed answer (a pydantic model, a ``TypedDict``, a JSON schema dict or a type such as
    ``int``; ``_output``): the model is told its shape, a submission is validated, one that does not
    match goes back to the model with the validator's message (``RLM.output_repairs`` times), and
    ``value`` is the validated object. ``sub_tools`` are tools for the sub-models: functions
    (their signature and docstring are the schema) and MCP servers (``MCPServer``) that
    ``llm_query`` / ``llm_batch`` calls may call, up to ``RLM.sub_tool_turns`` rounds each; the
    root model only sees their answers. ``tools`` may hold MCP servers too. The servers start with
    the session, stop when it finishes (and start again if it goes on), and ``close()`` stops them
    for good. ``retriever`` is a collection the code searches (``search``, ``get``:
    ``_retrieval_tools``); with one, ``context`` may be None (``P`` is then None).
    """

    _tree: SessionTree

    def __init__(
        self,
        question: str,
        context: object,
        *,
        config: RLM | None = None,
        client: ModelClient | None = None,
        sub_client: ModelClient | None = None,
        namespace: MutableMapping[str, Any] | None = None,
        executor: Executor | None = None,
        tools: Tools = None,
        output: object = None,
        sub_tools: SubTools = None,
        retriever: object = None,
        _collection: CollectionTools | None = None,
        _tree: SessionTree | None = None,
        _depth: int = 0,
        _parent_call: str | None = None,
        _restore: Trajectory | None = None,
    ) -> None:
        self.id = _restore.session["session_id"] if _restore else uuid.uuid4().hex[:12]
        self.question = question
        self.depth = _depth
        if _tree is None:
            _tree = SessionTree.start(config, client, sub_client)
        self._tree = _tree
        self.config = _tree.config
        self._collection = _collection if _depth else collection_tools(retriever)
        # A child's context comes from the model's code: a value, never a host path to read.
        self.context = (
            None  # the collection is the whole context
            if context is None and self._collection is not None
            else load_context(context, **self.config.load_rules().options())
            if _depth == 0
            else context_value(context)
        )
        self.context_info: ContextInfo = describe_context(self.context)
        self.state: StateName = "idle"
        self.answer: str | None = None
        self.value: Any = None  # a typed answer's validated object
        if output is None and _restore is not None and "output" in _restore.session:
            output = spec_from_record(_restore.session["output"])  # re-enacted as recorded
        self.output: OutputSpec | None = None if output is None else output_spec(output)
        self.reason = ""
        self.message = ""
        self.error: RLMError | None = None
        self._root_model = self.config.model if _depth == 0 else self.config.effective_sub_model()
        self._root = RootModel(_tree, self._root_model, self.output, self.id, _depth)
        self._slot = FinalSlot()
        self._pending: Proposal | None = None
        # Code that runs in place of the model's at these iterations: a replay re-enacting the
        # edits a person made in the recorded session. ``step()`` and the cells driver honour it.
        self.edits: dict[int, str] = {}
        self._pause = threading.Event()
        self._children = Children()  # child RLMs running now (rlm_query)
        self._stop = threading.Event()
        self._started = time.monotonic()
        parts = assemble(
            self,
            session_id=self.id,
            question=question,
            depth=_depth,
            tree=_tree,
            context=self.context,
            context_info=self.context_info,
            collection=self._collection,
            output=self.output,
            slot=self._slot,
            root_model=self._root_model,
            child_runner=weakly(self._run_child),  # no cycle: a finished session is freed at once
            namespace=namespace,
            executor=executor,
            tools=tools,
            sub_tools=sub_tools,
            restore=_restore,
            parent_call=_parent_call,
        )
        self._toolbox, self._engine, self.executor = parts.toolbox, parts.engine, parts.executor
        self._helpers, self.clobbered, self._runner = parts.helpers, parts.clobbered, parts.runner
        self.history, self._review, self._recorder = parts.history, parts.review, parts.recorder
        # Iterations before the current question (follow-ups get a fresh iteration budget).
        self._question_start = 0
        self._record(parts.opening)

    # --- public surface --------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """Where the trajectory is autosaved (None for children and when autosave is off)."""
        return self._recorder.path

    @property
    def trajectory(self) -> Trajectory:
        """Every record of this session so far (the file, when autosaving, holds the same)."""
        return self._recorder.trajectory

    @trajectory.setter
    def trajectory(self, trajectory: Trajectory) -> None:
        self._recorder.trajectory = trajectory

    @property
    def iteration(self) -> int:
        """The number of iterations that stand."""
        return self.history.iterations

    @property
    def pending(self) -> Proposal | None:
        """The proposed step waiting to be executed, if any."""
        return self._pending

    @property
    def messages(self) -> list[Message]:
        """What the root model is sent next."""
        return self.history.messages

    @property
    def subcalls_in_flight(self) -> int:
        """Sub-calls of the tree started and not yet answered (``snapshot().in_flight``)."""
        return self.snapshot().in_flight

    def snapshot(self) -> Snapshot:
        """The session's live numbers now, as every live view shows them (``_snapshot``)."""
        return take(self, self._tree.emitter.counts, self._tree.budget, self.config.max_iterations)

    @property
    def tokens_used(self) -> int:
        """Tokens spent so far by the whole tree (thread-safe; for live displays)."""
        return self._tree.budget.tokens

    @property
    def root_usage(self) -> UsageSummary:
        """This session's own root-model calls (usage minus sub-calls and children)."""
        summary = UsageSummary()
        summary.merge(self._root.usage)
        return summary

    @property
    def usage(self) -> UsageSummary:
        """Root calls, sub-calls and children's usage, by model."""
        summary = UsageSummary()
        summary.merge(self._root.usage)
        summary.merge(self._engine.usage)
        return summary

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event of this session and its children."""
        return self._tree.emitter.subscribe(listener)

    def propose(self) -> Proposal:
        """Ask the root model for the next step (or return the one already waiting)."""
        self._require("idle", "paused", "running")
        if self._pending is not None:
            return self._pending
        with self._counted():
            return self._propose()

    def _propose(self) -> Proposal:
        n = self.iteration + 1
        self._emit(IterationStarted(self.id, self.depth, n))
        if self.config.compaction:
            self._compact_if_due()
        self._pending = self._root.propose(n, self.messages)
        self._emit(CodeReady(self.id, self.depth, n, self._pending.response, self._pending.blocks))
        return self._pending

    def execute(self, code: str | None = None) -> IterationRecord | GuardRecord | dict[str, Any]:
        """Run the pending step; ``code`` replaces the model's code (a person's edit).

        Returns the step's record; the loop guard's record when it ended the run instead of running
        a step that repeats an earlier one once too often (``RLM.loop_guard``); or
        ``{"type": "interrupted", "iteration": n}`` when it was interrupted (then nothing of it is
        recorded)."""
        self._require("idle", "paused", "running")
        with self._counted():
            return self._execute(code)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """A step taken by hand (not in ``running``) counts toward wall_timeout too."""
        counting = self.depth == 0 and not self._tree.budget.counting  # not already counted
        if counting:
            self._tree.budget.clock(True)
        try:
            yield
        finally:
            if counting and self.state != "running":
                self._tree.budget.clock(False)

    def _execute(self, code: str | None) -> IterationRecord | GuardRecord | dict[str, Any]:
        proposal = self._pending or self.propose()
        edited = code is not None and code.strip() != proposal.code.strip()
        blocks = (code,) if code is not None and edited else proposal.blocks
        self._engine.iteration = proposal.iteration
        started = time.perf_counter()
        stopped = None if edited else self._stopped_by_loop_guard(proposal)
        if stopped is not None:
            return stopped
        outcome = self._runner.run(
            blocks,
            label=f"{self.id} step {proposal.iteration}",
            iteration=proposal.iteration,
            response=proposal.response,
            edited=edited,
        )
        if outcome.interrupted:
            # A sandboxed step's thread is abandoned, not unwound: a child RLM in it would go on.
            self._children.stop()
            self._engine.take_records()
            self._set_state("paused", "interrupted")
            self.message = (
                f"Iteration {proposal.iteration} was interrupted; nothing of it was recorded. "
                "Resuming runs it again; executing edited code runs that instead."
            )
            return {"type": "interrupted", "iteration": proposal.iteration}
        reviewed = self._review.after(
            proposal,
            blocks,
            edited,
            outcome,
            started,
            trajectory=self.trajectory,
            question=self.question,
            question_start=self._question_start,
        )
        record = reviewed.record
        self._apply(record)
        # Listeners (front ends, below the records layer) read the record as a plain dict.
        self._emit(IterationFinished(self.id, self.depth, proposal.iteration, cast(Any, record)))
        self._pending = None
        if reviewed.guard is not None:
            self._guarded(reviewed.guard)
        if reviewed.ending is not None:
            self._end(reviewed.ending)
        elif reviewed.guard is not None and reviewed.stopped:
            self._end_loop(reviewed.guard)
        else:
            exceeded = exceeded_limit(
                self._tree.budget, self.history, self._question_start, self.config
            )
            if exceeded is not None:
                self._end(self._best_answer(*exceeded))
        if self.state == "idle":
            # Stepped by hand rather than by run(): wait for the next step.
            self._set_state("paused", "stepped")
        return record

    def step(self) -> IterationRecord | GuardRecord | dict[str, Any]:
        """One iteration: propose, then execute the model's code (or the edit planned for it)."""
        self._require("idle", "paused", "running")
        proposal = self.propose()
        return self.execute(self.edits.get(proposal.iteration))

    def run(self) -> Result:
        """Iterate until the session finishes, is paused, or fails; model errors pause it."""
        self._require("idle", "paused", "running")
        self.begin()
        try:
            if self._collection is None and uses_baseline(
                self.config, self.context_info, self.depth
            ):
                self._end(self._root.baseline(self.context, self.question, self.trajectory.session))
            while self.checkpoint():
                self.step()
        except (ModelError, ReplayMissError) as exc:
            if isinstance(exc, ModelError) and self._tree.budget.out_of_time():
                # wall_timeout ran out during the call and cut it: the session ends at that limit
                # as it would have after the step.
                self._end_out_of_time()
            else:
                # A replay that runs past its recording holds like a failing endpoint: the message
                # says how to go on (a live fallback), and nothing of the session is lost.
                self.hold(exc)
        except (KeyboardInterrupt, IterationTimeout) as exc:
            self._set_state("paused", "interrupted")
            self.message = "Interrupted; resuming continues from here."
            if self.depth > 0 or isinstance(exc, IterationTimeout):
                # A child's interrupt stops the step of the parent that started it, too; a timeout
                # that reaches here is an outer iteration's (a parent's), and stops that one.
                raise
        except Exception as exc:
            self.fail(exc)
            raise
        return self.result()

    def begin(self) -> None:
        """Enter ``running``: for drivers that step the session themselves (the cells driver)."""
        self._require("idle", "paused", "running")
        self._pause.clear()
        self.error, self.reason, self.message = None, "", ""
        self._set_state("running")
        self._recorder.catch_up()  # after a failed autosave: the file whole again, or hold now

    def checkpoint(self) -> bool:
        """A safe point: honour a requested pause or stop; True when the session should go on."""
        if self.state != "running":
            return False
        if self._recorder.failed is not None:
            self.hold(self._recorder.failed)  # a full disk: no more steps that only memory keeps
            return False
        if self._stop.is_set():
            self._end(Ending(None, "stopped", "Stopped on request"))
            return False
        if self._pause.is_set():
            self._pause.clear()
            self._set_state("paused", "paused on request")
            return False
        return True

    @property
    def elapsed(self) -> float:
        """Seconds since the session was created."""
        return time.monotonic() - self._started

    @property
    def running_time(self) -> float:
        """Seconds spent running, children included: what ``wall_timeout`` counts (time paused or
        finished is left out)."""
        return self._tree.budget.elapsed

    @property
    def pause_requested(self) -> bool:
        """Whether a pause or a stop was asked for and takes effect at the next safe point."""
        return self._pause.is_set() or self._stop.is_set()

    def pause(self) -> None:
        """Pause at the next safe point (between model call and execution, or between steps)."""
        if self.state == "running":
            self._pause.set()
        elif self.state == "idle":
            self._set_state("paused", "paused on request")

    def stop(self) -> None:
        """End the session at the next safe point, without an answer (its running children too)."""
        self._children.stop()
        if self.state == "running":
            self._stop.set()
        elif self.state in ("idle", "paused"):
            self._end(Ending(None, "stopped", "Stopped on request"))

    def follow_up(self, question: str) -> None:
        """Ask a new question in the same session: same namespace, the earlier exchange kept as history."""
        self._require("done", "paused")
        previous = self.answer
        self.question = question
        self._question_start = self.iteration
        self._pending = None
        self._clear_answer()
        self._apply(follow_up_record(question, self.iteration, follow_up_text(question, previous)))
        self._set_state("paused", "follow-up question")

    def rewind(self, n: int) -> Proposal:
        """Go back so that iteration ``n`` runs again; returns its original proposal, now pending."""
        self._require("idle", "paused", "running", "done")
        standing = self.trajectory.iterations
        if not 1 <= n <= len(standing):
            raise SessionStateError(
                f"Cannot rewind to iteration {n}: this session has iterations 1–{len(standing)}",
                fix="Pick an iteration that exists",
            )
        self.history.check_rewind(n)
        target = standing[n - 1]
        self._apply(rewind_record(n))
        self._pending = Proposal.recorded(target)
        self._clear_answer()
        if self.state != "paused":
            self._set_state("paused", f"rewound to iteration {n}")
        return self._pending

    def result(self) -> Result:
        """Where the session stands now: answer, reason, message, trajectory, usage, error, path."""
        return Result(
            answer=self.answer,
            reason=self.reason or self.state,
            message=self.message,
            trajectory=self.trajectory,
            usage=self.usage,
            error=self.error,
            path=self.path,
            value=self.value,
        )

    @property
    def redactor(self) -> Redactor:
        """What keeps secrets out of this session's records and what it sends (the whole tree's)."""
        return self._tree.redactor

    # --- guards (``_guards``: they judge from the records; the session applies what they say) -----------
    def _stopped_by_loop_guard(self, proposal: Proposal) -> GuardRecord | None:
        """A proposed step that repeats an earlier one once too often is not run: the run ends."""
        guard = self._review.before(proposal, self.trajectory)
        if guard is not None:
            self._pending = None
            self._guarded(guard)
            self._end_loop(guard)
        return guard

    def _guarded(self, guard: GuardRecord) -> None:
        self._record(guard)
        self._emit(Guarded(self.id, self.depth, guard["iteration"], cast(Any, guard)))

    def _end_out_of_time(self) -> None:
        self._pending = None
        exceeded = self._tree.budget.exceeded() or ("wall_timeout", "RLM.wall_timeout ran out")
        self._end(self._best_answer(*exceeded))

    def _end_loop(self, guard: GuardRecord) -> None:
        self._end(self._best_answer("loop", guard["note"], what="Loop guard"))

    def _best_answer(self, reason: str, why: str, *, what: str = "Limit reached") -> Ending:
        return self._root.best_answer(self.history, self.question, reason, why, what=what)

    # --- model calls, endings -------------------------------------------------------------------------
    def _compact_if_due(self) -> None:
        record = self._root.compaction(self.history)
        if record is not None:
            self._apply(record)

    def _end(self, ending: Ending, *, state: StateName = "done") -> None:
        """Finish the current question as ``ending`` says: the final record, then the state."""
        self.reason, self.message = ending.reason, ending.message
        self.answer, self.value = settled(self.output, ending)
        if ending.error is not None:
            self.error = ending.error
        self._pending = None
        try:
            duration, usage = time.monotonic() - self._started, self.usage
            final = closing_record(
                ending, self.output, self.value, usage=usage, duration=duration, error=self.error
            )
            self._record(final)
        finally:  # ended even when the record cannot be written
            if self.error is None and self._recorder.failed is not None:
                self.error = self._recorder.failed  # the answer stands; the file lacks records
            self._set_state(state, ending.reason)
            # A sandbox gives its worker back; a follow-up or rewind restores it from its last dump.
            release_executor(self.executor)
            self._emit(Finished(self.id, self.depth, ending.answer, ending.reason, ending.message))
            self._recorder.close()
            if self._toolbox is not None:  # MCP servers start again on the next call, if any
                self._toolbox.stop()

    def close(self) -> None:
        """Stop the session's MCP servers for good (``tools=`` / ``sub_tools=`` servers); a session
        without any has nothing to close. ``rlm_kernel.run`` closes its session when it returns."""
        if self._toolbox is not None:
            self._toolbox.close()

    def hold(self, exc: RLMError) -> None:
        """Pause on an error a fix lets it go on from (a model error, a failed autosave), keeping
        it as the reason: fix the cause, then resume."""
        self.error, self.reason, self.message = exc, "error", str(exc)
        self._set_state("paused", type(exc).__name__)

    def fail(self, exc: Exception) -> None:
        """End in ``failed`` on an error nothing can resume from (a bug, a full disk)."""
        where = f" The trajectory so far is in {self.path}." if self.path else ""
        message = f"Stopped by an unexpected error: {exc!r}.{where}"
        with contextlib.suppress(Exception):  # writing the record may be what fails
            self._end(Ending(None, "failed", message), state="failed")

    def _run_child(
        self, prompt: str, context: object, call_id: str, collection: CollectionTools | None
    ) -> tuple[str, dict[str, Any] | None, UsageSummary]:
        return self._children.run(
            lambda: Session(
                prompt,
                context,
                _collection=collection,
                _tree=self._tree,
                _depth=self.depth + 1,
                _parent_call=call_id,
            ),
            stopping=self._stop.is_set(),
        )

    # --- plumbing ---------------------------------------------------------------------------------------
    def _clear_answer(self) -> None:
        """The current question is open again (a follow-up, a rewind): no answer, no stop."""
        self.answer, self.reason, self.message, self.error = None, "", "", None
        self.value = None
        self._slot.clear()
        self._helpers.reset_answer(self.executor.namespace)
        self._stop.clear()

    def _apply(self, record: Record) -> None:
        """A record that changes the history: applied to it, then recorded."""
        self.history.apply(record)
        self._record(record)

    def _record(self, record: Record) -> None:
        self._recorder.record(record)

    def _emit(self, event: Event) -> None:
        self._tree.emitter.emit(event)

    def _set_state(self, new: StateName, reason: str = "") -> None:
        old, self.state = self.state, new
        if self.depth == 0:
            self._tree.budget.clock(new == "running")
        if old != new:
            self._emit(StateChanged(self.id, self.depth, old, new, reason))

    def _require(self, *states: StateName) -> None:
        if self.state not in states:
            raise SessionStateError(
                f"The session is {self.state}; this needs it to be {' or '.join(states)}",
                fix="Start a new session, or rewind to an earlier iteration to go back into a finished one",
            )
