"""``%rlm models`` and ``rlm-kernel models``: the endpoint's GET /models through the openai SDK, the
configured root and sub models marked; clear errors when the endpoint keeps no list or is down."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_kernel import RLM
from rlm_kernel._models_list import list_models
from rlm_kernel.cli import EXIT_MODEL
from rlm_kernel.errors import ModelConnectionError, ModelResponseError
from rlm_kernel.testing import Kernel, ScriptedServer, configure, kernel_env, run_cli

SCRIPT = {"root": ["a"], "sub": ["b"], "gpt-4o-mini": ["c"], "other": ["d"]}


def test_the_listing_marks_root_and_sub(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(SCRIPT)
    config = RLM().with_overrides(
        {"base_url": server.base_url, "model": "gpt-4o-mini", "sub_model": "sub"}
    )
    listing = list_models(config)
    assert server.targets[-1] == "GET /v1/models"  # asked of the endpoint, through the SDK
    rows = {row.name: row for row in listing.rows}
    assert set(rows) == {"root", "sub", "gpt-4o-mini", "other"}
    assert [r.name for r in listing.rows[:2]] == ["sub", "gpt-4o-mini"]  # the configured ones first
    assert rows["gpt-4o-mini"].roles == ("root",)
    assert rows["sub"].roles == ("sub",)
    assert rows["other"].roles == ()
    assert all(r.listed for r in listing.rows)
    # The price a call is charged at when the endpoint reports none: the table knows gpt-4o-mini.
    assert rows["gpt-4o-mini"].price is not None
    assert rows["other"].price is None
    assert "genai-prices (openai)" in rows["gpt-4o-mini"].price_text
    text = str(listing)
    assert text.splitlines()[0] == f"4 model(s) at {server.base_url}"
    assert "gpt-4o-mini  [root]" in text
    assert "[sub]" in text


def test_a_configured_model_the_endpoint_does_not_list_is_flagged(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(SCRIPT)
    config = RLM().with_overrides({"base_url": server.base_url, "model": "gpt-5-typo"})
    listing = list_models(config)
    first = listing.rows[0]
    assert (first.name, first.listed, first.marks) == ("gpt-5-typo", False, "root, sub, not listed")
    assert "<code>gpt-5-typo</code>" in listing._repr_html_()


def test_an_endpoint_without_a_list_or_down_is_a_clear_error(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(SCRIPT)
    server.list_models = False
    with pytest.raises(ModelResponseError) as caught:
        list_models(RLM().with_overrides({"base_url": server.base_url, "model": "root"}))
    assert "has no model list" in caught.value.what
    assert caught.value.setting == "RLM.base_url"
    assert "/v1/models" in caught.value.fix

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ModelConnectionError) as down:
        list_models(RLM().with_overrides({"base_url": f"http://127.0.0.1:{port}/v1"}))
    assert f"127.0.0.1:{port}" in str(down.value)
    assert down.value.fix


def test_the_cli_lists_and_reports_errors(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve(SCRIPT)
    done = run_cli(
        "models",
        "--base-url",
        server.base_url,
        "--model",
        "root",
        "--sub-model",
        "sub",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"4 model(s) at {server.base_url}"
    assert lines[1].split() == ["root", "[root]"]
    assert lines[2].split() == ["sub", "[sub]"]

    server.list_models = False
    failed = run_cli("models", "--base-url", server.base_url, "--model", "root", cwd=tmp_path)
    assert failed.returncode == EXIT_MODEL
    assert failed.stderr.startswith("rlm-kernel: The endpoint has no model list")


def test_rlm_models_in_a_real_kernel(serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(SCRIPT)
    k = Kernel("rlm", kernel_env(tmp_path), tmp_path)
    try:
        configure(k, server, model="gpt-4o-mini", sub_model="sub")
        run = k.run("%rlm models")
        assert not run.errors, run.errors
        assert f"4 model(s) at {server.base_url}" in run.text
        assert "gpt-4o-mini" in run.html
        assert "root" in run.text
        assert "genai-prices" in run.text

        server.list_models = False
        failed = k.run("%rlm models")
        # IPython shows a magic's UsageError as one line on stderr, and the cell fails.
        assert failed.reply["content"]["status"] == "error"
        assert failed.stderr.startswith("UsageError: %rlm models: The endpoint has no model list")
    finally:
        k.shutdown()
