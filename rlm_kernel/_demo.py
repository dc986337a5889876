"""``rlm-kernel demo``: the five-minute tour, offline.

It replays the bundled quickstart session — recorded from a real model run — in the terminal: the
model's code runs again for real on the bundled context while every model answer comes from the
recording, so it needs no API key. It prints each step as it happens and the answer, then writes the
executed quickstart notebook and the session's exports beside each other. ``--lab`` opens JupyterLab
on a copy of the notebook in the same folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ._events import CodeReady, Event, Finished, IterationFinished
from ._examples import RECORDING, examples_dir
from ._replay import replay_session
from ._session import Session
from ._trajectory import Trajectory
from .errors import ConfigError

if TYPE_CHECKING:
    from traitlets.config import Config

QUICKSTART = "quickstart.ipynb"
DEFAULT_OUT = Path("rlm-demo")  # rlm-kernel demo --out's default
CONTEXT = "ops-log.txt"
EXPORTS = {
    "json": "quickstart.trajectory.json",
    "rlm-jsonl": "quickstart.rlm.jsonl",
    "ipynb": "quickstart.trajectory.ipynb",
    "sft": "quickstart.sft.jsonl",
}


class Transcript:
    """Prints each step of a session as it runs: its code, a few lines of output, its sub-calls."""

    def __init__(self, session: Session, stream: TextIO, *, lines: int = 8) -> None:
        self._stream = stream
        self._lines = lines
        session.subscribe(self.on_event)

    def _print(self, text: str) -> None:
        # "\r\x1b[K" clears a progress line drawn on the same terminal; it redraws itself after.
        prefix = "\r\x1b[K" if self._stream.isatty() else ""
        self._stream.write(prefix + text + "\n")
        self._stream.flush()

    def on_event(self, event: Event) -> None:
        if event.depth > 0:
            return
        if isinstance(event, CodeReady):
            self._print(f"\n── step {event.iteration} " + "─" * 50)
            for line in "\n\n".join(event.blocks).splitlines() or ["(no code)"]:
                self._print(f"  │ {line}")
        elif isinstance(event, IterationFinished):
            output = event.record["output"].splitlines()
            shown = output[: self._lines]
            for line in shown:
                self._print(f"  → {line[:160]}")
            if len(output) > len(shown):
                self._print(f"  → … {len(output) - len(shown)} more lines")
            calls = event.record["subcalls"]
            if calls:
                self._print(f"  ⤷ {len(calls)} sub-call(s)")
            for note in event.record["notes"]:
                self._print(f"  ! {note}")
        elif isinstance(event, Finished):
            self._print(f"\n── answer ({event.reason}) " + "─" * 46)


def run_demo(out: Path, *, speed: float | None, stream: TextIO) -> int:
    examples = examples_dir()
    recording = Trajectory.load(examples / RECORDING)
    session = replay_session(recording, None, examples / CONTEXT, speed=speed)
    stream.write(
        f"Replaying a recorded RLM session (model: {recording.session['models']['root']}) offline.\n"
        f"Question: {session.question}\n"
        f"Context: {examples / CONTEXT} ({session.context_info.chars:,} characters; the model never "
        "sees it whole, only what its code prints)\n"
    )
    Transcript(session, stream)
    progress = None
    if stream.isatty():
        from ._progress import ProgressLine

        progress = ProgressLine(session, stream)
    try:
        result = session.run()
    finally:
        if progress is not None:
            progress.close()
    print(result.answer, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        result.trajectory.export(out / name, fmt)
        for fmt, name in EXPORTS.items()
        if _sft_ok(fmt, result.reason)
    ]
    written.append(_execute_quickstart(examples, out))
    stream.write("\nWrote:\n" + "".join(f"  {path}\n" for path in written))
    lab = "rlm-kernel demo --lab" + ("" if out == DEFAULT_OUT else f" --out {out}")
    stream.write(f"Open the notebook with `{lab}`, or in any Jupyter front end.\n")
    return 0 if result.reason == "final" else 1


def _sft_ok(fmt: str, reason: str) -> bool:
    # Fine-tuning data keeps successful sessions only; an unfinished replay has none to write.
    return fmt != "sft" or reason == "final"


def _copy_examples(examples: Path, out: Path) -> None:
    """Put the files the quickstart notebook reads (its context, the recordings) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(examples / CONTEXT, out / CONTEXT)
    shutil.copytree(examples / RECORDING.parent, out / RECORDING.parent, dirs_exist_ok=True)


def _kernel_config(runtime: Path) -> Config:
    """How this process talks to the notebook's kernel, a local child process.

    Over TCP, ipykernel (7+) warns that the connection is unencrypted — true, and harmless for a
    kernel only this process talks to on loopback, but a warning is noise in a demo. Where Unix
    sockets exist, the kernel listens on files in ``runtime`` (a private temporary folder, short
    enough for the socket path limit) instead; elsewhere the kernel manager provisions CurveZMQ keys
    when this jupyter_client can and the kernelspec says the kernel supports them.
    """
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if os.name == "posix":
        return Config(
            {"KernelManager": {"transport": "ipc", "connection_file": str(runtime / "kernel.json")}}
        )
    if "transport_encryption" in KernelManager.class_trait_names():
        import zmq

        if zmq.has("curve"):
            return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config()


def _execute_quickstart(examples: Path, out: Path) -> Path:
    """Run the quickstart notebook offline (its replay branch) in ``out`` and save it executed there.

    It runs in ``out``, beside copies of the files it reads, so that what it writes stays there too and
    the examples themselves (perhaps inside site-packages) are never touched.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(examples / QUICKSTART, as_version=4)
    _copy_examples(examples, out)
    with tempfile.TemporaryDirectory(prefix="rlm-demo-") as runtime:
        client = NotebookClient(
            nb,
            timeout=300,
            resources={"metadata": {"path": str(out)}},
            config=_kernel_config(Path(runtime)),
        )
        client.execute(env=dict(os.environ, RLM_OFFLINE="1"))  # the kernel's environment
    target = out / QUICKSTART
    nbformat.write(nb, target)
    return target


def open_lab(out: Path = DEFAULT_OUT) -> int:
    """``rlm-kernel demo --lab``: JupyterLab on the quickstart notebook, in ``out``.

    The notebook, its context and the recordings are copied to ``out`` first (the executed notebook
    a plain ``rlm-kernel demo`` left there is kept), so that JupyterLab, and whatever the notebook
    writes, work there rather than in the bundled examples, which may be inside site-packages.
    """
    if importlib.util.find_spec("jupyterlab") is None:
        raise ConfigError(
            f"JupyterLab is not installed in this environment ({sys.executable})",
            fix='Install it with `pip install "rlm_kernel[lab]"`, or run `rlm-kernel demo` without '
            "--lab and open the notebook it writes in any Jupyter front end",
        )
    examples = examples_dir()
    _copy_examples(examples, out)
    if not (out / QUICKSTART).exists():
        shutil.copy2(examples / QUICKSTART, out / QUICKSTART)
    return subprocess.call([sys.executable, "-m", "jupyterlab", QUICKSTART], cwd=out)
