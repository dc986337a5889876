"""Exporters, checked on real trajectories: scripted runs through the real openai SDK.

The scenarios cover an llm_batch, an rlm_query with a nested child RLM, a traceback, a two-block step, a
person's edit after a rewind, a max_iterations best answer, a compaction and a baseline run. The context
carries a marker that no code prints and no sub-call is sent, so any export holding it leaked ``P``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

import rlm_kernel
from rlm_kernel import RLM, Session, Trajectory, TrajectoryError
from rlm_kernel._examples import examples_dir
from rlm_kernel.exporters import FORMATS, export, import_trajectory, infer_format
from rlm_kernel.exporters._common import walk
from rlm_kernel.models import request_key
from rlm_kernel.testing import SECRET, ChatRequest, ScriptedServer, fence, settings

Serve = Callable[..., ScriptedServer]
MARKER = "ZEBRA-MARKER-7731"
QUESTION = "What do the first lines of the log say about the fox?"


def marked_context() -> str:
    """~12k characters; the marker sits in the middle, far from every slice the scripts touch."""
    lines = "".join(f"line {i:03d}: the quick brown fox jumps\n" for i in range(160))
    return lines + f"hidden paragraph {MARKER}\n" + lines


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def main_run(serve: Serve) -> tuple[Trajectory, ScriptedServer]:
    """Batch, child RLM at depth 2, a traceback, two blocks in one step, then FINAL."""

    def sub(request: ChatRequest) -> str:
        if request.messages[0]["role"] == "system":  # a turn of the child RLM's root model
            if sum(m["role"] == "assistant" for m in request.messages) == 0:
                return fence("print(len(P))")
            return fence('FINAL(llm_query("Gist: " + P[:50]))')
        return f"gist of {len(request.prompt)} chars"

    root = [
        "Let me look first. <script>alert(1)</script>\n" + fence("print(len(P), P[:40])"),
        fence(
            "parts = llm_batch(['Summarise: ' + P[i:i + 100] for i in range(0, 300, 100)])\n"
            "print(parts)"
        ),
        fence("r = rlm_query('What does this say?', P[100:400])\nprint(r)"),
        fence("def f():\n    return 1 / 0\nf()"),
        fence("first = llm_query('first block call')\nimport time\ntime.sleep(0.05)")
        + "\nthen\n"
        + fence("time.sleep(0.02)\nsecond = llm_query('second block call')\nsecond"),
        fence("FINAL(r)"),
    ]
    server = serve({"root": root, "sub": sub})
    result = rlm_kernel.run(QUESTION, marked_context(), **settings(server, max_depth=2))
    assert result.reason == "final", result.message
    return result.trajectory, server


def edited_run(
    serve: Serve, edit: str = "b = a + 100\nprint(b)"
) -> tuple[Trajectory, ScriptedServer]:
    """Three steps, rewind to step 2, a person's code runs instead, then the model finishes."""
    root = [
        fence("a = 1\nprint(a)"),
        fence("b = a + 1\nprint(b)"),
        fence("print(b * 10)"),
        fence("FINAL(b)"),
    ]
    server = serve({"root": root})
    session = Session(QUESTION, marked_context(), config=RLM().with_overrides(settings(server)))
    for _ in range(3):
        session.step()
    session.rewind(2)
    session.execute(edit)
    result = session.run()
    assert result.reason == "final", result.message
    return session.trajectory, server


def limited_run(serve: Serve) -> tuple[Trajectory, ScriptedServer]:
    server = serve({"root": [fence("print(1)"), fence("print(2)"), "My best guess is 3."]})
    result = rlm_kernel.run(QUESTION, marked_context(), **settings(server, max_iterations=2))
    assert result.reason == "max_iterations"
    return result.trajectory, server


def compacted_run(serve: Serve) -> tuple[Trajectory, ScriptedServer]:
    root = [
        fence("print('x' * 3000)"),
        "SUMMARY: printed x",  # the history is over the threshold after one step
        fence("print('z')"),
        fence("FINAL('done')"),
    ]
    server = serve({"root": root})
    overrides = {"compaction": True, "context_window": 2000, "compaction_threshold": 0.5}
    result = rlm_kernel.run(QUESTION, marked_context(), **settings(server, **overrides))
    assert result.reason == "final", result.message
    assert any(r["type"] == "compaction" for r in result.trajectory.records)
    return result.trajectory, server


