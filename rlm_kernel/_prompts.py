"""What the root model reads: the system prompt, the context metadata, per-turn messages, and how its
code is pulled out of a response.

The root prompt never contains the context itself, only its metadata, so its size does not grow with
the context. The question is restated every turn with the turn budget: small models drift without it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from . import _astparse
from . import _stdjson as json
from ._context import ContextInfo

_FENCE = re.compile(r"```(?:repl|python|py)[ \t]*\r?\n(.*?)\r?\n?```", re.DOTALL)
_BARE_FENCE = re.compile(r"```[ \t]*\r?\n(.*?)\r?\n?```", re.DOTALL)
# A prose FINAL( at the start of a line, and its argument up to the first ")" that ends a line: an
# answer may span lines, the prose after it is not part of it. Two searches, not one pattern with a
# lazy ``(.*?)\)\s*$``: that one rescans the rest of the reply from every ``FINAL(`` line that is not
# closed, quadratic in the reply (320 KB of such lines took over a minute). If the first opening has
# no closing after it, no later one has either, so only the first is looked at.
_PROSE_FINAL = re.compile(r"^[^\S\n]*(FINAL_VAR|FINAL|SUBMIT)\(", re.MULTILINE)
_LINE_END_PAREN = re.compile(r"\)[^\S\n]*(?:\n|\Z)")
# DSPy's SUBMIT(answer="...") names its one field.
_FIELD = re.compile(r"^[A-Za-z_]\w*\s*=\s*(?!=)")


@dataclass(frozen=True)
class ToolSpec:
    """A user-supplied function the model may call: listed to it by signature and docstring."""

    name: str
    signature: str
    doc: str


@dataclass(frozen=True)
class CollectionInfo:
    """What the prompt says of a session's collection (``retriever=``): bounded whatever its size."""

    description: str  # the backend's one line, at most ``DESCRIBE_CHARS`` (``_retrieval_tools``)
    count: int  # documents the session may reach (its scope's, for a child given one)
    tools: tuple[str, ...]  # search, get and the optional ones the backend has
    scoped: bool  # a parent RLM chose these documents
    only: bool  # no ``P`` beside it: the collection is the whole context


SYSTEM_PROMPT = """\
You are the root of a Recursive Language Model. You answer a question about a context that is far too \
large to read directly. The context is stored in the variable `P` inside a persistent Python REPL. You \
never see `P` itself: you see facts about it, and you write Python code to inspect it, split it, search \
it and delegate reading of its pieces to sub-models.

Write code in fenced blocks tagged repl:
```repl
{look}
```
Every block in your response runs, in order, as one step; then you see what it printed. Variables, \
functions and imports persist between steps. Only printed output (and the value of a last bare \
expression) comes back to you, cut to about {max_output_chars} characters, so print summaries and \
small slices, not whole documents.

Available in the REPL:
- `P`: the context ({context_type}).
- `llm_query(prompt, model=None) -> str`: ask a sub-model one question. It cannot see `P` or this \
conversation, only the prompt you give it, so put the text it must read into the prompt. It reads about \
{subcall_chars} characters comfortably. With `output=` a type (`llm_query(prompt, output=list[str])`, \
`int`, a dict of a JSON schema) it returns the answer parsed and validated as that type, or an \
`Error: ...` string.
- `llm_batch(prompts, model=None) -> list[str]`: ask many independent questions in parallel; answers \
come back in order. Prefer a few large prompts per batch over thousands of tiny ones.
- `rlm_query(prompt, context=None) -> str`: {rlm_query_doc}
- `SHOW_VARS()`: list the variables you have made.
- `FINAL(value)`: submit `value` as the final answer.
- `FINAL_VAR("name")`: submit the variable `name` as the final answer.
- `answer`: a dict; set `answer["content"] = ...` then `answer["ready"] = True` to submit.{tools}

How to work:
1. Look first: the size, structure and a few samples of `P`.
2. Decide a strategy: search with code (`re`, `str.find`, case-insensitive), chunk `P` and use \
`llm_batch` on the chunks, keep intermediate results in variables, combine them with further sub-calls. \
To read around a match:
```repl
{find}
```
3. Submit only from code, after you have seen the output that supports the answer. Never submit in \
the same response as code whose output you have not seen yet, and never submit a placeholder.
"""

