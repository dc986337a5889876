"""What the root model reads and how its code is found."""

from __future__ import annotations

import pytest

from rlm_kernel import describe_context, load_context
from rlm_kernel._prompts import extract_code, metadata_message, prose_final, system_prompt, truncate


@pytest.mark.parametrize(
    ("response", "blocks"),
    [
        ("```repl\nx = 1\n```", ["x = 1"]),
        ("```python\na\n```\ntext\n```py\nb\n```", ["a", "b"]),
        (
            "Let me look.\n```repl\nprint(P[:10])\n```\nThen:\n```repl\nprint(len(P))\n```",
            ["print(P[:10])", "print(len(P))"],
        ),
        ("```\nprint(len(P))\n```", ["print(len(P))"]),  # untagged fence, valid Python
        ("```\nrepl\nprint(len(P))\n```", ["print(len(P))"]),  # the tag on its own line
        ("```\nOperations log, 2026-09-01\n01:28  Dashboards\n```", []),  # a quote, not code
        ("```repl\nx = 1\n```\n```\ny = 2\n```", ["x = 1"]),  # tagged blocks win
        ("```text\nnot code\n```", []),
        ("no code at all", []),
    ],
)
def test_extract_code(response: str, blocks: list[str]) -> None:
    assert extract_code(response) == blocks


@pytest.mark.parametrize(
    ("response", "found"),
    [
        ("FINAL(42)", ("FINAL", "42")),
        ("Reasoning...\nFINAL(the answer (with parens))", ("FINAL", "the answer (with parens)")),
        ('FINAL_VAR("result")', ("FINAL_VAR", "result")),
        ("I will call FINAL(x) later", None),  # not at the start of a line
        ("FINAL(17)\n\nComputed with len(P)", ("FINAL", "17")),  # the prose after it is not in it
        ("FINAL(two\nlines)", ("FINAL", "two\nlines")),
        ("nothing", None),
    ],
)
def test_prose_final(response: str, found: tuple[str, str] | None) -> None:
    assert prose_final(response) == found


def test_truncate_keeps_head_and_tail() -> None:
    text = "H" * 500 + "M" * 10_000 + "T" * 500
    cut = truncate(text, 1_200)
    assert cut.startswith("H" * 500)
    assert cut.endswith("T" * 400)
    assert "characters cut" in cut
    assert truncate("short", 100) == "short"
    assert truncate("x" * 100, 3) == "xx\n… [97 characters cut; print smaller slices] …\nx"


def test_metadata_describes_the_context_without_containing_it() -> None:
    docs = {f"file{i}.py": "x" * (i + 1) for i in range(150)}
    message = metadata_message("Where is main?", describe_context(docs), max_iterations=30)
    assert "Where is main?" in message
    assert "a dict of 150 documents (name -> text; `P[name]` is one document)" in message
    assert "'file0.py': 1" in message
    assert "and 50 more" in message
    assert "x" * 150 not in message
    assert "Turn 1/30" in message


def test_metadata_says_how_to_reach_one_item_of_a_list() -> None:
    message = metadata_message("q", describe_context(["a", "bb"]), max_iterations=30)
    assert "`P` is a list of 2 items (`P[i]` is one item)" in message


@pytest.mark.parametrize(
    "context",
    ["a long text", {"src/a.py": "def a(): pass"}, ["first", "second"]],
    ids=["str", "dict", "list"],
)
def test_the_system_prompts_examples_run_on_the_context_they_describe(context: object) -> None:
    # Small models copy the examples verbatim: an example that fails on P wastes every turn.
    P = load_context(context)
    prompt = system_prompt(describe_context(P), max_output_chars=2_000, recursive=False)
    examples = [block.split("\n```")[0] for block in prompt.split("```repl\n")[1:]]
    assert len(examples) == 2
    for code in examples:
        exec(code, {"P": P})  # raises if the example does not fit P's type
