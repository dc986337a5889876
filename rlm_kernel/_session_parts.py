"""What a session is made of, put together once when it is made (``Session.__init__``).

A session holds its tools (the MCP servers of ``tools=`` / ``sub_tools=`` started), the sub-call
engine, the executor and the helpers bound into its namespace, the block runner, the root model's
history (the preamble, or a re-enacted recording's), the recorder and the step review, and it writes
its ``session`` record first. ``assemble`` builds them in that order and returns them as
``SessionParts``; the session keeps each under its own attribute and every state transition stays
with it.
"""

from __future__ import annotations

import weakref
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, cast

from ._context import ContextInfo
from ._final import FinalSlot
from ._history import History
from ._iteration import BlockRunner
from ._mcp import Toolbox, session_toolbox
from ._namespace import Helpers, normalize_tools
from ._output import OutputSpec
from ._preamble import preamble
from ._recorder import Recorder
from ._retrieval_tools import CollectionTools, with_collection
from ._schema import SessionRecord, session_record
from ._step_review import StepReview
from ._subcalls import ChildRunner, SubcallEngine
from ._trajectory import Trajectory
from ._tree import SessionTree
from .executors import Executor, admitted_tools, executor_note, make_executor


@dataclass
class SessionParts:
    """A session's parts (see the module docstring); ``opening`` is its ``session`` record and
    ``clobbered`` the names of the namespace its helpers replaced."""

    toolbox: Toolbox | None
    engine: SubcallEngine
    executor: Executor
    helpers: Helpers
    clobbered: list[str]
    runner: BlockRunner
    history: History
    recorder: Recorder
    review: StepReview
    opening: SessionRecord


def assemble(
    owner: object,
    *,
    session_id: str,
    question: str,
    depth: int,
    tree: SessionTree,
    context: object,
    context_info: ContextInfo,
    collection: CollectionTools | None,
    output: OutputSpec | None,
    slot: FinalSlot,
    root_model: str,
    child_runner: ChildRunner,
    namespace: MutableMapping[str, Any] | None,
    executor: Executor | None,
    tools: Any,
    sub_tools: Any,
    restore: Trajectory | None,
    parent_call: str | None,
) -> SessionParts:
    """The parts of the session ``owner`` (its MCP servers stop when it is freed)."""
    config = tree.config
    toolbox = session_toolbox(tools, sub_tools, tree.sub_client) if depth == 0 else None
    if toolbox is not None:  # its MCP servers run now; a child RLM offers the root's tools
        weakref.finalize(owner, toolbox.close)
        tools, tree.sub_tools = toolbox.tools, toolbox.sub_tools
    engine = SubcallEngine(
        session_id=session_id,
        depth=depth,
        config=config,
        client=tree.sub_client,
        budget=tree.budget,
        cache=tree.cache,
        emitter=tree.emitter,
        redactor=tree.redactor,
        child_runner=child_runner,
        sub_tools=tree.sub_tools,
    )
    engine.collection = collection
    executor = executor or make_executor(config, namespace)
    usable = admitted_tools(
        executor, with_collection(normalize_tools(cast(Any, tools)), collection)
    )
    helpers = Helpers(context, engine, slot, usable)
    clobbered = helpers.bind(executor.namespace)
    runner = BlockRunner(executor, helpers, slot, config, tree.redactor)
    history = History(
        preamble(
            question,
            context_info,
            config,
            depth=depth,
            tools=helpers.specs,
            executor_note=executor_note(executor),
            output=output,
            collection=collection.info(only=context is None) if collection else None,
        )
    )
    # A session made by a ``Reenactment`` re-enacts a recorded one (rlm_kernel.resume): its records
    # are already in its file, so the re-enactment writes none until ``go_live``, and the model
    # goes on from the preamble it saw.
    if restore is not None:
        history = History.from_session(restore.session)
    autosaving = config.autosave and depth == 0 and restore is None
    recorder = (
        Recorder.autosaving(config, session_id, tree.redactor)
        if autosaving
        else Recorder(restoring=restore is not None)
    )
    opening = session_record(
        session_id,
        question=question,
        parent_call=parent_call,
        depth=depth,
        context=context_info.to_dict(),
        config=config.public_dict(),
        models={"root": root_model, "sub": config.effective_sub_model()},
        endpoint=tree.client.endpoint,
        tools=[s.__dict__ for s in helpers.specs],
        messages=list(history.preamble),
        output=output.describe() if output is not None else None,
        sub_tools=[{**t.schema()["function"], "source": t.source} for t in tree.sub_tools],
        retriever=collection.record() if collection else None,
    )
    review = StepReview(config, output, root_model, tree.redactor, engine, slot, helpers, executor)
    return SessionParts(
        toolbox, engine, executor, helpers, clobbered, runner, history, recorder, review, opening
    )
