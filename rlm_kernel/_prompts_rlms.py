"""The reference implementation's prompt shape, for ``RLM.protocol = "rlms"``: models trained or
prompted on alexzhang13/rlm (e.g. the ``mit-oasys/rlm-qwen3-30b-a3b-v0.1`` checkpoint) read the
system prompt, first message and names they were trained on.

``SYSTEM_PROMPT`` and ``ORCHESTRATOR_ADDENDUM`` are the reference's ``RLM_SYSTEM_PROMPT`` and
``ORCHESTRATOR_ADDENDUM`` verbatim, from rlm/utils/prompts.py at commit
deac82220a134c79332e43021b97334f7947fb53 (MIT License, Copyright (c) 2025 Alex Zhang); the first
message follows its ``build_rlm_system_prompt`` and ``build_user_prompt``. Every name the prompt names
(``context``, ``llm_query_batched``, ``rlm_query_batched``, the ``answer`` dict, ``SHOW_VARS``) is bound
under either protocol (``_namespace``); the later turns are ours under both (they restate the question,
which small models need).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._context import ContextInfo
from ._prompts import CollectionInfo, ToolSpec, collection_guide, collection_lines

# fmt: off
SYSTEM_PROMPT = """\
You are a Recursive Language Model (RLM): a language model with a prompt, and a very important context stored in a Python REPL related to that prompt.
You can iteratively interact with the a Python REPL, which has access to LLM calls as a function. You will be queried turn-by-turn until you have an answer to the query.

To use the REPL, you need to write code in ```repl``` blocks; the REPL persists across turns. Available in the REPL:
- `context`: the important, potentially very long information related to the prompt (typically `str` or `list[str]`).
- `llm_query(prompt: str, model: str | None = None) -> str`: a single sub-LLM completion. Use for extraction, summarization, or Q&A over a chunk of text. Sub-LLM context window ≈ 500K chars.
- `llm_query_batched(prompts: list[str], model=None) -> list[str]`: concurrently call several LLM calls in parallel over a list of prompts; same order out as in.
- `rlm_query(prompt, model=None)` / `rlm_query_batched(prompts, model=None)`: recursive RLM sub-calls. Fall back to `llm_query` / `llm_query_batched` when recursion is disabled.
- `SHOW_VARS() -> str`: list every variable currently in the REPL.
- `answer`: dict initialized to `{{"content": "", "ready": False}}`. To submit, set `answer["content"]` to the final answer and `answer["ready"] = True` inside a ```repl``` block.
{custom_tools_section}

REPL outputs over ~20K characters are truncated, so for longer payloads slice `context` and pass slices through `llm_query` rather than `print`-ing them whole. The REPL is NOT a Jupyter cell — only `print(...)` output (stdout) is shown back to you between turns; a bare expression on the last line is silently discarded. Always wrap inspections in `print(...)`.

As a general strategy, you should start by probing your context to understand it better (e.g. print a few lines, count them, etc.). Then, use the REPL to build up an answer to the query.

Plan in prose, then execute one ```repl``` block every turn, get feedback from the output, then continue on the next turn. Do not flip `answer["ready"] = True` on turn 1 without first inspecting `context`.
"""

ORCHESTRATOR_ADDENDUM = """\
As an RLM, you should act as an orchestrator, not a solver.

Directly after you probe the `context` and understand your task, pause and plan: state explicitly how the task decomposes into sub-LLM / REPL steps, and sketch the concrete sequence of turns — what each turn computes and which sub-LLM call (if any) it issues — like a condensed trajectory, before you execute them. Then execute one turn at a time: after each step `print` a small sample of the result, verify it looks right, and only flip `answer["ready"] = True` once you have actually printed the candidate answer. If you are running out of turns without a confirmed answer, submit your best inference rather than letting the rollout terminate unsubmitted.