# The two examples above, by the shape of P: small models copy them verbatim, so they must run.
_TEXT_EXAMPLES = (
    "print(len(P), P[:500])",
    'i = P.lower().find("keyword")  # a word from the question\nprint(i, P[max(0, i - 300):i + 300])',
)
_MAPPING_EXAMPLES = (
    "print(len(P), list(P)[:20])",
    "for name, text in P.items():\n"
    '    i = text.lower().find("keyword")  # a word from the question\n'
    "    if i >= 0:\n"
    "        print(name, i, text[max(0, i - 300):i + 300])",
)
_SEQUENCE_EXAMPLES = (
    "print(len(P), str(P[0])[:500])",
    "for n, item in enumerate(P):\n"
    '    i = str(item).lower().find("keyword")  # a word from the question\n'
    "    if i >= 0:\n"
    "        print(n, i, str(item)[max(0, i - 300):i + 300])",
)

# With a collection and no `P`: the same two examples, on the collection's tools.
_COLLECTION_EXAMPLES = (
    'hits = search("keyword")  # words from the question\n'
    "for h in hits:\n"
    '    print(h["id"], round(h["score"], 2), h["title"], "|", h["snippet"])',
    "for h in hits[:3]:\n"
    '    text = get(h["id"])\n'
    '    i = text.lower().find("keyword")\n'
    '    print(h["id"], len(text), text[max(0, i - 300):i + 300])',
)

COLLECTION_GUIDE = """\
## Working with the collection
The documents are not in memory: reach them through `search` and `get` only.
1. Search first, with a few words from the question; search again with other words if the hits miss.
2. Read only the few best documents with `get`, and print slices of them, not whole texts.
3. To read many, delegate: `llm_batch` over prompts that hold `get(id)` texts{children}.
4. Keep what you find in variables and combine it in code.
"""
# Only where rlm_query starts a child RLM (below RLM.max_depth): at the limit it is one plain call.
_SCOPED_CHILDREN = (
    ", or `rlm_query(question, scope=ids)`: a child RLM that searches and reads only those "
    "documents (`scope=False`: none)"
)


def collection_guide(recursive: bool) -> str:
    """How to work with a collection, told to a session whose ``rlm_query`` starts child RLMs
    (``recursive``) or is one plain call (no scoped children to offer)."""
    return COLLECTION_GUIDE.format(children=_SCOPED_CHILDREN if recursive else "")


# The collection's description is cut to this many characters, so the prompt is the same size for
# any collection up to the digits of its count (which a backend's own line may name as well).
DESCRIBE_CHARS = 120


def collection_lines(collection: CollectionInfo) -> list[str]:
    """The metadata message's lines on the collection: backend, documents, tools (bounded)."""
    whose = "chosen for you by the parent RLM" if collection.scoped else "in the collection"
    tools = ", ".join(f"{name}()" for name in collection.tools)
    return [
        f"Your collection: {collection.description}",
        f"Documents {whose}: {collection.count:,}. Tools: {tools}.",
    ]


_RLM_QUERY_DOC = {
    True: "start a child RLM with its own REPL on `context` (default: the prompt itself); "
    "it answers `prompt` the way you answer yours. Use it for sub-problems that need code.",
    False: "like llm_query here (recursion depth is limited).",
}


def system_prompt(
    info: ContextInfo,
    *,
    max_output_chars: int,
    recursive: bool,
    tools: Sequence[ToolSpec] = (),
    subcall_chars: int = 100_000,
    executor_note: str = "",
    collection: CollectionInfo | None = None,
) -> str:
    """``executor_note`` is what the executor needs the model to know (the sandbox's limits);
    ``collection`` adds how to work with one (``COLLECTION_GUIDE``)."""
    tool_lines = "".join(
        f"\n- `{t.name}{t.signature}`: {t.doc or '(no description)'}" for t in tools
    )
    look, find = (
        _TEXT_EXAMPLES
        if info.type == "str"
        else _MAPPING_EXAMPLES
        if info.type in ("Documents", "dict")
        else _SEQUENCE_EXAMPLES
    )
    only = collection is not None and collection.only
    if only:
        look, find = _COLLECTION_EXAMPLES
    text = SYSTEM_PROMPT.format(
        look=look,
        find=find,
        max_output_chars=f"{max_output_chars:,}",
        context_type="None here: the documents are in the collection"
        if only
        else _describe_type(info),
        subcall_chars=f"{subcall_chars:,}",
        rlm_query_doc=_RLM_QUERY_DOC[recursive],
        tools=tool_lines,
    )
    if collection is not None:
        text = f"{text}\n{collection_guide(recursive)}"
    return f"{text}\n{executor_note.strip()}\n" if executor_note.strip() else text


