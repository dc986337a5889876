"""The quality benchmark's tasks and scoring (benchmarks/_quality_tasks.py) and how it counts root
prompt tokens: the figures in benchmarks/README.md rest on these."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from rlm_kernel.testing import fence, scripted_session

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _quality_tasks as tasks
import quality


@pytest.mark.parametrize("kind", tasks.KINDS)
def test_a_task_is_the_same_from_the_same_seed_and_differs_by_seed(kind: str) -> None:
    first, again, other = (tasks.build(kind, "small", seed)[0] for seed in (1, 1, 2))
    assert first == again
    assert (first.context, first.key) != (other.context, other.key)
    assert abs(len(first.context) - tasks.SIZES[kind]["small"]) < 200


def test_the_needle_sits_once_at_its_depth() -> None:
    for task in tasks.build("needle", "large", 1, (0.2, 0.8)):
        assert task.context.count(task.key) == 1
        depth = float(task.id.split("-d")[1].split("-")[0])
        assert abs(task.context.index(task.key) / len(task.context) - depth) < 0.02


def test_the_counting_key_is_the_count() -> None:
    task = tasks.build("counting", "small", 1)[0]
    service = re.search(r"service=(\w+)\?", task.question).group(1)  # type: ignore[union-attr]
    lines = task.context.splitlines()
    assert task.key == str(sum(f"service={service} " in x and "[ERROR]" in x for x in lines))
    assert int(task.key) > 0


def test_the_semantic_key_is_the_most_frequent_topic_and_no_keyword_finds_it() -> None:
    task = tasks.build("semantic", "small", 1)[0]
    phrases = tasks._TOPICS[task.key]
    by_topic = {
        t: sum(any(p in line for p in ps) for line in task.context.splitlines())
        for t, ps in tasks._TOPICS.items()
    }
    assert max(by_topic, key=by_topic.__getitem__) == task.key
    assert task.key not in task.context.lower()
    assert len(phrases) >= 10


@pytest.mark.parametrize(
    ("kind", "answer", "key", "expected"),
    [
        ("needle", "The code is T4-8182-RE.", "T4-8182-RE", 1.0),
        ("needle", "t4 8182 re", "T4-8182-RE", 1.0),
        ("needle", "T4-8182-RF", "T4-8182-RE", 0.0),
        ("needle", "T4-8182-RE " + "x" * 300, "T4-8182-RE", 0.0),
        ("counting", "12", "12", 1.0),
        ("counting", "There are 9 lines.", "12", 0.375),
        ("counting", "none", "12", 0.0),
        ("semantic", "Music.", "music", 1.0),
        ("semantic", "music or sports", "music", 0.0),
        ("semantic", None, "music", 0.0),
    ],
)
def test_scores(kind: str, answer: str | None, key: str, expected: float) -> None:
    assert tasks.score(kind, answer, key) == pytest.approx(expected)


def test_root_prompt_tokens_count_every_root_call_and_no_sub_call() -> None:
    look = fence("print(P[:4])")
    s = scripted_session([look, fence("print(llm_query('x'))"), look, look, "abcd"], ["sub"])
    result = s.run()
    assert result.reason == "loop"
    records = s.trajectory.records
    steps = [r["model_call"]["usage"]["prompt_tokens"] for r in records if r["type"] == "iteration"]
    stopped = [r["model_call"] for r in records if r["type"] == "guard" and r["model_call"]]
    forced = records[-1]["forced"]["model_call"]["usage"]["prompt_tokens"]
    expected = sum(steps) + sum(c["usage"]["prompt_tokens"] for c in stopped) + forced
    assert len(stopped) == 1
    assert forced > 0
    assert quality.root_prompt_tokens(records) == expected
