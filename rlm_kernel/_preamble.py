"""What the root model is sent before its first step: the system prompt and the first user message.

Which texts they are depends on the protocol (``RLM.protocol``: rlm_kernel's own prompts in
``_prompts``, or the reference implementation's in ``_prompts_rlms``), the depth (a session that may
not start children is not told about ``rlm_query``), the helpers and tools bound in the namespace,
the executor (the sandbox's limits), the collection (``retriever=``), the strategy tips (``RLM.strategy``) and the answer's shape
(``output=``: ``OutputSpec.prompt_text``). The session records
the two messages in its session record, so a replay or a recovery sends exactly these again.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import _prompts_rlms as rlms
from ._config import RLM
from ._context import ContextInfo
from ._output import OutputSpec
from ._prompts import CollectionInfo, ToolSpec, metadata_message, system_prompt
from ._strategies import strategy_block
from .models import Message


def preamble(
    question: str,
    info: ContextInfo,
    config: RLM,
    *,
    depth: int,
    tools: Sequence[ToolSpec],
    executor_note: str,
    output: OutputSpec | None = None,
    collection: CollectionInfo | None = None,
) -> list[Message]:
    """The system message and the first user message of a session at ``depth``; ``collection``
    is what it is told of its retriever's documents (``retriever=``)."""
    if config.protocol == "rlms":
        text = rlms.system_prompt(
            tools, executor_note, collection, recursive=depth + 1 < config.max_depth
        )
        first = rlms.metadata_message(
            question, info, max_iterations=config.max_iterations, collection=collection
        )
    else:
        text = system_prompt(
            info,
            max_output_chars=config.max_output_chars,
            recursive=depth + 1 < config.max_depth,
            tools=tools,
            executor_note=executor_note,
            collection=collection,
        )
        first = metadata_message(
            question, info, max_iterations=config.max_iterations, collection=collection
        )
    tips = strategy_block(config.strategy)
    if tips:
        text = f"{text.rstrip()}\n\n{tips}\n"
    if output is not None:
        text = f"{text.rstrip()}\n\n{output.prompt_text()}"
    return [{"role": "system", "content": text}, {"role": "user", "content": first}]
