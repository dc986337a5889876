"""The events a session emits, for code that follows a run as it goes.

``Session.subscribe(listener)`` calls ``listener(event)`` on the session's thread for every event of
the session and its child RLMs (``run(..., on_event=listener)`` too); ``AsyncSession.events()``
delivers them on the event loop, as an async iterator. Each event names its session
(``session_id``) and how deep in the tree of child RLMs it happened (``depth``, 0 for the root)::

    async for event in session.events():
        if isinstance(event, rlm_kernel.events.IterationFinished):
            print(event.iteration, event.record["output"][:80])

The records events carry (``IterationFinished``, ``Guarded``, ``SubcallFinished``) are the
trajectory's records, described in docs/formats.md.
"""

from ._events import (
    CodeReady,
    Event,
    Finished,
    Guarded,
    IterationFinished,
    IterationStarted,
    Listener,
    ResponseDelta,
    StateChanged,
    StateName,
    SubcallFinished,
    SubcallStarted,
)

__all__ = [
    "CodeReady",
    "Event",
    "Finished",
    "Guarded",
    "IterationFinished",
    "IterationStarted",
    "Listener",
    "ResponseDelta",
    "StateChanged",
    "StateName",
    "SubcallFinished",
    "SubcallStarted",
]
