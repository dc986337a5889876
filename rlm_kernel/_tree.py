"""What a root session shares with the child RLMs it starts: one tree of sessions, one set of limits.

A root ``Session`` builds a ``SessionTree``; every child (``rlm_query``) gets the same one, so the
children charge the same ``Budget`` (``max_tokens``, ``max_cost``, ``wall_timeout`` count the whole
tree), answer from the same sub-call cache, emit to the same listeners and scrub with the same
redactor. The tree also owns the clients: recovery swaps them for the live ones in one place
(``go_live``), and every root-model call goes through ``call`` so that each one is cut when the
tree's wall time runs out and charged to its budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ._config import RLM
from ._events import Emitter
from ._secrets import Redactor
from ._subcalls import Budget, SubcallCache
from ._subtools import SubTool
from .models import Completion, Message, ModelClient, call_deadline
from .models._diagnosis import no_model_error


@dataclass
class SessionTree:
    """The settings, clients, budget, cache, listeners and redactor of a root session and its
    children."""

    config: RLM
    client: ModelClient
    sub_client: ModelClient
    budget: Budget
    cache: SubcallCache
    emitter: Emitter
    redactor: Redactor
    # Tools the sub-calls of every session in the tree may call (``sub_tools=``, set by the root).
    sub_tools: list[SubTool] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        config: RLM | None = None,
        client: ModelClient | None = None,
        sub_client: ModelClient | None = None,
    ) -> SessionTree:
        """A new tree: ``config`` defaults to the environment, ``client`` to an ``OpenAIClient``
        built from it, ``sub_client`` to ``client``."""
        cfg = config or RLM()
        if client is None:
            # Imported only now: the openai SDK takes most of a second to import.
            from .models.openai import OpenAIClient

            # No key and no endpoint is said first: it is the first thing to fix.
            client = OpenAIClient(cfg)
            if not cfg.model:
                # Said now, before a session exists: the endpoint would only answer 404 for ''.
                raise no_model_error()
        return cls(
            config=cfg,
            client=client,
            sub_client=sub_client or client,
            budget=Budget(cfg),
            cache=SubcallCache(cfg.cache, cfg.resolved_cache_dir()),
            emitter=Emitter(),
            redactor=Redactor(cfg.secrets()),
        )

    def call(
        self,
        messages: list[Message],
        *,
        model: str,
        on_delta: Callable[[str], None] | None = None,
    ) -> Completion:
        """One root-model call, cut when the tree's ``wall_timeout`` runs out while it is in
        flight, and charged to the budget."""
        with call_deadline(self.budget.wall_deadline()):
            completion = self.client.complete(messages, model=model, on_delta=on_delta)
        self.budget.charge(completion.usage, completion.model)
        return completion

    def go_live(self, client: ModelClient, sub_client: ModelClient | None = None) -> None:
        """From now on the tree's turns go to ``client`` and its sub-calls to ``sub_client``
        (default ``client``): the end of a recovery's re-enactment."""
        self.client = client
        self.sub_client = sub_client or client