Your own context window is small. Push every long-context operation that would not fit comfortably in your own working window — reading, summarizing, classifying, verifying, answering sub-questions, even recapping your own progress — into `llm_query` / `llm_query_batched` calls instead of pulling that text into your own message stream. (Conversely: if a Python keyword / regex search over `context` would already pin the answer, or if a single visible passage already contains it, just read it directly — sub-LMs are for when the raw text won't fit or the question needs semantic interpretation.) Long REPL stdout pollutes history the same way raw `context` does: if you want a recap, ask `llm_query` for a 1–2 sentence summary and `print` only that. Aggregate the small results back in the REPL.

Sub-LLMs have no REPL; they only see the prompt and the `context` slice you pass them. Hand them clean, focused inputs and ask for terse, structured outputs you can manipulate programmatically.

Sub-call budget is finite on two independent axes, and `llm_query_batched` only parallelizes — it does not relax either. (1) Per-prompt capacity: a single sub-call answers well only when its input stays modestly sized — a useful rough ceiling is ~100K characters per prompt, less when the text is dense. Pack each prompt close to that capacity (a chunk of many items, a whole document) so one call accomplishes a lot of work. (2) Per-batch fan-out: `llm_query_batched` concurrency is bounded too — a useful rough ceiling is ~20 prompts per batch. Tiny-prompt mega-batches (hundreds or thousands of single-item prompts) are the anti-pattern; fat-prompt small batches are correct. For many independent units, use several ~20-wide batches of full-capacity prompts in sequence, not one mega-batch of tiny prompts. When the work can be expressed either as a sequential loop of `llm_query`s or as one comparably-sized batched call, prefer batched — same total work, far fewer turns burned. After Python-side filtering has narrowed the candidate set, batch-extract the survivors rather than reading them by hand. If the raw workload exceeds both budgets at once (e.g. a context far larger than ~20 × 100K chars), don't brute-force it: filter aggressively in Python first to a tractable subset, or stage the task — a cheap coarse pass narrows candidates, then a targeted second pass extracts from the survivors.

Reserve your own tokens for high-level decisions: what to ask next, how to combine sub-LM outputs, when to finalize. Delegate everything else."""

# fmt: on


def system_prompt(
    tools: Sequence[ToolSpec] = (),
    executor_note: str = "",
    collection: CollectionInfo | None = None,
    recursive: bool = True,
) -> str:
    """The reference's system prompt with its orchestrator addendum: our tools where it lists custom
    tools, how to work with a collection (``retriever=``), and what the executor needs the model to
    know (the sandbox's limits) at the end."""
    section = ""
    if tools:
        listed = "\n".join(
            f"- `{t.name}{t.signature}`: {t.doc or 'A custom function'}" for t in tools
        )
        section = f"\n6. Custom tools and data available in the REPL:\n{listed}"
    text = SYSTEM_PROMPT.format(custom_tools_section=section)
    note = f"\n\n{executor_note.strip()}" if executor_note.strip() else ""
    guide = f"\n\n{collection_guide(recursive).rstrip()}" if collection is not None else ""
    return f"{text}\n\n{ORCHESTRATOR_ADDENDUM}{guide}{note}"


def metadata_message(
    question: str,
    info: ContextInfo,
    *,
    max_iterations: int,
    collection: CollectionInfo | None = None,
) -> str:
    """The reference's first user message, then its first turn with the turn-1 safeguard; with a
    collection, its lines (``collection_lines``), and no context line when it is the whole context."""
    kind = "dict" if info.type == "Documents" else info.type
    said = "\n".join(collection_lines(collection)) + "\n" if collection is not None else ""
    if collection is None or not collection.only:
        said += f"Your context is a {kind} of {info.chars} total characters. "
    return (
        f"Answer the following: {question}\n\n"
        f"{said}"
        "Each sub-LLM call can handle roughly ~100k tokens at once.\n\n"
        "You have not interacted with the REPL environment or seen your prompt / context yet. "
        "Look at the context first; do not provide a final answer yet.\n\n"
        f"Turn 1/{max_iterations}:"
    )
