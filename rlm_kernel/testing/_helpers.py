"""Helpers the test suite and the benchmarks share for scripted runs: a fake key, a root-model turn that
runs code, a sub model that plays a child RLM, the settings that point rlm_kernel at a ``ScriptedServer``,
a recorded session a person edited, and an in-process session whose models answer from scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rlm_kernel._config import RLM
from rlm_kernel._session import Session
from rlm_kernel.models import Message, ScriptedClient
from rlm_kernel.testing._server import ChatRequest, ScriptedServer

# A key-shaped secret: a test that finds it in a file, a prompt or a log has found a leak.
SECRET = "sk-test-0123456789-SECRET-abcdef"


def fence(code: str) -> str:
    """A root-model turn that runs ``code``."""
    return f"```repl\n{code}\n```"


def child_rlm_sub(reader: Callable[[ChatRequest], str]) -> Callable[[ChatRequest], str]:
    """A scripted sub model for rlm_query at depth 2: a child RLM's root turns (they carry our system
    prompt) look at P, then submit what one plain sub-call (answered by ``reader``) finds in it."""

    def answer(request: ChatRequest) -> str:
        if request.messages[0]["role"] != "system":
            return reader(request)  # a plain sub-call made by the child
        turn = sum(m["role"] == "assistant" for m in request.messages) + 1
        if turn == 1:
            return fence("print(len(P))")
        return fence('FINAL(llm_query("Report the vault code in this text, or none:\\n" + P))')

    return answer


# What a user's shell may hold that would point a test at a real model or key.
ENDPOINT_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "RLM_MODEL",
    "RLM_SUB_MODEL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
)


def run_cli(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``rlm-kernel ARGS`` in a fresh interpreter, in ``cwd``, with none of the endpoint variables
    (``ENDPOINT_VARIABLES``) of the calling environment: what it prints and its exit code."""
    env = {k: v for k, v in os.environ.items() if k not in ENDPOINT_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "rlm_kernel.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        input=stdin,
        timeout=120,
        check=False,
    )


# The code a person ran in place of the model's first step in ``record_edited_session``.
EDITED_STEP = "x = 41 + 1\nprint(x)"


def record_edited_session(serve: Callable[..., ScriptedServer], context: str) -> Path:
    """A finished recording in which a person replaced the model's step 1 (x = 1) with EDITED_STEP
    before it ran; the model then doubled x. Its answer is 84; re-running the model's own step 1
    instead would give 2. The server is stopped: a replay must need no model."""
    server = serve(
        {"root": [fence("x = 1\nprint(x)"), fence("y = x * 2\nprint(y)"), fence("FINAL(y)")]}
    )
    session = Session(
        "Double it", context, config=RLM().with_overrides(settings(server)), namespace={}
    )
    session.propose()
    session.execute(EDITED_STEP)
    assert session.run().answer == "84"
    assert session.path is not None
    server.stop()
    return session.path


def settings(server: ScriptedServer, **overrides: Any) -> dict[str, Any]:
    """Settings that point rlm_kernel at ``server`` with root model 'root' and sub model 'sub'."""
    return {
        "base_url": server.base_url,
        "model": "root",
        "sub_model": "sub",
        "max_retries": 0,
        **overrides,
    }


# What a ``ScriptedClient`` answers from: a list of responses in order, or a function of the request.
ClientScript = Sequence[str] | Callable[[Sequence[Message], str], str]


def scripted_session(
    root: ClientScript,
    sub: ClientScript | None = None,
    *,
    question: str = "How long is P?",
    context: object = "abcdefgh" * 50,
    tools: Mapping[str, Callable[..., Any]] | list[Callable[..., Any]] | None = None,
    **overrides: Any,
) -> Session:
    """A root ``Session`` in this process whose models answer from scripts: no server, no network.

    ``root`` answers the root model's calls (model 'root', and a child RLM's root turns, which ask for
    model 'sub'); ``sub`` answers the sub-calls, or ``root``'s client does when it is None. Autosave is off, so nothing is written; ``overrides`` are further RLM settings.
    The default context is 400 characters, under no limit, so the session runs the REPL loop.
    """
    config = RLM().with_overrides(
        {"model": "root", "sub_model": "sub", "autosave": False, **overrides}
    )
    client = ScriptedClient(root)
    return Session(
        question,
        context,
        config=config,
        client=client,
        sub_client=ScriptedClient(sub) if sub is not None else client,
        tools=tools,
    )
