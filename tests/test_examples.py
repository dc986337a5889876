"""The bundled examples run offline: every example notebook under nbclient, and `rlm-kernel demo`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import nbformat
import pytest
from conftest import kernel_env
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(p.name for p in EXAMPLES.glob("*.ipynb"))
# What each notebook must show when its recordings replay: the outcomes its prose explains.
SHOWS = {
    "quickstart.ipynb": ["notification-worker"],
    "how_rlm_works.ipynb": [
        "P is log: True",
        "In the recording a person ran their own code here instead",
        "2 lines mention the keypad:",
        "answer: 7351 | final",
        "step 2 by a person: notes = ",
        "34 reviews were classified DELIVERY, average 2.24 stars",
        "truth: 15 delivery complaints, average 2.0 stars",
        "Ended: max_iterations",
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
    assert "In [rlm 1]:" in html  # a session ran in the notebook
    shown = "\n".join(
        [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        + [unescape(re.sub(r"<[^>]+>", "", html))]
    )
    missing = [s for s in SHOWS[name] if s not in shown]
    assert not missing, missing


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
    assert "notification-worker" in done.stdout
    assert "── step 1" in done.stderr
    for name in (
        "quickstart.ipynb",
        "quickstart.trajectory.json",
        "quickstart.rlm.jsonl",
        "quickstart.trajectory.ipynb",
        "quickstart.sft.jsonl",
    ):
        assert (out / name).is_file(), name
    executed = nbformat.read(out / "quickstart.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
