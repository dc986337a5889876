"""Strategy tips: a block added to the root's system prompt on how to go about a question.

``RLM.strategy`` is one name of ``STRATEGIES``, several joined by ``+`` (``search-first+verify``), or a
person's own tip text (anything with a space in it). The RLM blog measured tips like these lifting a
research task from about 55 % to about 70 %; ``benchmarks/quality.py`` measures each one here.

The examples are code that runs as written, because small models copy examples verbatim.
"""

from __future__ import annotations

import difflib
import re

from .errors import ConfigError

STRATEGIES: dict[str, str] = {
    "search-first": """\
Strategy: search first. Before any sub-call, find the parts of `P` that matter with code: search \
for the question's key words, and other spellings of them, case-insensitively, and print each match \
with some text around it:
```repl
import re
for m in re.finditer(r"keyword|other spelling", P, re.IGNORECASE):  # words from the question
    print(m.start(), P[max(0, m.start() - 300):m.end() + 300])
```
Send only the passages you found to llm_query, never the whole of `P`. If nothing matches, try \
synonyms before reading `P` in chunks.""",
    "map-reduce": """\
Strategy: map-reduce. Split `P` into chunks, ask the same question about every chunk in one \
llm_batch call (each prompt holds the instruction and the chunk's text), then combine the answers \
in code (add up counts, collect names, take a vote) or with one more llm_query, and submit:
```repl
size = 20000
chunks = [P[i:i + size] for i in range(0, len(P), size)]
ask = "Answer from this text only: (the question, in your words). Be brief."
answers = llm_batch([ask + "\\n\\nText:\\n" + chunk for chunk in chunks])
for n, a in enumerate(answers):
    print(n, a[:300])
```
Write the question into `ask` before you run it.""",
    "verify": """\
Strategy: verify. Once you have a candidate answer, check it before you submit it: find the \
passage of `P` that supports it, and ask llm_query whether that passage really answers the \
question ("Does this text say that ...? Reply yes or no, then quote the words that say so."). \
Submit only when the check agrees; otherwise keep looking.""",
}

_NAMES = re.compile(r"^[\w-]+(\+[\w-]+)*$")


def strategy_block(setting: str) -> str:
    """The tip text ``RLM.strategy`` adds to the system prompt ('' for none)."""
    text = setting.strip()
    if not text:
        return ""
    if not _NAMES.match(text):
        return f"Strategy:\n{text}" if not text.lower().startswith("strategy") else text
    return "\n\n".join(STRATEGIES[name] for name in check_strategy(text))


def check_strategy(setting: str) -> list[str]:
    """The strategy names in ``setting``, or [] for tip text; a name that is not one is an error
    (a typo must not silently become a one-word tip)."""
    text = setting.strip()
    if not text or not _NAMES.match(text):
        return []
    names = text.split("+")
    for name in names:
        if name not in STRATEGIES:
            close = difflib.get_close_matches(name, STRATEGIES, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"RLM.strategy: {name!r} is not a strategy",
                fix=f"{hint}Strategies: {', '.join(STRATEGIES)} (join several with '+'), or give "
                "your own tips as text",
            )
    return names