def _describe_type(info: ContextInfo) -> str:
    if info.type == "str":
        return "a str"
    if info.type in ("Documents", "dict"):
        # Small models read "a Documents" as opaque; say how to get at one document.
        return f"a dict of {info.docs:,} documents (name -> text; `P[name]` is one document)"
    return f"a {info.type} of {info.docs:,} items (`P[i]` is one item)"


def metadata_message(
    question: str,
    info: ContextInfo,
    *,
    max_iterations: int,
    collection: CollectionInfo | None = None,
) -> str:
    """The first user message: the question, what ``P`` (and the collection) is, the first turn."""
    if collection is not None and collection.only:
        lines = [f"Question: {question}", "", *collection_lines(collection), ""]
        return "\n".join(
            [*lines, _turn_line(question, 1, max_iterations, first=True, where="the collection")]
        )
    lines = [
        f"Question: {question}",
        "",
        f"Your context `P` is {_describe_type(info)} with {info.chars:,} characters in total.",
    ]
    if collection is not None:
        lines[2:2] = collection_lines(collection)
    if info.docs > 1 or info.type != "str":
        shown = ", ".join(
            f"{name!r}: {n:,}" if name else f"{n:,}"
            for name, n in zip(_padded(info.names, len(info.lengths)), info.lengths, strict=True)
        )
        more = (
            f", … and {info.docs - len(info.lengths):,} more"
            if info.docs > len(info.lengths)
            else ""
        )
        lines.append(f"Document lengths (chars): [{shown}{more}]")
    if info.skipped:
        lines.append(skipped_line(info.skipped))
    if info.prefix:
        lines.append(f"It begins: {info.prefix!r}")
    lines += ["", _turn_line(question, 1, max_iterations, first=True)]
    return "\n".join(lines)


_SKIP_REASONS_SHOWN = 8
_SKIP_EXAMPLES_SHOWN = 2
_SKIP_PATH_CHARS = 60


def skipped_line(groups: Sequence[tuple[str, int, Sequence[str]]]) -> str:
    """What loading left out of ``P``, by reason with a path or two each: bounded whatever the tree
    (a directory counts once, what is below it unlisted), so the model knows not to look for it."""

    def path(rel: str) -> str:
        return repr(rel if len(rel) <= _SKIP_PATH_CHARS else "…" + rel[-_SKIP_PATH_CHARS:])

    shown = [
        f"{n:,} {reason} ({', '.join(map(path, examples[:_SKIP_EXAMPLES_SHOWN]))}"
        f"{', …' if n > _SKIP_EXAMPLES_SHOWN else ''})"
        for reason, n, examples in groups[:_SKIP_REASONS_SHOWN]
    ]
    rest = sum(n for _, n, _ in groups[_SKIP_REASONS_SHOWN:])
    if rest:
        shown.append(f"{rest:,} more for other reasons")
    return f"Not loaded into `P` (skipped when loading): {'; '.join(shown)}."


def _padded(names: Sequence[str], n: int) -> list[str]:
    return list(names[:n]) + [""] * (n - len(names))


def _turn_line(
    question: str, turn: int, max_iterations: int, *, first: bool = False, where: str = "`P`"
) -> str:
    left = max_iterations - turn + 1
    if first:
        return (
            f"Turn 1/{max_iterations}. You have not looked at {where} yet: start by exploring it "
            "with code. Do not answer yet."
        )
    return (
        f"Turn {turn}/{max_iterations} ({left} left). Question: {question}\n"
        # Small models otherwise state the answer in prose and never submit it.
        "Continue with code, or, once the output above supports the answer, submit it from a repl "
        'block with FINAL(...) or FINAL_VAR("name").'
    )


def observation_message(
    output: str, *, question: str, turn: int, max_iterations: int, notes: Sequence[str] = ()
) -> str:
    parts = [f"REPL output:\n{output}" if output else "REPL output: (nothing was printed)"]
    parts += [f"Note: {note}" for note in notes]
    parts.append(_turn_line(question, turn, max_iterations))
    return "\n\n".join(parts)


