"""The sandbox in notebooks: the needle scenario with ``--executor monty``, inline and in cells mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_cells_headless import Run, make_notebook, text

from rlm_kernel.testing import ChatRequest, Kernel, ScriptedServer, child_rlm_sub, configure, fence

NEEDLE = "TANGERINE-4491"
CONTEXT = (
    "ctx = ('lorem ipsum dolor sit amet ' * 4000) + ' The vault code is "
    + NEEDLE
    + ". ' + ('amet ' * 4000)"
)
ROOT = [
    fence("print(len(P), P.find('vault code'))"),
    fence(
        "chunks = [P[i:i + 40000] for i in range(0, len(P), 40000)]\n"
        "answers = llm_batch(['Report the vault code in this text, or none: ' + c for c in chunks])\n"
        "found = [a for a in answers if a != 'none']\n"
        "print(found)"
    ),
    fence('code = found[0]\nFINAL_VAR("code")'),
]


def sub(request: ChatRequest) -> str:
    return NEEDLE if NEEDLE in request.prompt else "none"


def test_monty_inline_in_a_real_kernel(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    server = serve({"root": ROOT, "sub": sub})
    configure(kernel, server)
    assert not kernel.run(CONTEXT).errors
    run = kernel.run('%rlm "What is the vault code?" ctx --executor monty')
    assert not run.errors, run.errors
    assert NEEDLE in run.text
    assert "Answer" in run.text
    # The sandbox keeps its own namespace: the model's variables do not leak into the kernel's.
    assert kernel.run("print('chunks' in dir())").stdout.strip() == "False"


@pytest.mark.parametrize("kernel_name", ["rlm"])
def test_monty_in_cells_mode(
    serve: Callable[..., ScriptedServer], env: Path, kernel_name: str
) -> None:
    server = serve({"root": ROOT, "sub": sub})
    nb = make_notebook(server, kernel_name, '%rlm "What is the vault code?" ctx --executor monty')
    nb.cells[-2].source = CONTEXT
    run = Run(nb, kernel_name, env)
    with run.client.setup_kernel():
        run.run_pending()
    steps = run.cells("step")
    assert len(steps) == 3
    assert NEEDLE in text(steps[1])
    [answer] = run.cells("answer")
    assert NEEDLE in answer.source


RLM_QUERY_ROOT = [
    fence("print(len(P))"),
    fence(
        "i = P.find('vault code')\nr = rlm_query('What is the vault code?', P[i - 1000:i + 1000])\nprint(r)"
    ),
    fence("FINAL(r)"),
]


def test_monty_rlm_query_inline(kernel: Kernel, serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": RLM_QUERY_ROOT, "sub": child_rlm_sub(sub)})
    configure(kernel, server)
    kernel.run(CONTEXT)
    run = kernel.run('%rlm "What is the vault code?" ctx --executor monty --max-depth 2')
    assert not run.errors, run.errors
    assert NEEDLE in run.text
    assert len(server.requests) == 6  # 3 root turns, 2 child turns, 1 plain call


def test_monty_rlm_query_in_cells_mode(serve: Callable[..., ScriptedServer], env: Path) -> None:
    server = serve({"root": RLM_QUERY_ROOT, "sub": child_rlm_sub(sub)})
    nb = make_notebook(
        server, "rlm", '%rlm "What is the vault code?" ctx --executor monty --max-depth 2'
    )
    nb.cells[-2].source = CONTEXT
    run = Run(nb, "rlm", env)
    with run.client.setup_kernel():
        run.run_pending()
    [answer] = run.cells("answer")
    assert NEEDLE in answer.source
    assert run.cells("step")[1].metadata["rlm"]["subcalls"] == 1
