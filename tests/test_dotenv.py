"""Configuration as people already keep it: a .env file read by python-dotenv, Azure's own variables,
model parameters passed through, and data directories where the platform keeps them.

Every test writes a real .env file and runs real sessions against the loopback ScriptedServer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import rlm_kernel
from rlm_kernel import RLM, ConfigError, Trajectory
from rlm_kernel._secrets import Redactor
from rlm_kernel.testing import ScriptedServer, fence, settings

KEY = "sk-dotenv-0123456789-abcdef"
AZURE_KEY = "azure-key-0123456789-abcdef"


def test_inline_comments_quotes_escapes_and_interpolation_read_as_python_dotenv_reads_them(
    isolated_env: Path,
) -> None:
    (isolated_env / ".env").write_text(
        f"OPENAI_API_KEY={KEY} # my key\n"
        "HOST=http://127.0.0.1:9\n"
        "OPENAI_BASE_URL=${HOST}/v1\n"
        "RLM_MODEL='single # not a comment'\n"
        'RLM_SUB_MODEL="say \\"hi\\""\n'
    )
    cfg = RLM()
    assert cfg.resolve_api_key() == KEY
    assert cfg.base_url == "http://127.0.0.1:9/v1"
    assert cfg.model == "single # not a comment"
    assert cfg.sub_model == 'say "hi"'
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HOST"):
        assert name not in os.environ  # read, never exported


def test_the_dotenv_is_found_from_the_working_directory_upwards(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_env / ".env").write_text("RLM_MODEL=from-the-project-root\n")
    deeper = isolated_env / "notebooks" / "week1"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    assert RLM().model == "from-the-project-root"


def test_a_changed_dotenv_is_seen_by_the_next_settings_copy(isolated_env: Path) -> None:
    dotenv = isolated_env / ".env"
    dotenv.write_text("RLM_MODEL=first\n")
    cfg = RLM()
    assert cfg.model == "first"
    dotenv.write_text(
        "RLM_MODEL=other\n"
    )  # same size, likely the same mtime tick: not a stale parse
    assert cfg.with_overrides({}).model == "other"


def test_interpolation_follows_the_environment_it_refers_to(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_env / ".env").write_text("OPENAI_BASE_URL=http://${LLM_HOST}/v1\n")
    monkeypatch.setenv("LLM_HOST", "127.0.0.1:8001")
    assert RLM().base_url == "http://127.0.0.1:8001/v1"
    monkeypatch.setenv("LLM_HOST", "127.0.0.1:8002")
    assert RLM().base_url == "http://127.0.0.1:8002/v1"


def test_the_scrubber_reads_the_same_dotenv_the_settings_read(
    serve: Callable[..., ScriptedServer], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_env / ".env").write_text(f"OPENAI_API_KEY={KEY} # the team key\n")
    work = isolated_env / "analysis"
    work.mkdir()
    monkeypatch.chdir(work)
    root = [fence("print(open('../.env').read())"), fence("FINAL('done')")]
    server = serve({"root": root})
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert result.answer == "done", result.message
    # The key without its comment authenticates the requests…
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)
    # …and what the model's code printed of the file reached neither the model nor the record.
    assert KEY not in json.dumps(server.requests[-1].messages)
    assert "[redacted] # the team key" in server.requests[-1].messages[-1]["content"]
    assert result.path is not None
    assert KEY not in result.path.read_text()
    assert Redactor().scrub(f"key={KEY}") == "key=[redacted]"


def test_a_credential_in_dotenv_under_an_innocent_name_is_scrubbed_by_its_shape(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    # Neither name says "secret"; the values' shapes do, and every encoding of a known value counts.
    hook = "https://hooks.slack.com/services/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"
    pat = "ghp_" + "Zq8Wm3Rt6Yp1Lk9Vc4Xn7Bs2Hd5Jf0Ga3Qe7"
    (isolated_env / ".env").write_text(f"NOTIFY_URL={hook}\nDEPLOY_USER={pat}\n")
    code = (
        "text = open('.env').read()\n"
        "print(text)\n"
        "print(text[::-1])\n"
        "print(' '.join(text.split('DEPLOY_USER=')[1].strip()))"
    )
    server = serve({"root": [fence(code), fence("FINAL('done')")]})
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert result.answer == "done", result.message
    sent = json.dumps(server.requests[-1].messages)
    assert result.path is not None
    written = result.path.read_text()
    for piece in ("uV3wX9yZ2aB7cD4eF1gH6iJ0", "Zq8Wm3Rt6Yp1Lk9Vc4Xn", "0Ji6Hg1Fe4Dc7Ba2Zy9Xw3Vu"):
        assert piece not in sent
        assert piece not in written
    assert " ".join("Zq8Wm3Rt") not in sent
    assert "NOTIFY_URL=https://[redacted]" in sent  # the names stay: the output is still readable


# --- Azure OpenAI, through the SDK's own variables -------------------------------------------------------


def test_azure_reads_the_sdks_variables_from_dotenv_and_keeps_the_key_out_of_records(
    serve: Callable[..., ScriptedServer], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(
        {"gpt-4o-deployment": [fence("import os\nprint(open('.env').read())"), "FINAL(1)"]}
    )
    endpoint = server.base_url.removesuffix("/v1")
    (isolated_env / ".env").write_text(
        f"AZURE_OPENAI_API_KEY={AZURE_KEY}\n"
        f"AZURE_OPENAI_ENDPOINT={endpoint}\n"
        "OPENAI_API_VERSION=2025-01-01-preview\n"
    )
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # an OpenAI key elsewhere must not go to Azure
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nor OpenAI's endpoint apply
    result = rlm_kernel.run("q", "ctx", provider="azure", model="gpt-4o-deployment", max_retries=0)
    assert result.answer == "1", result.message
    assert server.targets[0] == (
        "POST /openai/deployments/gpt-4o-deployment/chat/completions?api-version=2025-01-01-preview"
    )
    for request in server.requests:
        assert request.headers["api-key"] == AZURE_KEY
        assert KEY not in json.dumps(request.headers)
        assert AZURE_KEY not in json.dumps(request.messages)
    assert result.path is not None
    text = result.path.read_text()
    assert AZURE_KEY not in text
    recorded = Trajectory.load(result.path).session["config"]
    assert recorded["api_key_env"] == "AZURE_OPENAI_API_KEY"
    assert recorded["api_version"] == "2025-01-01-preview"
    assert recorded["base_url"] == endpoint


def test_azure_without_an_endpoint_names_the_sdks_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        rlm_kernel.run("q", "ctx", provider="azure", model="dep")
    assert "AZURE_OPENAI_ENDPOINT" in str(caught.value)


def test_azure_without_a_key_names_the_sdks_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.invalid")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with pytest.raises(ConfigError) as caught:
        rlm_kernel.run("q", "ctx", provider="azure", model="dep")
    assert "AZURE_OPENAI_API_KEY" in str(caught.value)


def test_an_api_key_env_given_for_azure_stays_what_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    given = RLM(provider="azure", api_key_env="OPENAI_API_KEY")
    assert given.with_overrides({}).resolve_api_key() == KEY
    assert RLM().with_overrides({"provider": "azure"}).api_key_env == "AZURE_OPENAI_API_KEY"


# --- model parameters --------------------------------------------------------------------------------


def test_model_kwargs_reach_every_request_and_header_values_never_a_record(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    token = "gw-token-0123456789-abcdef"
    root = [fence("print(llm_query('hi'))"), fence("FINAL('ok')")]
    server = serve({"root": root, "sub": lambda r: "sub answer"})
    kwargs = {
        "reasoning_effort": "low",
        "seed": 7,
        "extra_body": {"top_k": 20},
        "extra_headers": {"Authorization": f"Bearer {token}", "X-Team": "research"},
        "extra_query": {"tenant": "lab"},
    }
    result = rlm_kernel.run("q", "ctx", **settings(server, model_kwargs=kwargs))
    assert result.answer == "ok", result.message
    assert {r.model for r in server.requests} == {"root", "sub"}
    for request in server.requests:  # root calls and the sub-call alike
        assert (request.params["reasoning_effort"], request.params["seed"]) == ("low", 7)
        assert request.params["top_k"] == 20
        assert request.headers["authorization"] == f"Bearer {token}"
        assert request.headers["x-team"] == "research"
    assert all(t.endswith("/chat/completions?tenant=lab") for t in server.targets)
    assert result.path is not None
    written = result.path.read_text() + result.trajectory.save(isolated_env / "r.json").read_text()
    assert token not in written
    recorded = Trajectory.load(result.path).session["config"]["model_kwargs"]
    assert recorded["extra_headers"] == {"Authorization": "[redacted]", "X-Team": "[redacted]"}
    assert recorded["seed"] == 7
    assert Redactor(RLM(model_kwargs=kwargs).secrets()).scrub(token) == "[redacted]"


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"temperature": 0.2}, "RLM.temperature"),
        ({"max_tokens": 10}, "RLM.max_completion_tokens"),
        ({"extra_body": {"stream": True}}, "RLM.stream"),
        ({"model": "other"}, "RLM.model"),
    ],
)
def test_model_kwargs_that_set_what_rlm_kernel_sets_are_refused_before_any_request(
    serve: Callable[..., ScriptedServer], kwargs: dict[str, object], setting: str
) -> None:
    server = serve({"root": [fence("FINAL(1)")]})
    with pytest.raises(ConfigError) as caught:
        rlm_kernel.run("q", "ctx", **settings(server, model_kwargs=kwargs))
    assert setting in str(caught.value)
    assert caught.value.setting == "RLM.model_kwargs"
    assert server.targets == []


# --- data directories -----------------------------------------------------------------------------------


def test_the_disk_cache_defaults_to_the_platforms_cache_directory(
    serve: Callable[..., ScriptedServer], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated_env / "xdg-cache"))
    root = [fence("print(llm_query('same'))"), fence("FINAL('ok')")]
    server = serve({"root": root, "sub": ["cached"]})
    result = rlm_kernel.run("q", "ctx", **settings(server, cache="disk"))
    assert result.answer == "ok", result.message
    assert list((isolated_env / "xdg-cache" / "rlm_kernel").glob("*.json"))
    # Trajectories stay under the data directory ($XDG_DATA_HOME, set by the test environment).
    assert result.path is not None
    assert result.path.parent == isolated_env / "data" / "rlm_kernel" / "sessions"
    # A data_dir that is set holds the cache as before.
    assert RLM(data_dir=str(isolated_env / "mine")).resolved_cache_dir() == (
        isolated_env / "mine" / "cache"
    )