NO_CODE_NOTE = (
    "Your response contained no ```repl code block, so nothing ran. Write code in a ```repl block, "
    "or submit with FINAL(...) once you have seen output that supports the answer."
)

_RULE_WORDS = {"repeated_code": "the same code as", "repeated_output": "the same output as"}


def repeat_note(iteration: int, of: int, rule: str, *, left: int) -> str:
    """The loop guard's warning, in the observation of a step that repeats an earlier one."""
    again = (
        "the next repeat will not run and ends the run"
        if left <= 1
        else f"{left} more repeats end the run"
    )
    return (
        f"Step {iteration} has {_RULE_WORDS[rule]} step {of}, so it found nothing new: its output "
        f"is already above, at step {of}. If that output answers the question, submit it now with "
        'FINAL(...) or FINAL_VAR("name") in a repl block; otherwise try something different '
        f"(another search term, another part of P, a sub-call). Careful: {again}."
    )


def loop_stop_reason(iteration: int, of: int, rule: str) -> str:
    """Why the loop guard ended a run, as the best-answer call and the final message say it."""
    return (
        f"step {iteration} repeated step {of} again ({_RULE_WORDS[rule]} it), so the loop was ended"
    )


def prose_nudge_note(answer: str, *, printed: bool) -> str:
    """The one nudge for an answer stated in prose (or printed) but never submitted."""
    how = "printed an answer" if printed else "stated an answer in prose"
    return (
        f"You {how}, but that does not submit it: only FINAL(...) in a repl block does. If "
        f"{answer!r} is your answer, reply with exactly this block:\n```repl\nFINAL({answer!r})\n```\n"
        "Otherwise continue with code."
    )


def output_instructions(name: str | None, schema: str, *, fields: bool) -> str:
    """The system prompt's section for a typed answer (``output=``): the shape, and how to submit it.
    ``name`` is the type's (None for an untitled JSON schema), ``schema`` the JSON schema on one line;
    ``fields`` says the answer is an object."""
    shape = f"a value of type {name}" if name else "a JSON value"
    by_fields = (
        " or SUBMIT(field=..., ...) with its fields as keyword arguments," if fields else ","
    )
    return (
        f"## The answer's shape\n"
        f"The final answer must be {shape}, matching this JSON schema:\n{schema}\n"
        f"Submit it as a Python value, not prose: FINAL(value), SUBMIT(value){by_fields} "
        'FINAL_VAR("name") for a variable that holds it, or answer["content"] = value. A JSON string '
        "of the value is accepted too. The answer is validated when you submit it: if it does not "
        "match, you are told why and submit a corrected one.\n"
    )


def invalid_answer_note(name: str, message: str, *, attempts: int) -> str:
    """What the model is told when its typed answer failed validation: the validator's message, and
    how many more submissions it has (``attempts``; the last one that does not match ends the run)."""
    return (
        f"Your answer does not match the expected shape ({name}), so it was not accepted. "
        f"The validator says:\n{message}\nCorrect the answer and submit it again "
        f"({attempts} more attempt{'s' if attempts != 1 else ''} to submit a valid answer)."
    )


def invalid_answer_reason(name: str, repairs: int, message: str) -> str:
    """Why a run ended without a valid typed answer (the final message)."""
    said = " ".join(" ".join(message.split()).split(" ")[:40])  # one line, its start
    tries = f"after {repairs} repair(s)" if repairs else "and no repair was allowed"
    return (
        f"The answer did not match {name} {tries} (RLM.output_repairs = {repairs}); the last "
        f"answer is kept as text, unvalidated. The validator said: {said}"
    )


def sub_output_instructions(name: str, schema: str) -> str:
    """What a typed sub-call (``llm_query(prompt, output=...)``) adds to its prompt."""
    return (
        f"Reply with only a JSON value of type {name}, matching this JSON schema, and nothing "
        f"else:\n{schema}"
    )


def sub_output_retry(prompt: str, reply: str, message: str) -> str:
    """The second ask of a typed sub-call whose first reply did not match."""
    return (
        f"{prompt}\n\nYour previous reply was:\n{reply}\nIt does not match; the validator says:\n"
        f"{message}\nReply again with only the corrected JSON value."
    )


