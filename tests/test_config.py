"""Settings: one Configurable, documented, with env fallbacks and the documented precedence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from rlm_kernel import RLM, ConfigError
from rlm_kernel._config import setting_names
from rlm_kernel._secrets import redact_url


def test_every_setting_is_documented() -> None:
    for name in setting_names():
        assert RLM.class_traits()[name].help, f"RLM.{name} has no help"


def test_issue_settings_exist_with_their_defaults() -> None:
    cfg = RLM()
    assert cfg.api_key_env == "OPENAI_API_KEY"
    assert cfg.max_iterations == 30
    assert cfg.max_depth == 1
    assert cfg.subcall_concurrency == 16
    assert (cfg.cache, cfg.mode, cfg.compaction, cfg.provider) == ("off", "rlm", False, "openai")
    for name in ("max_subcalls", "max_tokens", "max_cost", "wall_timeout"):
        assert getattr(cfg, name) is None


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_MODEL", "env-root")
    monkeypatch.setenv("RLM_SUB_MODEL", "env-sub")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    cfg = RLM()
    assert (cfg.model, cfg.sub_model, cfg.base_url) == (
        "env-root",
        "env-sub",
        "http://127.0.0.1:9/v1",
    )


def test_dotenv_is_read_but_not_exported(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_env / ".env").write_text(
        "# comment\nexport RLM_MODEL='dot-root'\nOPENAI_API_KEY=\"sk-dot\"\n"
    )
    cfg = RLM()
    assert cfg.model == "dot-root"
    assert cfg.resolve_api_key() == "sk-dot"
    import os

    assert "RLM_MODEL" not in os.environ


def test_config_beats_environment_and_call_options_beat_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RLM_MODEL", "from-env")
    c = Config()
    c.RLM.model = "from-config"
    c.RLM.max_iterations = 7
    cfg = RLM(config=c)
    assert cfg.model == "from-config"
    call = cfg.with_overrides({"model": "from-call"})
    assert (call.model, call.max_iterations) == ("from-call", 7)
    assert cfg.model == "from-config"  # the original is untouched


def test_copies_read_the_environment_again_unless_the_setting_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RLM_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    c = Config()
    c.RLM.base_url = "http://from-config/v1"
    cfg = RLM(config=c)
    assert (cfg.model, cfg.base_url) == ("", "http://from-config/v1")
    monkeypatch.setenv("RLM_MODEL", "set-later")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://set-later/v1")
    copy = cfg.with_overrides({})
    assert (copy.model, copy.base_url) == ("set-later", "http://from-config/v1")
    cfg.model = "given"
    assert cfg.with_overrides({}).model == "given"


def test_with_overrides_rejects_unknown_names_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="sub_model"):
        RLM().with_overrides({"submodel": "x"})


def test_api_key_env_points_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-gw")
    assert RLM(api_key_env="MY_GATEWAY_KEY").resolve_api_key() == "sk-gw"


def test_public_dict_holds_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-appear")
    cfg = RLM(base_url="https://user:pass@example.test/v1")
    text = repr(cfg.public_dict())
    assert "sk-should-not-appear" not in text
    assert "pass" not in text
    assert cfg.public_dict()["base_url"] == "https://example.test/v1"


def test_redact_url_keeps_plain_urls() -> None:
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert redact_url("") == ""


def test_the_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [name for name in setting_names() if f"`{name}`" not in readme]
    assert not missing, f"README's settings table lacks {missing}"


def test_model_kwargs_are_recorded_without_header_values_or_secrets() -> None:
    kwargs = {
        "seed": 7,
        "reasoning_effort": "low",
        "extra_headers": {"Authorization": "Bearer gw-0123456789", "X-Team": "lab"},
        "extra_body": {"api_key": "k-0123456789", "thinking": {"budget_tokens": 512}},
    }
    recorded = RLM(model_kwargs=kwargs).public_dict()["model_kwargs"]
    assert recorded == {
        "seed": 7,
        "reasoning_effort": "low",
        "extra_headers": {"Authorization": "[redacted]", "X-Team": "[redacted]"},
        "extra_body": {"api_key": "[redacted]", "thinking": {"budget_tokens": 512}},
    }


def test_switching_to_azure_reads_azures_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-01-01-preview")
    cfg = RLM()
    assert (cfg.base_url, cfg.api_key_env) == ("http://127.0.0.1:9/v1", "OPENAI_API_KEY")
    cfg.provider = "azure"  # after the openai defaults were read: they are worked out again
    assert (cfg.base_url, cfg.api_key_env) == (
        "https://res.openai.azure.com",
        "AZURE_OPENAI_API_KEY",
    )
    assert cfg.api_version == "2025-01-01-preview"
    given = RLM(provider="azure", base_url="https://other.openai.azure.com")
    assert given.with_overrides({}).base_url == "https://other.openai.azure.com"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG layout is Linux's")
def test_linux_data_directory_stays_xdg(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(isolated_env))
    cfg = RLM()
    assert cfg.resolved_data_dir() == isolated_env / ".local" / "share" / "rlm_kernel"
    assert cfg.resolved_trajectory_dir() == cfg.resolved_data_dir() / "sessions"
    assert cfg.resolved_cache_dir() == isolated_env / ".cache" / "rlm_kernel"
    monkeypatch.setenv("XDG_DATA_HOME", str(isolated_env / "xdg"))
    assert RLM().resolved_data_dir() == isolated_env / "xdg" / "rlm_kernel"