def followed_up_run(serve: Serve) -> tuple[Trajectory, ScriptedServer]:
    """A first question ends at max_iterations with a best answer; a follow-up is answered in code."""
    root = [
        fence("print(len(P))"),
        fence("print(P[:10])"),
        "My best guess is 5.",
        fence("x = 2\nprint(x)"),
        fence("FINAL(x)"),
    ]
    server = serve({"root": root})
    config = RLM().with_overrides(settings(server, max_iterations=2))
    session = Session(QUESTION, marked_context(), config=config)
    assert session.run().reason == "max_iterations"
    session.follow_up("What is x?")
    result = session.run()
    assert (result.reason, result.answer) == ("final", "2"), result.message
    return session.trajectory, server


def baseline_run(serve: Serve) -> tuple[Trajectory, ScriptedServer]:
    server = serve({"root": ["The fox jumps."]})
    result = rlm_kernel.run(QUESTION, marked_context(), **settings(server, mode="baseline"))
    assert result.reason == "baseline"
    return result.trajectory, server


SCENARIOS = {
    "main": main_run,
    "edited": edited_run,
    "limited": limited_run,
    "compacted": compacted_run,
    "baseline": baseline_run,
    "followed_up": followed_up_run,
}
SUFFIXES = {"json": ".json", "jsonl": ".jsonl", "rlm-jsonl": ".rlm.jsonl", "ipynb": ".ipynb"}
SUFFIXES["sft"] = ".sft.jsonl"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- json / jsonl ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_and_jsonl_round_trip(
    serve: Serve, tmp_path: Path, scenario: str, suffix: str
) -> None:
    trajectory, _ = SCENARIOS[scenario](serve)
    path = trajectory.export(tmp_path / f"run{suffix}")
    assert import_trajectory(path) == trajectory
    assert (
        import_trajectory(export(trajectory, tmp_path / "again.txt", "json"), "json") == trajectory
    )


def test_formats_are_inferred_from_the_longest_suffix() -> None:
    assert infer_format("a/run.rlm.jsonl") == "rlm-jsonl"
    assert infer_format("run.sft.jsonl") == "sft"
    assert infer_format("run.jsonl") == "jsonl"
    assert infer_format("RUN.JSON") == "json"
    assert infer_format("run.ipynb") == "ipynb"
    assert set(FORMATS) == set(SUFFIXES)
    with pytest.raises(TrajectoryError, match=r"\.rlm\.jsonl"):
        infer_format("run.txt")


def test_wrong_formats_and_options_are_clear_errors(serve: Serve, tmp_path: Path) -> None:
    trajectory, _ = limited_run(serve)
    with pytest.raises(TrajectoryError, match=r"ending in \.jsonl"):
        trajectory.export(tmp_path / "run.json", "jsonl")
    with pytest.raises(TrajectoryError, match="Unknown trajectory format 'csv'"):
        trajectory.export(tmp_path / "run.csv", "csv")
    with pytest.raises(TrajectoryError, match=r"no option 'only_successful'.*max_chars"):
        trajectory.export(tmp_path / "run.ipynb", only_successful=False)
    notebook = trajectory.export(tmp_path / "run.ipynb")
    with pytest.raises(TrajectoryError, match="cannot be read back"):
        import_trajectory(notebook)


def test_trajectory_export_works_after_import_rlm_kernel_alone(tmp_path: Path) -> None:
    """``Trajectory.export`` reaches the exporters through ``use_exporter``, never by importing
    them; the package face installs a stand-in, so a user who only imported ``rlm_kernel`` exports
    every format, and importing it loads no exporter."""
    script = [fence("n = len(P)\nprint(n)"), fence("FINAL(n)")]
    code = (
        "import sys, rlm_kernel\n"
        "from rlm_kernel.models import ScriptedClient\n"
        "assert 'rlm_kernel.exporters' not in sys.modules\n"
        f"client = ScriptedClient({script!r})\n"
        "config = rlm_kernel.RLM().with_overrides({'autosave': False})\n"
        "result = rlm_kernel.Session('How long?', 'abcde', client=client, config=config).run()\n"
        "assert result.answer == '5', result\n"
        "assert 'rlm_kernel.exporters' not in sys.modules\n"
        f"for name in ('a.json', 'a.rlm.jsonl', 'a.ipynb'):\n"
        f"    print(result.trajectory.export({str(tmp_path)!r} + '/' + name))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb", "a.json", "a.rlm.jsonl"]