BEST_ANSWER_PROMPT = (
    "You cannot run more code: {reason}. Based on everything you have seen so far, give your best "
    "final answer to the question now, as plain text without code. Question: {question}"
)


BASELINE_SYSTEM = "Answer the question using the context. Be concise and specific."

COMPACTION_PROMPT = (
    "Summarise your progress so far in 1-3 paragraphs: what you found, which variables hold "
    "intermediate results, and what remains to do. This summary replaces your history."
)


def compacted_note(after: int) -> str:
    """The message that follows the summary once the history up to iteration ``after`` is compacted."""
    return (
        f"Your history up to iteration {after} was compacted into the summary above; the REPL still "
        "holds every variable (SHOW_VARS() lists them). Continue."
    )


def follow_up_text(question: str, previous: str | None) -> str:
    """How a follow-up question reaches the model, after its previous answer if it gave one."""
    text = (
        f"Follow-up question: {question}\nThe REPL still holds every variable you made "
        "(SHOW_VARS() lists them). Continue with code."
    )
    return text if previous is None else f"Your previous answer was: {previous!r}\n\n{text}"


def context_text(context: object) -> str:
    """The whole context as text, for baseline mode (the only place the context enters a prompt)."""
    if isinstance(context, str):
        return context
    if isinstance(context, dict):
        return "\n\n".join(f"=== {key} ===\n{_as_text(value)}" for key, value in context.items())
    if isinstance(context, list):
        return "\n\n".join(f"=== [{i}] ===\n{_as_text(value)}" for i, value in enumerate(context))
    return _as_text(context)


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def extract_code(response: str) -> list[str]:
    """All ```repl / ```python blocks of a response, in order, stripped.

    Small models often drop the language tag. When a response has no tagged block, untagged blocks
    count too, but only those that parse as Python: a model quoting the context in a bare fence must
    not have that quote run.
    """
    tagged = [block.strip() for block in _FENCE.findall(response) if block.strip()]
    if tagged:
        return tagged
    bare = [_untag(block) for block in _BARE_FENCE.findall(response)]
    return [block for block in bare if _is_python(block)]


def _untag(block: str) -> str:
    """Small models also write the tag on the fence's first line: ```\nrepl\ncode```."""
    first, _, rest = block.strip().partition("\n")
    return rest.strip() if first.strip() in ("repl", "python", "py") else block.strip()


def _is_python(text: str) -> bool:
    return bool(text.strip()) and parse_code(text) is not None


# What Python's parser raises for code it cannot read: a syntax error, a NUL byte (ValueError), and
# for pathologically nested code (``-`` * 100000, a 100000-term sum) its own stack running out, as
# MemoryError ("too deeply nested") or RecursionError; neither may escape from reading a reply.
UNPARSABLE = (SyntaxError, ValueError, MemoryError, RecursionError)


def parse_code(code: str) -> ast.Module | None:
    """``code`` parsed, or None when Python cannot parse it (for whatever reason: see UNPARSABLE)."""
    try:
        return _astparse.parse(code)
    except UNPARSABLE:
        return None


def prose_final(response: str) -> tuple[str, str] | None:
    """A paper-style ``FINAL(answer)`` / ``FINAL_VAR(name)`` line, or DSPy's ``SUBMIT(answer)``, in a
    response without code: the kind and the argument (a value, or for ``FINAL_VAR`` a name)."""
    opening = _PROSE_FINAL.search(response)
    if opening is None:
        return None
    closing = _LINE_END_PAREN.search(response, opening.end())
    if closing is None:
        return None
    kind, argument = opening.group(1), response[opening.end() : closing.start()].strip()
    if kind == "SUBMIT":
        argument = _FIELD.sub("", argument, count=1)
    if len(argument) >= 2 and argument[0] == argument[-1] and argument[0] in "'\"":
        argument = argument[1:-1]
    return kind, argument


OUTPUT_CUT = "print smaller slices"
# A reply of the model's, cut where it goes back into the conversation (RLM.max_reply_chars).
REPLY_CUT = "your reply was longer than this conversation keeps; its code ran in full"


def truncate(text: str, limit: int, hint: str = OUTPUT_CUT) -> str:
    """Keep the head and the tail of ``text`` around a marker that says how much was cut (and
    ``hint``, what the model should know about it)."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n… [{cut:,} characters cut; {hint}] …\n{text[-tail:]}"
