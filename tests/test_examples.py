"""The bundled examples run offline: every example notebook under nbclient, and `rlm-kernel demo`."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import rlm_kernel
from rlm_kernel.testing import kernel_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(p.name for p in EXAMPLES.glob("*.ipynb"))
# What each notebook must show when its recordings replay: the outcomes its prose explains.
SHOWS = {
    "quickstart.ipynb": [
        "1,132,069 characters; it begins: 'Operations log, 2025-11-01 (Saturday)",
        "NameError: name 'incident_lines' is not defined",  # the model's slip in step 2
        "llm_query · local",  # the sub-call's panel in step 3
        "done final | Root cause and fix of the incident:",
        "it was mistakenly set to 50 instead",
        "3 steps; 4829 tokens recorded",
    ],
    "how_rlm_works.ipynb": [
        "P is log: True",
        "In the recording a person ran their own code here instead",
        "2 lines mention the keypad:",
        "answer: 7351 | final",
        "step 2 by a person: notes = ",
        "34 reviews were classified DELIVERY, average 2.29 stars",
        "Loop guard: step 3 has the same code as step 2",  # the model repeats the person's step
        "Loop guard: step 4 (not run) repeated step 2 again",
        "truth: 15 delivery complaints, average 2.0 stars",
        "Ended: loop",
        "direct call: 3 reviews complain about the delivery",
    ],
    "codebase_qa.ipynb": [
        "<Documents: 11 documents, 59,265 chars from 'python-dotenv'>",
        "In the recording a person ran their own code here instead",
        "rlm_query · local",  # the child RLM's panel inside step 2
        "If you do not specify `override`, the new value will only be set if the variable does not exist",
        " 105              if k in os.environ and not self.override:",
        "max_iterations after 6 steps",
    ],
    "export_and_replay.ipynb": ["exported/session.rlm.jsonl", "True"],
    "typed_answers.ipynb": [
        "Your answer does not match the expected shape (Incident)",  # told the model in step 2
        "step 2 did not match, the model was told:",
        "outage_minutes\n  Input should be a valid integer, unable to parse string as an integer",
        "value: Incident(service='checkout-web', root_cause='CHG-2291 set max_pool_size=50",
        "minutes + 4 = 60",
        '"outage_minutes": 56}',
        "The final answer must be a value of type Incident, matching this JSON schema:",
    ],
    "async_api.ipynb": [
        "offline: a scripted stand-in answers | 1,132,069 characters",
        "How did incident #4426 start? [final, 2 steps]",
        "    02:35  incident #4426 opened: elevated 429s from notification-worker",
        "step 1 printed: 8 14:02  incident #4417 opened",
        "finished (final): 14:02  incident #4417 opened",
        "done | trajectory:",
    ],
    "sub_tools.ipynb": [
        "llm_query · scripted-sub · 4 tool calls",  # the sub-call's panel in step 2
        'turn 1: change_record({"change_id": "CHG-229"}) -> Error: MCPToolError:',
        "no change 'CHG-229' in the tracker",
        'turn 2: change_record({"change_id": "CHG-2291"}) -> {\n  "id": "CHG-2291",',
        'turn 3: team_of({"person": "li.wei"}) -> platform',
        "answer: CHG-2291 (checkout-web: tune ledger-db client settings) caused it: requested by "
        "dana.okafor (payments), approved by li.wei (platform).",
        "change_record (mcp:python mcp_changes.py): The change tracker's record of a change",
        "team_of (python): The team a person",
        "['assistant', 'system', 'user'] False",
    ],
    "corpus_qa.ipynb": [
        "30,000 issues, 11,785,798 characters, about 2,946,449 tokens",
        "the window: 128,000 tokens; the collection is 23 times that",
        "SQLite FTS5 index issues.sqlite (30,000 documents) | ",
        # How many hits the searches pool depends on the ranking; who leads each count does not.
        " distinct issues from 5 searches",
        "all of them, by repository: [('quartz-gateway', ",  # the decoy leads a count without reading
        "open ones, by repository: [('orbit-agent', ",
        "truth: orbit-agent (311 open leak issues in all), version v2.14.3; most leak issues in all: "
        "quartz-gateway",
        "the answer matches the ground truth: True",
    ],
}


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/ to run in (so runs leave the checkout clean), and no key anywhere."""
    for key, value in kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    return work


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_example_notebook_runs_offline(offline: Path, name: str) -> None:
    nb = nbformat.read(offline / name, as_version=4)
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(offline)}}).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors, errors
    html = "\n".join(
        o.get("data", {}).get("text/html", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    if any("%rlm" in c.source for c in nb.cells if c.cell_type == "code"):
        assert "In [rlm 1]:" in html  # a session ran in the notebook
    shown = "\n".join(
        [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        + [unescape(re.sub(r"<[^>]+>", "", html))]
    )
    missing = [s for s in SHOWS[name] if s not in shown]
    assert not missing, missing


# What the quickstart recording's answer must say: the root cause and the fix of incident #4417 as
# examples/make_ops_log.py wrote them into the log (its GROUND_TRUTH).
QUICKSTART_ANSWER = ("max_pool_size", "set to 50 instead", "500", "CHG-2291", "roll back")
# Lines the kernel machinery (jupyter_client, ipykernel, traitlets, nbclient) would add to the demo's
# output: "[IPKernelApp] WARNING | …", "…Warning: …" from the warnings module.
MACHINERY_WARNING = re.compile(r"warn", re.IGNORECASE)


def test_the_quickstart_recording_is_a_real_rlm_run_over_a_large_context() -> None:
    recording = rlm_kernel.Trajectory.load(EXAMPLES / "sessions" / "quickstart.jsonl")
    assert recording.session["context"]["chars"] >= 1_000_000
    final = recording.final
    assert final is not None
    assert final["reason"] == "final", final
    assert final["forced"] is None
    assert any(it["subcalls"] for it in recording.iterations), "no sub-call in a standing step"
    assert all(not it["edited_by_user"] for it in recording.iterations)  # the model's own code
    assert all(s in final["answer"] for s in QUICKSTART_ANSWER), final["answer"]


def test_the_ops_log_is_what_its_generator_writes() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "make_ops_log.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    recording = rlm_kernel.Trajectory.load(EXAMPLES / "sessions" / "quickstart.jsonl")
    digest = hashlib.sha256((EXAMPLES / "ops-log.txt").read_text(encoding="utf-8").encode())
    assert recording.session["context"]["sha256"] == digest.hexdigest()


def test_the_corpus_qa_recording_answers_what_the_generator_planted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    # Modules of examples/, found on the path the notebook runs in.
    made = importlib.import_module("make_corpus_qa_recording")
    make_issues = importlib.import_module("make_issues")

    recording = rlm_kernel.Trajectory.load(EXAMPLES / "sessions" / "corpus_qa.jsonl")
    assert recording.session["question"] == made.QUESTION
    notebook = nbformat.read(EXAMPLES / "corpus_qa.ipynb", as_version=4)
    assert any(f'%rlm "{made.QUESTION}" --retriever idx' in c.source for c in notebook.cells)
    described = f"SQLite FTS5 index {made.INDEX_NAME} ({made.N:,} documents)"
    assert recording.session["retriever"]["describe"] == described  # no path of the machine
    truth = make_issues.truth(make_issues.issues(made.N))
    planted = make_issues.planted(made.N)
    assert (truth["repo"], truth["version"]) == (planted["repo"], planted["version"])
    assert truth["most_in_all"] == planted["most_in_all"]  # the decoy is there to be fallen for
    final = recording.final
    assert final is not None
    assert final["reason"] == "final", final
    answer = final["answer"]
    assert answer is not None
    assert answer.startswith(f"{truth['repo']}:"), answer
    assert truth["version"] in answer
    code = "\n".join(it["code"] for it in recording.iterations)
    assert "search(" in code
    assert "get(" in code  # the state is read from the issue, not from the hit


@pytest.mark.timeout(600)
def test_demo_replays_the_quickstart_and_writes_the_notebook_and_exports(
    offline: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "rlm_kernel.cli", "demo", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=500, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert all(s in done.stdout for s in QUICKSTART_ANSWER), done.stdout
    assert "── step 1" in done.stderr
    assert "── answer (final)" in done.stderr
    assert "sub-call(s)" in done.stderr
    noise = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if MACHINERY_WARNING.search(line) and not line.lstrip().startswith(("│", "→"))
    ]
    assert not noise, noise  # the model's code and output may say "warning"; nothing else may
    for name in (
        "quickstart.ipynb",
        "quickstart.trajectory.json",
        "quickstart.rlm.jsonl",
        "quickstart.trajectory.ipynb",
        "quickstart.sft.jsonl",
    ):
        assert (out / name).is_file(), name
        assert f"  {out / name}\n" in done.stderr, name  # listed under "Wrote:"
    executed = nbformat.read(out / "quickstart.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")


def test_demo_lab_without_jupyterlab_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlm_kernel import _demo
    from rlm_kernel.errors import ConfigError

    real = _demo.importlib.util.find_spec
    monkeypatch.setattr(
        _demo.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "jupyterlab" else real(name, *a),
    )
    with pytest.raises(ConfigError) as err:
        _demo.open_lab(tmp_path / "demo")
    assert 'pip install "rlm_kernel[lab]"' in err.value.fix
    assert not (tmp_path / "demo").exists()


def test_demo_lab_opens_jupyterlab_on_a_copy_in_the_out_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("jupyterlab")
    from rlm_kernel import _demo

    calls: list[tuple[list[str], Path]] = []
    monkeypatch.setattr(
        _demo.subprocess, "call", lambda args, cwd: calls.append((args, Path(cwd))) or 0
    )
    out = tmp_path / "demo"
    assert _demo.open_lab(out) == 0
    [(args, cwd)] = calls
    assert args == [sys.executable, "-m", "jupyterlab", "quickstart.ipynb"]
    assert cwd == out
    for name in ("quickstart.ipynb", "ops-log.txt", "sessions/quickstart.jsonl"):
        assert (out / name).is_file(), name
