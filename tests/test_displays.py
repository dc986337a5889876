"""Rich displays of ``Result``, ``Trajectory`` and ``UsageSummary``: HTML, Markdown and plain text
from the records of real runs (the SDK against the scripted server), model text escaped, and the
MIME bundle a notebook gets (nbclient)."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import rlm_kernel
from rlm_kernel import Result, Trajectory
from rlm_kernel._records import Result as RecordsResult
from rlm_kernel.models import Usage, UsageSummary
from rlm_kernel.testing import Reply, ScriptedServer, fence, kernel_env, settings

HOSTILE = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"


def hostile_run(serve: Callable[..., ScriptedServer], **overrides: object) -> Result:
    root = [
        Reply(fence("print(llm_query('look'))"), prompt_tokens=1_200, completion_tokens=40),
        Reply(
            fence(f"FINAL({HOSTILE!r})"),
            prompt_tokens=2_000,
            completion_tokens=30,
            cached_tokens=800,
        ),
    ]
    server = serve({"gpt-4o-mini": root, "sub": ["<b>bold</b>"]})
    return rlm_kernel.run(
        "Which <tag> & why?", "ctx", **settings(server, model="gpt-4o-mini", **overrides)
    )


def test_the_result_html_shows_the_run_and_escapes_model_text(
    serve: Callable[..., ScriptedServer],
) -> None:
    result = hostile_run(serve)
    assert result.answer == HOSTILE
    page = result._repr_html_()
    assert page is not None
    assert "<script>" not in page
    assert "<img" not in page
    assert html.escape(HOSTILE) in page
    assert html.escape("Which <tag> & why?") in page
    total = result.usage.total
    assert total.cost is not None
    steps = len(result.trajectory.iterations)
    for shown in (
        f"<th style='text-align:left;padding-right:12px'>steps</th><td>{steps}</td>",
        f"{total.total_tokens:,} ({total.prompt_tokens:,} prompt, {total.cached_tokens:,} cached",
        f"${total.cost:.4f} (without sub: no price)",  # the sub model has no known price
        ">final</span>",
        "<code>gpt-4o-mini</code>",
        "class='rlm-timeline'",
        "%rlm export run.ipynb",
    ):
        assert shown in page, shown
    assert result.path is not None
    assert html.escape(str(result.path)) in page


def test_markdown_and_plain_text(serve: Callable[..., ScriptedServer]) -> None:
    result = hostile_run(serve)
    md = result._repr_markdown_()
    assert md is not None
    assert f"```\n{HOSTILE}\n```" in md  # a code fence: Markdown shows it literally
    assert "> Which &lt;tag&gt; &amp; why?" in md  # raw HTML in Markdown would render: escaped
    assert f"| steps | {len(result.trajectory.iterations)} |" in md
    text = repr(result)
    assert text.startswith("<Result final: ")
    assert text.endswith(" s>")
    assert f"{result.usage.total.total_tokens:,} tokens" in text
    assert "\n" not in text


def test_a_long_answer_is_cut_in_the_display_only(serve: Callable[..., ScriptedServer]) -> None:
    long = "y" * 10_000
    root = [fence("print(1)"), fence(f"FINAL('{long}')")]
    server = serve({"root": root})
    result = rlm_kernel.run("q", "c", **settings(server))
    assert result.answer == long
    page = result._repr_html_()
    assert page is not None
    assert "(6,000 more characters)" in page
    assert long not in page


def test_a_secret_in_the_answer_is_not_displayed(
    serve: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-display-0123456789abcdefXYZ"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    root = [fence("print(1)"), fence("import os\nFINAL(os.environ['OPENAI_API_KEY'])")]
    server = serve({"root": root})
    result = rlm_kernel.run("q", "c", **settings(server))
    shown = [result._repr_html_(), result._repr_markdown_(), repr(result)]
    assert all(s is not None and secret not in s for s in shown)


def test_trajectory_and_usage_summary_displays(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    result = hostile_run(serve)
    loaded = Trajectory.load(result.trajectory.save(tmp_path / "run.json"))
    page = loaded._repr_html_()
    assert page is not None
    assert "RLM trajectory" in page
    assert "<script>" not in page
    assert html.escape(HOSTILE) in page
    md = loaded._repr_markdown_()
    assert md is not None
    assert f"| steps | {len(loaded.iterations)} |" in md
    assert repr(loaded).startswith("<Trajectory ")

    usage = UsageSummary()
    usage.add("a|b", Usage(prompt_tokens=1_000, completion_tokens=10, cost=0.5, calls=1))
    usage.add("<m>", Usage(prompt_tokens=5, completion_tokens=5, calls=1))
    assert repr(usage).startswith(
        "<UsageSummary 1,020 (1,005 prompt, 15 completion) in 2 call(s), $0.5000;"
    )
    table = usage._repr_html_()
    assert table is not None
    assert "<code>&lt;m&gt;</code>" in table
    assert "$0.5000" in table
    md = usage._repr_markdown_()
    assert md is not None
    assert "| `` a\\|b `` |" not in md
    assert "| ` a\\|b ` |" in md


def test_the_trajectory_file_is_a_link_when_a_notebook_server_can_serve_it(
    serve: Callable[..., ScriptedServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = hostile_run(serve, trajectory_dir=str(tmp_path / "runs"))
    assert result.path is not None
    assert result.path.parent == tmp_path / "runs"
    page = result._repr_html_()
    assert page is not None
    assert f'<a href="runs/{result.path.name}" target="_blank"' in page
    elsewhere = RecordsResult(**{**result.__dict__, "path": Path(os.sep) / "elsewhere" / "x.jsonl"})
    other = elsewhere._repr_html_()
    assert other is not None
    assert "<a href" not in other
    assert "<code>/elsewhere/x.jsonl</code>" in other


def test_a_notebook_gets_html_markdown_and_text(
    serve: Callable[..., ScriptedServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = [fence("print(len(P))"), fence(f"FINAL({HOSTILE!r})")]
    server = serve({"root": root})
    for key, value in kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import rlm_kernel\n"
            f"result = rlm_kernel.run('q', 'ctx', **{settings(server)!r})\n"
            "result"
        ),
        nbformat.v4.new_code_cell("result.usage"),
    ]
    NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    (shown,) = [o for o in nb.cells[0].outputs if o.output_type == "execute_result"]
    assert {"text/html", "text/markdown", "text/plain"} <= set(shown.data)
    assert "<script>" not in shown.data["text/html"]
    assert html.escape(HOSTILE) in shown.data["text/html"]
    assert shown.data["text/plain"].startswith("<Result final: ")
    (usage,) = [o for o in nb.cells[1].outputs if o.output_type == "execute_result"]
    assert "rlm-usage" in usage.data["text/html"]