# --- the rebuilt per-turn prompts ----------------------------------------------------------------


def model_prompts(trajectory: Trajectory) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(recorded model call, rebuilt prompt) for every root-model call that stands."""
    pairs = []
    for step in walk(trajectory)[0]:
        if step.type == "iteration":
            pairs.append((step.record["model_call"], [dict(m) for m in step.prompt]))
        elif step.type == "final" and step.record["forced"]:
            pairs.append((step.record["forced"]["model_call"], [dict(m) for m in step.prompt]))
    return pairs


def assert_prompts_match_the_recording(trajectory: Trajectory) -> None:
    pairs = model_prompts(trajectory)
    assert pairs, "no model calls"
    for call, prompt in pairs:
        assert request_key(call["model"], prompt) == call["request_key"]  # type: ignore[arg-type]
    for child in (Trajectory.from_dict(c["child"]) for c in trajectory.subcalls() if c["child"]):
        assert_prompts_match_the_recording(child)


@pytest.mark.parametrize("scenario", ["main", "edited", "limited", "compacted", "followed_up"])
def test_rebuilt_prompts_are_what_the_root_model_was_sent(serve: Serve, scenario: str) -> None:
    trajectory, server = SCENARIOS[scenario](serve)
    assert_prompts_match_the_recording(trajectory)
    sent = [r.messages for r in server.requests if r.model == "root"]
    prompts = [prompt for _, prompt in model_prompts(trajectory)]
    # Compaction calls and superseded steps were requests too; every rebuilt prompt was sent, in order.
    assert all(p in sent for p in prompts)
    assert [sent.index(p) for p in prompts] == sorted(sent.index(p) for p in prompts)
    if scenario in ("main", "limited", "followed_up"):
        assert prompts == sent


def test_the_forced_best_answer_prompt_is_rebuilt(serve: Serve, tmp_path: Path) -> None:
    trajectory, server = limited_run(serve)
    [*_, forced] = read_jsonl(trajectory.export(tmp_path / "run.rlm.jsonl"))
    assert forced["prompt"] == server.requests[-1].messages
    recorded = trajectory.final["forced"]["model_call"]  # type: ignore[index]
    assert request_key(recorded["model"], forced["prompt"]) == recorded["request_key"]


# --- rlm-jsonl ------------------------------------------------------------------------------------


def check_run_metadata(meta: dict[str, Any]) -> None:
    assert isinstance(meta["root_model"], str)
    assert isinstance(meta["max_depth"], int)
    assert isinstance(meta["max_iterations"], int)
    assert meta["backend"] == "openai"
    assert set(meta["backend_kwargs"]) == {"model_name", "base_url"}
    assert meta["environment_type"] == "rlm_kernel"
    assert isinstance(meta["environment_kwargs"], dict)
    assert meta["other_backends"] is None or all(isinstance(b, str) for b in meta["other_backends"])


def check_iteration(entry: dict[str, Any], number: int) -> int:
    """Every field the visualizer reads, with its type; returns the sub-calls seen, nested included."""
    assert entry["type"] == "iteration"
    assert entry["iteration"] == number
    assert isinstance(entry["timestamp"], str)
    assert isinstance(entry["prompt"], list)
    assert all(
        set(m) == {"role", "content"} and isinstance(m["content"], str) for m in entry["prompt"]
    )
    assert isinstance(entry["response"], str)
    assert isinstance(entry["code_blocks"], list)
    assert entry["final_answer"] is None or isinstance(entry["final_answer"], str)
    assert entry["iteration_time"] is None or isinstance(entry["iteration_time"], float)
    seen = 0
    for block in entry["code_blocks"]:
        assert isinstance(block["code"], str)
        result = block["result"]
        assert isinstance(result["stdout"], str)
        assert isinstance(result["stderr"], str)
        assert result["locals"] == {}
        assert isinstance(result["execution_time"], float)
        assert result["final_answer"] is None or isinstance(result["final_answer"], str)
        for call in result["rlm_calls"]:
            seen += 1 + check_subcall(call)
    return seen


def check_subcall(call: dict[str, Any]) -> int:
    assert isinstance(call["root_model"], str)
    assert isinstance(call["prompt"], str)
    assert isinstance(call["response"], str)
    assert isinstance(call["execution_time"], float)
    assert call["execution_time"] > 0
    assert type(call["prompt_tokens"]) is int
    assert type(call["completion_tokens"]) is int
    for model, usage in call["usage_summary"]["model_usage_summaries"].items():
        assert isinstance(model, str)
        assert {"total_calls", "total_input_tokens", "total_output_tokens"} <= set(usage)
    if "error" in call:
        assert call["response"] == ""
    if "metadata" not in call:
        return 0
    check_run_metadata(call["metadata"]["run_metadata"])
    return sum(check_iteration(e, n) for n, e in enumerate(call["metadata"]["iterations"], 1))


def visualizer_question(prompt: list[dict[str, str]]) -> str | None:
    """extractContextQuestion from the reference visualizer (visualizer/src/lib/parse-logs.ts)."""
    for m in prompt:
        if m["role"] == "user" and m["content"]:
            found = re.search(r'original query: "([^"]+)"', m["content"])
            if found:
                return found.group(1)
            if "answer the prompt" in m["content"]:
                continue
            if 50 < len(m["content"]) < 500:
                return m["content"][:200]
    return None


def test_rlm_jsonl_has_what_the_visualizer_reads(serve: Serve, tmp_path: Path) -> None:
    trajectory, _ = main_run(serve)
    meta, *entries = read_jsonl(trajectory.export(tmp_path / "run.rlm.jsonl"))
    assert meta["type"] == "metadata"
    assert isinstance(meta["timestamp"], str)
    check_run_metadata(meta)
    assert (meta["root_model"], meta["max_depth"], meta["other_backends"]) == ("root", 2, ["sub"])
    assert meta["backend_kwargs"]["model_name"] == "root"
    calls = sum(check_iteration(entry, n) for n, entry in enumerate(entries, 1))
    assert calls == sum(1 for _ in trajectory.subcalls()) == 3 + 1 + 1 + 2
    assert QUESTION in (visualizer_question(entries[0]["prompt"]) or "")
    look, batch, child, error, two_blocks, final = entries
    assert "<script>" in look["response"]  # raw, as the model wrote it: the visualizer escapes
    assert [len(b["result"]["rlm_calls"]) for b in batch["code_blocks"]] == [3]
    [call] = child["code_blocks"][0]["result"]["rlm_calls"]
    assert call["metadata"]["run_metadata"]["environment_kwargs"]["depth"] == 1
    [child_step_1, child_step_2] = call["metadata"]["iterations"]
    assert child_step_1["code_blocks"][0]["result"]["stdout"] == "300\n"
    [grandchild] = child_step_2["code_blocks"][0]["result"]["rlm_calls"]
    assert grandchild["prompt"].startswith("Gist: ")
    assert call["usage_summary"]["model_usage_summaries"]["sub"]["total_calls"] == 3
    assert "ZeroDivisionError" in error["code_blocks"][0]["result"]["stderr"]
    assert "return 1 / 0" in error["code_blocks"][0]["result"]["stderr"]
    first, second = two_blocks["code_blocks"]
    assert [c["prompt"] for c in first["result"]["rlm_calls"]] == ["first block call"]
    assert [c["prompt"] for c in second["result"]["rlm_calls"]] == ["second block call"]
    assert second["result"]["stdout"].endswith("Out: 'gist of 17 chars'\n")
    assert final["final_answer"] == final["code_blocks"][-1]["result"]["final_answer"]
    assert final["final_answer"] == trajectory.final["answer"]  # type: ignore[index]
    assert [e["final_answer"] for e in entries[:-1]] == [None] * 5


def test_rlm_jsonl_ends_a_limited_run_with_the_best_answer_entry(
    serve: Serve, tmp_path: Path
) -> None:
    trajectory, _ = limited_run(serve)
    _, *entries = read_jsonl(trajectory.export(tmp_path / "run.rlm.jsonl"))
    for n, entry in enumerate(entries, 1):
        check_iteration(entry, n)
    forced = entries[-1]
    assert (len(entries), forced["code_blocks"], forced["iteration_time"]) == (3, [], None)
    assert forced["final_answer"] == "My best guess is 3."


def test_rlm_jsonl_of_a_baseline_run_leaves_the_context_out(serve: Serve, tmp_path: Path) -> None:
    trajectory, server = baseline_run(serve)
    path = trajectory.export(tmp_path / "run.rlm.jsonl")
    [entry] = read_jsonl(path)[1:]
    assert MARKER in server.requests[0].prompt  # the real call carried the context…
    assert "not exported" in entry["prompt"][1]["content"]  # …its export does not
    assert entry["final_answer"] == "The fox jumps."


def test_a_long_question_is_quoted_for_the_visualizer(serve: Serve, tmp_path: Path) -> None:
    question = "Which " + "very " * 60 + 'long "quoted" question is this?'
    server = serve({"root": [fence("print(1)"), fence("FINAL(1)")]})
    result = rlm_kernel.run(question, "c" * 2000, **settings(server))
    _, first, second = read_jsonl(result.trajectory.export(tmp_path / "run.rlm.jsonl"))
    assert visualizer_question(first["prompt"]) == question.replace('"', "'")
    assert first["prompt"][1]["content"].startswith(server.requests[0].prompt)
    assert second["prompt"] == server.requests[1].messages  # only the first entry carries it


# --- ipynb -----------------------------------------------------------------------------------------


def read_notebook(path: Path) -> Any:
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(notebook)
    return notebook


def outputs(notebook: Any, kind: str) -> list[Any]:
    return [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == kind
    ]


def test_ipynb_is_a_valid_notebook_that_opens_safely_untrusted(
    serve: Serve, tmp_path: Path
) -> None:
    trajectory, _ = main_run(serve)
    path = trajectory.export(tmp_path / "run.ipynb")
    notebook = read_notebook(path)
    title, *cells, answer = notebook.cells
    sha = trajectory.session["context"]["sha256"]
    assert sha[:12] in title.source
    assert QUESTION in title.source
    steps = [c for c in cells if c.cell_type == "code"]
    assert [c.metadata.rlm.iteration for c in steps] == [1, 2, 3, 4, 5, 6]
    assert all(c.metadata.rlm.role == "step" and not c.metadata.rlm.edited_by_user for c in steps)
    assert steps[0].source == "print(len(P), P[:40])"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in cells[0].source
    assert "<script" not in path.read_text(encoding="utf-8")
    mimes = {
        m
        for kind in ("display_data", "execute_result")
        for o in outputs(notebook, kind)
        for m in o.data
    }
    assert mimes == {"text/html", "text/plain"}
    [error] = outputs(notebook, "error")
    assert (error.ename, error.evalue) == ("ZeroDivisionError", "division by zero")
    assert any("return 1 / 0" in line for line in error.traceback)
    stdout = [o.text for o in outputs(notebook, "stream") if o.name == "stdout"]
    assert stdout[0].startswith(f"{len(marked_context())} line 000")
    panels = [o.data["text/html"] for o in outputs(notebook, "display_data")]
    assert len(panels) == 3  # batch, child, two-block step
    assert panels[0].count("<details>") == 3
    assert "child RLM (2 steps)" in panels[1]
    assert "3 sub-calls:" in outputs(notebook, "display_data")[0].data["text/plain"]
    assert answer.metadata.rlm.role == "answer"
    assert "## Answer" in answer.source


def test_ipynb_flags_an_edited_step_and_shows_its_diff(serve: Serve, tmp_path: Path) -> None:
    trajectory, _ = edited_run(serve)
    notebook = read_notebook(trajectory.export(tmp_path / "run.ipynb"))
    steps = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.metadata.rlm.edited_by_user for c in steps] == [False, True, False]
    assert steps[1].source == "b = a + 100\nprint(b)"
    notes = next(c for c in notebook.cells if c.metadata.rlm.get("iteration") == 2)
    assert "edited by a person" in notes.source
    assert "+b = a + 100" in notes.source
    assert "superseded by rewinds" in notebook.cells[0].source


def test_ipynb_marks_compaction_and_limits(serve: Serve, tmp_path: Path) -> None:
    trajectory, _ = compacted_run(serve)
    notebook = read_notebook(trajectory.export(tmp_path / "c.ipynb"))
    [compaction] = [c for c in notebook.cells if c.metadata.rlm.role == "compaction"]
    assert "SUMMARY: printed x" in compaction.source
    limited, _ = limited_run(serve)
    notebook = read_notebook(limited.export(tmp_path / "l.ipynb"))
    assert notebook.cells[-1].source.startswith("## Ended: max_iterations")


# --- sft --------------------------------------------------------------------------------------------


def test_sft_replaces_edited_steps_and_flags_them(serve: Serve, tmp_path: Path) -> None:
    trajectory, server = edited_run(serve)
    [line] = read_jsonl(trajectory.export(tmp_path / "run.sft.jsonl"))
    messages = line["messages"]
    assert [m["role"] for m in messages[:2]] == ["system", "user"]
    assert [m["role"] for m in messages[2:]] == ["assistant", "user"] * 2 + ["assistant"]
    assert messages[4]["content"] == "```repl\nb = a + 100\nprint(b)\n```"
    assert messages[-1]["content"] == fence("FINAL(b)")
    assert messages[:-1] == server.requests[-1].messages
    meta = line["metadata"]
    assert (meta["edited_steps"], meta["reason"], meta["answer"]) == ([2], "final", "101")
    assert (meta["question"], meta["iterations"]) == (QUESTION, 3)


def test_sft_filters_unsuccessful_sessions_and_can_add_children(
    serve: Serve, tmp_path: Path
) -> None:
    limited, _ = limited_run(serve)
    assert read_jsonl(limited.export(tmp_path / "a.sft.jsonl")) == []
    [line] = read_jsonl(limited.export(tmp_path / "b.sft.jsonl", only_successful=False))
    assert line["messages"][-1] == {"role": "assistant", "content": "My best guess is 3."}
    assert "cannot run more code" in line["messages"][-2]["content"]
    assert line["metadata"]["forced_answer"]
    main, _ = main_run(serve)
    assert len(read_jsonl(main.export(tmp_path / "c.sft.jsonl"))) == 1
    root, child = read_jsonl(main.export(tmp_path / "d.sft.jsonl", include_children=True))
    assert (root["metadata"]["depth"], child["metadata"]["depth"]) == (0, 1)
    assert child["metadata"]["question"] == "What does this say?"
    assert child["messages"][-1]["content"].startswith("```repl\nFINAL(")


def test_sft_keeps_the_whole_history_of_a_compacted_session(serve: Serve, tmp_path: Path) -> None:
    trajectory, _ = compacted_run(serve)
    [line] = read_jsonl(trajectory.export(tmp_path / "run.sft.jsonl"))
    assistant = [m["content"] for m in line["messages"] if m["role"] == "assistant"]
    assert assistant == [fence("print('x' * 3000)"), fence("print('z')"), fence("FINAL('done')")]
    assert line["metadata"]["compacted"]


# --- nothing leaks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_export_holds_the_context_or_the_api_key(
    serve: Serve, tmp_path: Path, scenario: str
) -> None:
    trajectory, _ = SCENARIOS[scenario](serve)
    for name, suffix in SUFFIXES.items():
        options: dict[str, Any] = {}
        if name == "sft":
            options = {"only_successful": False, "include_children": True}
        text = trajectory.export(tmp_path / f"{scenario}{suffix}", **options).read_text("utf-8")
        assert MARKER not in text, name
        assert SECRET not in text, name
        assert marked_context() not in text, name


def test_a_key_typed_into_an_edit_is_scrubbed_from_every_export(
    serve: Serve, tmp_path: Path
) -> None:
    trajectory, _ = edited_run(serve, edit=f"key = {SECRET!r}\nb = len(key)\nprint(b)")
    assert SECRET in json.dumps(trajectory.records)  # the record keeps what the person typed
    for suffix in SUFFIXES.values():
        assert SECRET not in trajectory.export(tmp_path / f"run{suffix}").read_text("utf-8")
    assert "[redacted]" in import_trajectory(tmp_path / "run.json").iterations[1]["code"]


# --- follow-ups and reopened sessions --------------------------------------------------------------


def test_a_follow_up_session_exports_both_questions(serve: Serve, tmp_path: Path) -> None:
    trajectory, _ = followed_up_run(serve)
    _, *entries = read_jsonl(trajectory.export(tmp_path / "run.rlm.jsonl"))
    assert [check_iteration(e, n) for n, e in enumerate(entries, 1)] == [0] * 5
    assert [e["final_answer"] for e in entries] == [None, None, "My best guess is 5.", None, "2"]
    assert entries[2]["code_blocks"] == []
    assert "Follow-up question: What is x?" in entries[3]["prompt"][-1]["content"]
    notebook = read_notebook(trajectory.export(tmp_path / "run.ipynb"))
    roles = [c.metadata.rlm.role for c in notebook.cells if c.metadata.rlm.role != "step-notes"]
    assert roles == ["title", "step", "step", "answer", "follow-up", "step", "step", "answer"]
    [line] = read_jsonl(trajectory.export(tmp_path / "run.sft.jsonl"))
    assert line["metadata"]["follow_ups"] == ["What is x?"]
    assert "Your previous answer was: 'My best guess is 5.'" in line["messages"][5]["content"]
    assert line["messages"][-1]["content"] == fence("FINAL(x)")


def test_a_final_undone_by_a_rewind_is_not_exported(serve: Serve, tmp_path: Path) -> None:
    server = serve({"root": [fence("print(1)"), fence("FINAL('first')")]})
    session = Session(QUESTION, marked_context(), config=RLM().with_overrides(settings(server)))
    session.run()
    session.rewind(2)
    session.execute("FINAL('second')")
    trajectory = session.trajectory
    assert_prompts_match_the_recording(trajectory)
    _, *entries = read_jsonl(trajectory.export(tmp_path / "run.rlm.jsonl"))
    assert [e["final_answer"] for e in entries] == [None, "second"]
    notebook = read_notebook(trajectory.export(tmp_path / "run.ipynb"))
    answers = [c.source for c in notebook.cells if c.metadata.rlm.role == "answer"]
    assert len(answers) == 1
    assert "second" in answers[0]


# --- schema version 1 ---------------------------------------------------------------------------

# What version 2 added to the records: the texts each record put into the root model's conversation.
V2_FIELDS = {"iteration": ("assistant",), "compaction": ("note",), "follow_up": ("text",)}


def as_version_1(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records a version-1 rlm_kernel wrote for the same run: version 2 less what it added."""
    old = []
    for record in records:
        record = {k: v for k, v in record.items() if k not in V2_FIELDS.get(record["type"], ())}
        if record["type"] == "session":
            record["schema_version"] = 1
        if record["type"] == "iteration":
            record["subcalls"] = [
                {
                    **c,
                    "child": {"schema_version": 1, "records": as_version_1(c["child"]["records"])},
                }
                if c["child"]
                else c
                for c in record["subcalls"]
            ]
        if record["type"] == "final" and record["forced"]:
            record["forced"] = {
                k: v for k, v in record["forced"].items() if k in ("response", "model_call")
            }
        old.append(record)
    return old


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_a_version_1_file_reads_as_the_version_2_record_of_the_same_run(
    serve: Serve, tmp_path: Path, scenario: str, suffix: str
) -> None:
    trajectory, _ = SCENARIOS[scenario](serve)
    records = json.loads(json.dumps(trajectory.records))
    old = as_version_1(records)
    path = tmp_path / f"v1{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in old), encoding="utf-8")
    else:
        path.write_text(json.dumps({"schema_version": 1, "records": old}), encoding="utf-8")
    assert old != records  # the scenario has something version 1 did not store
    assert Trajectory.load(path).records == records


