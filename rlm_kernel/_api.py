"""The headless API: ``rlm_kernel.run(question, context, **settings) -> Result``."""

from __future__ import annotations

from typing import Any

from ._config import RLM
from ._events import Listener
from ._records import Result
from ._session import Session, Tools
from .models import ModelClient


def run(
    question: str,
    context: object,
    *,
    tools: Tools = None,
    output: object = None,
    client: ModelClient | None = None,
    sub_client: ModelClient | None = None,
    on_event: Listener | None = None,
    config: RLM | None = None,
    **settings: Any,
) -> Result:
    """Answer ``question`` about ``context`` with a Recursive Language Model.

    ``context`` is anything ``load_context`` accepts (a string, a list of strings, a dict, a path, a glob
    or a directory). ``settings`` are ``RLM`` settings by name (``model=``, ``base_url=``,
    ``max_iterations=``…) and override ``config``, which defaults to the environment. ``tools`` are
    functions the model may call from its code. ``output`` asks for a typed answer: a pydantic model
    class, a ``TypedDict``, a JSON schema dict or a type such as ``int`` or ``list[str]``; the answer
    is validated (an answer that does not match goes back to the model, ``RLM.output_repairs`` times)
    and ``result.value`` is the validated object, ``result.answer`` its text. The result holds the
    answer, why the run ended, the trajectory and the usage; model errors end the run with
    ``result.error`` set, never a traceback.
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
    )
    if on_event is not None:
        session.subscribe(on_event)
    return session.run()
