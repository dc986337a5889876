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
    functions the model may call from its code. The result holds the answer, why the run ended, the
    trajectory and the usage; model errors end the run with ``result.error`` set, never a traceback.
    """
    cfg = (config or RLM()).with_overrides(settings)
    session = Session(
        question, context, config=cfg, client=client, sub_client=sub_client, tools=tools
    )
    if on_event is not None:
        session.subscribe(on_event)
    return session.run()
