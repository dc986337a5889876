"""The headless API: ``rlm_kernel.run(question, context, **settings) -> Result``, and
``await rlm_kernel.arun(...)``, which takes the same parameters and runs ``run`` on a thread of its
own (``_async``): every parameter ``run`` gains, ``arun`` has too."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, ParamSpec

from ._async import stopping
from ._config import RLM
from ._events import Listener
from ._progress import show_progress
from ._records import Result
from ._session import Session, SubTools, Tools
from .models import ModelClient

P = ParamSpec("P")
# Set by ``arun`` in the context ``run`` runs in: given the session ``run`` built, before it runs, so
# that cancelling the task awaiting ``arun`` can stop that session at its next safe point.
_built: ContextVar[Callable[[Session], None] | None] = ContextVar("rlm_run_built", default=None)


def run(
    question: str,
    context: object = None,
    *,
    retriever: object = None,
    tools: Tools = None,
    output: object = None,
    sub_tools: SubTools = None,
    client: ModelClient | None = None,
    sub_client: ModelClient | None = None,
    on_event: Listener | None = None,
    config: RLM | None = None,
    **settings: Any,
) -> Result:
    """Answer ``question`` about ``context`` with a Recursive Language Model.

    ``context`` is anything ``load_context`` accepts (a string, a list of strings, a dict, a path, a glob
    or a directory); it may be left out when ``retriever`` is given: a collection the model searches
    from its code (``search(query, k)`` hits, ``get(doc_id)`` texts; an index from
    ``rlm_kernel.index`` or any ``rlm_kernel.retrieval.Retriever``), which child RLMs see a scope of
    (``rlm_query(prompt, scope=ids)``). ``settings`` are ``RLM`` settings by name (``model=``, ``base_url=``,
    ``max_iterations=``…) and override ``config``, which defaults to the environment. ``tools`` are
    functions the model may call from its code, ``sub_tools`` functions the sub-models of its
    ``llm_query`` / ``llm_batch`` calls may call (their signature and docstring are the schema, up to
    ``RLM.sub_tool_turns`` rounds a call); either may hold MCP servers (``rlm_kernel.MCPServer``),
    started for the run and stopped when it returns. ``output`` asks for a typed answer: a pydantic model
    class, a ``TypedDict``, a JSON schema dict or a type such as ``int`` or ``list[str]``; the answer
    is validated (an answer that does not match goes back to the model, ``RLM.output_repairs`` times)
    and ``result.value`` is the validated object, ``result.answer`` its text. The result holds the
    answer, why the run ended, the trajectory and the usage; model errors end the run with
    ``result.error`` set, never a traceback. While it runs, progress shows (``RLM.progress``): a
    widget in a notebook, a line on a terminal's stderr, nothing elsewhere.
    """
    cfg = (config or RLM()).with_overrides(settings)
    session = Session(
        question,
        context,
        config=cfg,
        client=client,
        sub_client=sub_client,
        tools=tools,
        output=output,
        sub_tools=sub_tools,
        retriever=retriever,
    )
    if on_event is not None:
        session.subscribe(on_event)
    if (watch := _built.get()) is not None:
        watch(session)
    progress = None
    if cfg.progress:
        progress = show_progress(session)
    try:
        return session.run()
    finally:
        if progress is not None:
            progress.close()
        session.close()  # its MCP servers, if any


def _parameters_of(
    sync: Callable[P, Result],
) -> Callable[
    [Callable[..., Coroutine[Any, Any, Result]]], Callable[P, Coroutine[Any, Any, Result]]
]:
    """Give the decorated coroutine function ``sync``'s signature, for ``inspect`` and type checkers
    alike: one list of parameters, ``run``'s."""

    def adopt(
        function: Callable[..., Coroutine[Any, Any, Result]],
    ) -> Callable[P, Coroutine[Any, Any, Result]]:
        function.__signature__ = inspect.signature(sync)  # type: ignore[attr-defined]
        return function

    return adopt


@_parameters_of(run)
async def arun(*args: Any, **kwargs: Any) -> Result:
    """``await rlm_kernel.arun(question, context, **settings)``: ``run`` for code that runs in an
    event loop (an application server, a notebook cell that awaits), with the same parameters.

    The run goes on a thread of its own, so the loop stays free and many runs awaited together
    (``asyncio.gather``) run at once. ``on_event`` is called on that thread; for events delivered on
    the loop, use ``AsyncSession.events()``. Cancelling the awaiting task stops the session at its next
    safe point (after the step in progress), waits for it, so its trajectory is whole and ends with
    reason ``stopped``, then raises ``CancelledError``.
    """

    def call(watch: Callable[[Session], None]) -> Result:
        _built.set(watch)  # in this thread's copy of the caller's context only
        return run(*args, **kwargs)

    return await stopping(call, "rlm-arun")
