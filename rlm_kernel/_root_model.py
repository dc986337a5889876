"""A session's root model: every call the session makes to it, and what those calls return.

The root model is asked for each step (``propose``: the response, streamed as it comes, its code
blocks and the request key that names the conversation), for a best answer at a limit or after the
loop guard (``best_answer``), for the one direct answer of baseline mode (``baseline``) and for a
summary when the history is due for compaction (``compaction``). Each call goes through the tree
(``SessionTree.call``: the budget, the ``wall_timeout`` deadline) and is counted in ``usage``, the
session's own root usage. The endings come back as data (``_endings``); the session applies them.
"""

from __future__ import annotations

from collections.abc import Callable

from ._answers import shape_request
from ._endings import Ending, baseline, best_answer, compaction, compaction_due
from ._events import ResponseDelta
from ._history import History
from ._output import OutputSpec
from ._prompts import extract_code
from ._records import Proposal
from ._schema import CompactionRecord, SessionRecord
from ._tree import SessionTree
from .models import Completion, ConversationKeys, Message, UsageSummary


class RootModel:
    """The root model ``model`` of the session ``session_id`` at ``depth`` of ``tree``, asked for
    answers of shape ``output``."""

    def __init__(
        self, tree: SessionTree, model: str, output: OutputSpec | None, session_id: str, depth: int
    ) -> None:
        self.tree, self.model, self.output = tree, model, output
        self.session_id, self.depth = session_id, depth
        self.usage = UsageSummary()  # this session's root calls only
        self.request_key = ConversationKeys()

    def call(
        self, messages: list[Message], on_delta: Callable[[str], None] | None = None
    ) -> Completion:
        """One root-model call, counted in ``usage``."""
        completion = self.tree.call(messages, model=self.model, on_delta=on_delta)
        self.usage.add(completion.model, completion.usage)
        return completion

    def propose(self, n: int, messages: list[Message]) -> Proposal:
        """Step ``n``: the model's response to ``messages`` and the code blocks in it; the response
        is streamed as ``ResponseDelta`` events when ``RLM.stream`` is on and someone listens."""
        on_delta = None
        if self.tree.config.stream and self.tree.emitter.active:

            def on_delta(text: str) -> None:
                self.tree.emitter.emit(ResponseDelta(self.session_id, self.depth, n, text))

        completion = self.call(messages, on_delta)
        blocks = tuple(extract_code(completion.text))
        key = self.request_key(completion.model, messages)
        return Proposal(n, completion.text, blocks, completion, key)

    def best_answer(
        self, history: History, question: str, reason: str, why: str, *, what: str
    ) -> Ending:
        """The ending with the model's best answer, asked without code (``_endings``)."""
        shape = shape_request(self.output)
        return best_answer(self.call, history, question, reason, why, what=what, shape=shape)

    def baseline(self, context: object, question: str, record: SessionRecord) -> Ending:
        """The ending with the one direct answer of baseline mode (``_endings.baseline``)."""
        mode, shape = self.tree.config.mode, shape_request(self.output)
        return baseline(self.call, context, question, record, mode, shape)

    def compaction(self, history: History) -> CompactionRecord | None:
        """The compaction record when ``history`` is due for one (``RLM.compaction_threshold``)."""
        if compaction_due(history, self.tree.config):
            return compaction(self.call, history)
        return None
