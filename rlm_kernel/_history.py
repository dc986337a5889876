"""The root model's conversation: what it is sent each turn, as a fold over the trajectory's records.

A preamble (system prompt, context metadata, and after compaction the summary) followed by one
(assistant, observation) pair per standing iteration. ``History.apply(record)`` is the only code that
knows how a record changes it: the session applies each record it writes, and the exporters, recovery
and the tests rebuild the history of a recorded session by applying its records (``History.of``).
The context itself never enters it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._schema import Record, SessionRecord
from .errors import SessionStateError
from .models import Message


class History:
    """The messages the root model is sent next; changed only by ``apply``."""

    def __init__(self, preamble: list[Message]) -> None:
        self.preamble = list(preamble)
        self.turns: list[tuple[Message, Message]] = []
        # Iterations folded into the preamble by compaction.
        self.compacted = 0

    @classmethod
    def of(cls, records: Iterable[Record], *, compacted: bool = True) -> History:
        """The history after ``records`` (a session record first). With ``compacted=False``
        compactions are skipped, so it keeps every turn (what training data wants)."""
        it = iter(records)
        first = next(it)
        if first["type"] != "session":
            raise ValueError("a history starts from a session record")
        history = cls.from_session(first)
        for record in it:
            if compacted or record["type"] != "compaction":
                history.apply(record)
        return history

    @classmethod
    def from_session(cls, record: SessionRecord) -> History:
        """The history a session starts with: the preamble its record holds."""
        return cls([{"role": m["role"], "content": m["content"]} for m in record["messages"]])

    @property
    def iterations(self) -> int:
        """The number of iterations that stand, compacted ones included."""
        return len(self.turns) + self.compacted

    @property
    def messages(self) -> list[Message]:
        """The whole conversation, in order."""
        return [*self.preamble, *(m for turn in self.turns for m in turn)]

    @property
    def chars(self) -> int:
        """Its size in characters (compaction is decided on it)."""
        return sum(len(m["content"]) for m in self.messages)

    def check_rewind(self, n: int) -> None:
        """Refuse a rewind to ``n`` that would reach into compacted history."""
        if n <= self.compacted:
            raise SessionStateError(
                f"Cannot rewind to iteration {n}: the history before iteration {self.compacted + 1} "
                "was compacted",
                fix="Rewind to a later iteration, or turn RLM.compaction off for sessions you edit",
            )

    def apply(self, record: Record) -> None:
        """Change the history as ``record`` says; records that do not change it are ignored."""
        if record["type"] == "iteration":
            self.turns.append(
                (
                    {"role": "assistant", "content": record["assistant"]},
                    {"role": "user", "content": record["observation"]},
                )
            )
        elif record["type"] == "rewind":
            n = record["to_iteration"]
            self.check_rewind(n)
            self.turns = self.turns[: n - 1 - self.compacted]
        elif record["type"] == "compaction":
            self.compacted = record["after_iteration"]
            self.preamble = [
                *self.preamble[:2],
                {"role": "assistant", "content": record["summary"]},
                {"role": "user", "content": record["note"]},
            ]
            self.turns = []
        elif record["type"] == "follow_up":
            # The question goes into the latest message the model will read.
            text = record["text"]
            if self.turns:
                assistant, observation = self.turns[-1]
                content = observation["content"] + "\n\n" + text
                self.turns[-1] = (assistant, {"role": "user", "content": content})
            else:
                self.preamble.append({"role": "user", "content": text})