BUNDLED = sorted(examples_dir().glob("sessions/*.jsonl"))


def test_bundled_sessions_of_version_1_remain_to_load() -> None:
    """Recordings made before schema version 2 are kept among the bundled ones, so loading them
    stays tested on real files (the guarded counting session is a version-2 recording)."""
    versions = {
        p.name: json.loads(p.read_text(encoding="utf-8").splitlines()[0])["schema_version"]
        for p in BUNDLED
    }
    assert set(versions.values()) == {1, 2}, versions


@pytest.mark.parametrize("name", [p.name for p in BUNDLED])
def test_the_bundled_sessions_rebuild_every_prompt(name: str) -> None:
    path = examples_dir() / "sessions" / name
    trajectory = Trajectory.load(path)
    final = trajectory.final
    if final is not None and final["reason"] == "baseline":
        # Its one call carried the whole context, which no record holds: the rest is rebuilt.
        [(_, prompt)] = model_prompts(trajectory)
        assert prompt[1]["content"].startswith("Context:\n[the context P is not exported: ")
        return
    assert_prompts_match_the_recording(trajectory)


def test_a_schema_version_this_release_does_not_know_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v9.jsonl"
    path.write_text(json.dumps({"type": "session", "schema_version": 9}) + "\n", encoding="utf-8")
    with pytest.raises(TrajectoryError, match="schema version 9"):
        Trajectory.load(path)
