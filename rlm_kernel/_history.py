"""The root model's conversation: what it is sent each turn.

A preamble (system prompt, context metadata, and after compaction the summary) followed by one
(assistant, observation) pair per standing iteration. Rewinds cut pairs off, follow-up questions extend
the last observation, compaction folds the pairs into a summary. The context itself never enters it.
"""

from __future__ import annotations

from .errors import SessionStateError
from .models import Message


class History:
    def __init__(self, preamble: list[Message]) -> None:
        self.preamble = list(preamble)
        self.turns: list[tuple[Message, Message]] = []
        # Iterations folded into the preamble by compaction.
        self.compacted = 0

    @property
    def iterations(self) -> int:
        return len(self.turns) + self.compacted

    @property
    def messages(self) -> list[Message]:
        return [*self.preamble, *(m for turn in self.turns for m in turn)]

    @property
    def chars(self) -> int:
        return sum(len(m["content"]) for m in self.messages)

    def add(self, assistant: str, observation: str) -> None:
        self.turns.append(
            ({"role": "assistant", "content": assistant}, {"role": "user", "content": observation})
        )

    def rewind(self, n: int) -> None:
        """Keep iterations 1..n-1."""
        if n <= self.compacted:
            raise SessionStateError(
                f"Cannot rewind to iteration {n}: the history before iteration {self.compacted + 1} "
                "was compacted",
                fix="Rewind to a later iteration, or turn RLM.compaction off for sessions you edit",
            )
        self.turns = self.turns[: n - 1 - self.compacted]

    def extend_last(self, text: str) -> None:
        """Add ``text`` to the latest message the model will read (a follow-up question)."""
        if self.turns:
            assistant, observation = self.turns[-1]
            self.turns[-1] = (
                assistant,
                {"role": "user", "content": observation["content"] + "\n\n" + text},
            )
        else:
            self.preamble.append({"role": "user", "content": text})

    def compact(self, summary: str) -> None:
        """Fold every turn so far into ``summary``; the REPL keeps its variables."""
        after = self.iterations
        self.compacted = after
        self.preamble = [
            *self.preamble[:2],
            {"role": "assistant", "content": summary},
            {
                "role": "user",
                "content": f"Your history up to iteration {after} was compacted into the summary above; "
                "the REPL still holds every variable (SHOW_VARS() lists them). Continue.",
            },
        ]
        self.turns = []
