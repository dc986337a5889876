"""Every rlm_kernel setting, in one traitlets ``Configurable``.

Precedence, lowest first: the defaults here < environment variables (and the ``.env`` file found from the
working directory upwards, see ``_environment``) < ``ipython_config.py`` / ``%config RLM.x = …`` < options
given to one call (``%rlm --model``, ``rlm_kernel.run(model=…)``, ``rlm-kernel run --model``). The environment is read through ``@default``
methods, so anything traitlets config sets wins over it, as a person expects.

API keys are never settings: ``api_key_env`` names the variable that holds the key, and the key is read at
the moment a client is built (see ``resolve_api_key``). That keeps it out of ``%config`` output, out of
trajectories and out of every export.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from traitlets import (
    Bool,
    CaselessStrEnum,
    Dict,
    Float,
    Int,
    List,
    TraitError,
    Unicode,
    default,
    observe,
    validate,
)
from traitlets.config import Configurable

from . import _stdjson as json
from ._context import DEFAULT_MAX_CONTEXT_MB
from ._environment import env_value, user_cache_dir, user_data_dir
from ._files import LoadRules
from ._ranges import RANGES, SettingValueError, check_prices, check_range, setting_error
from ._secrets import key_withheld, kwargs_secrets, redact_kwargs, redact_url, url_secrets
from ._strategies import check_strategy
from .errors import ConfigError

__all__ = ["RLM", "env_value", "parse_assignment", "setting_names"]

_AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"
_DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_DEFAULT_API_VERSION = "2024-10-21"

# Settings whose default is worked out when read (from the environment, or from `provider`): a copy
# works it out again unless the setting was given.
_DERIVED = ("model", "sub_model", "base_url", "api_key_env", "api_version")
# Derived from `provider`: worked out again when the provider changes.
_BY_PROVIDER = ("base_url", "api_key_env")


class _Globs(List):  # type: ignore[type-arg]
    """A list of glob strings; a single str is taken as a list of one (``include="*.py"``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Unicode(), **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        return super().validate(obj, [value] if isinstance(value, str) else value)


class RLM(Configurable):
    """Settings for Recursive Language Model sessions (``%config RLM``, ``c.RLM.…``, ``rlm_kernel.run(**settings)``)."""

    # --- models and endpoint -------------------------------------------------------------------
    model = Unicode(
        help="Root model name, as the endpoint knows it (env: RLM_MODEL).",
    ).tag(config=True)
    sub_model = Unicode(
        help="Model for llm_query/llm_batch sub-calls; empty means the root model (env: RLM_SUB_MODEL).",
    ).tag(config=True)
    base_url = Unicode(
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 for vLLM or Ollama; empty means "
        "OpenAI's own (env: OPENAI_BASE_URL). With provider='azure', the Azure endpoint, e.g. "
        "https://my-resource.openai.azure.com (env: AZURE_OPENAI_ENDPOINT).",
    ).tag(config=True)
    api_key_env = Unicode(
        _DEFAULT_KEY_ENV,
        help="Name of the environment variable (or .env entry) that holds the API key: OPENAI_API_KEY, "
        "or AZURE_OPENAI_API_KEY with provider='azure' (as the openai SDK reads them). The key itself is "
        "never a setting, so it never reaches a trajectory, an export or a log.",
    ).tag(config=True)
    provider = CaselessStrEnum(
        ["openai", "azure"],
        default_value="openai",
        help="Client flavour: 'openai' for any OpenAI-compatible endpoint, 'azure' for Azure OpenAI "
        "(base_url is then the Azure endpoint, RLM.model the deployment name, and api_version applies; "
        "AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and OPENAI_API_VERSION are read from the "
        "environment or .env, as the openai SDK's AzureOpenAI reads them).",
    ).tag(config=True)
    api_version = Unicode(
        _DEFAULT_API_VERSION,
        help="Azure OpenAI API version (provider='azure' only; env: OPENAI_API_VERSION).",
    ).tag(config=True)
    model_kwargs = Dict(
        help="Extra parameters for every chat-completions request (root calls, sub-calls, children), "
        "as chat.completions.create takes them: body fields such as reasoning_effort, top_p, seed, "
        "stop or response_format, plus 'extra_body' (merged into the request body), 'extra_headers' "
        "(HTTP headers) and 'extra_query' (URL query parameters). Fields rlm_kernel sets itself "
        "(model, messages, stream, stream_options, temperature, max_tokens, max_completion_tokens, "
        "timeout) are refused with a ConfigError that names the setting to use instead. Header "
        "values, and values under secret-looking names, are recorded as [redacted].",
    ).tag(config=True)
    temperature = Float(
        None,
        allow_none=True,
        help="Sampling temperature for every call; None leaves the endpoint's default.",
    ).tag(config=True)
    max_completion_tokens = Int(
        None,
        allow_none=True,
        help="Cap on tokens generated per model call; None leaves the endpoint's default.",
    ).tag(config=True)
    stream = Bool(
        False,
        help="Stream root-model responses (front ends show code as it is written).",
    ).tag(config=True)
    timeline = Bool(
        False,
        help="Show the session's timeline under a %rlm run (in cells mode, under the %rlm cell) and "
        "redraw it from the records as the run goes: a lane per step, each call and sub-call at its "
        "time, tokens and cost per step. rlm_kernel.timeline(...) draws any session's at any time.",
    ).tag(config=True)
    progress = Bool(
        True,
        help="rlm_kernel.run() shows live progress while it runs, from the session's snapshot: a "
        "widget in a notebook, a line on stderr when it is a terminal, nothing elsewhere (a pipe, "
        "a log file). %rlm and the rlm-kernel command show their own.",
    ).tag(config=True)
    request_timeout = Float(
        120.0,
        help="Seconds one attempt at a model call may take in all, from sending the request to the "
        "last byte of the answer (a server that trickles its answer counts too); then it is a "
        "timeout, retried up to max_retries times.",
    ).tag(config=True)
    max_retries = Int(
        4,
        help="Retries (with exponential backoff, honouring Retry-After) on 429, 5xx, timeouts and "
        "connection errors, per model call.",
    ).tag(config=True)
    lean_http = Bool(
        True,
        help="For a plain http:// endpoint with no proxy (a local vLLM, Ollama or llama.cpp), send "
        "root-model requests over rlm_kernel's own pooled HTTP/1.1 connections (framed by h11, as the "
        "SDK's transport frames them) instead of the SDK's default transport: about 0.3-0.5 ms less "
        "per call (benchmarks/README.md). The SDK still builds each request, retries and maps errors; an "
        "answer the server sends before it has read the whole request (a 413 for an oversized "
        "prompt) is returned as it is. False uses the SDK's own transports for every call; "
        "sub-calls always do, and https:// endpoints and proxies always use them.",
    ).tag(config=True)

    # --- the loop ------------------------------------------------------------------------------
    mode = CaselessStrEnum(
        ["rlm", "auto", "baseline"],
        default_value="rlm",
        help="'rlm' always runs the REPL loop; 'baseline' sends the whole context in one direct call; "
        "'auto' uses baseline below baseline_threshold characters and rlm above.",
    ).tag(config=True)
    baseline_threshold = Int(
        20_000,
        help="Context size (characters) under which mode='auto' answers with one direct call.",
    ).tag(config=True)
    max_iterations = Int(30, help="Root iterations before the session asks for a best answer.").tag(
        config=True
    )
    max_depth = Int(
        1,
        help="Recursion depth: 1 means rlm_query is a plain LLM call; 2 lets it start child RLMs "
        "whose own sub-calls are plain, and so on.",
    ).tag(config=True)
    max_subcalls = Int(
        None,
        allow_none=True,
        help="Total sub-calls (llm_query, llm_batch items, rlm_query) allowed across the whole tree; "
        "None means no limit.",
    ).tag(config=True)
    max_tokens = Int(
        None,
        allow_none=True,
        help="Total tokens (prompt + completion, root and sub-calls, children included) after which "
        "the session asks for a best answer; None means no limit.",
    ).tag(config=True)
    max_cost = Float(
        None,
        allow_none=True,
        help="Total cost in USD (as reported by the endpoint, or from `prices`) after which the session "
        "asks for a best answer; None means no limit.",
    ).tag(config=True)
    prices = Dict(
        per_key_traits=None,
        help="USD per million tokens by model, e.g. {'gpt-5-mini': {'input': 0.25, 'output': 2.0}}; "
        "used when the endpoint does not report cost.",
    ).tag(config=True)
    known_prices = Bool(
        True,
        help="Price calls the endpoint reports no cost for, and `prices` has no price for, from the "
        "offline genai-prices table (known models of OpenAI, Anthropic, Google, OpenRouter, ...); off: "
        "such calls have no cost.",
    ).tag(config=True)
    iteration_timeout = Float(
        300.0,
        help="Seconds one iteration's code may run before it is interrupted (the model is told).",
    ).tag(config=True)
    wall_timeout = Float(
        None,
        allow_none=True,
        help="Seconds the whole session may spend running (paused or idle time does not count) before "
        "it asks for a best answer; None means no limit.",
    ).tag(config=True)
    max_output_chars = Int(
        20_000,
        help="Characters of an iteration's output sent back to the model (at least 100); the head and "
        "tail are kept around a marker that says how much was cut.",
    ).tag(config=True)
    max_reply_chars = Int(
        20_000,
        allow_none=True,
        help="Characters of each of the root model's replies kept in the conversation it is sent on "
        "later turns (at least 100), cut like outputs: a 10 MB reply is not re-sent whole with "
        "every later prompt. Its code runs in full and the trajectory records it as received. "
        "None keeps replies whole.",
    ).tag(config=True)
    max_capture_chars = Int(
        1_000_000,
        help="Characters of each code block's stdout and of its stderr kept while it runs (at least "
        "100; the trajectory records them): the first two thirds and the last third, around a "
        "marker that says how much was cut, so printing gigabytes costs no memory. The notebook "
        "still shows all of it live; the model gets max_output_chars of what was kept.",
    ).tag(config=True)
    subcall_concurrency = Int(16, help="llm_batch / rlm_query calls in flight at once.").tag(
        config=True
    )
    sub_tool_turns = Int(
        5,
        help="Rounds of tool calls one llm_query / llm_batch item may make when sub_tools= are "
        "given; then the sub-model is told to answer without tools, and its answer says that the "
        "limit cut it.",
    ).tag(config=True)
    max_context_mb = Int(
        DEFAULT_MAX_CONTEXT_MB,
        allow_none=True,
        help="Largest context (MB) loaded from files: a file, or a directory's or glob's text files "
        "together, that is larger is refused before it is read, since P is held in memory whole "
        "(with the file's bytes while it is decoded). None loads any size. Binary files are never "
        "read past their first block.",
    ).tag(config=True)
    include = _Globs(
        help="Globs (as in a .gitignore, relative to the directory) a directory or glob context "
        "loads only files matching, e.g. ['*.py', 'docs/**/*.md']; empty loads every file. A glob "
        "that names a path (build/**, vendor/) brings it back from the default skips and the "
        "ignore files. A single str is one glob.",
    ).tag(config=True)
    exclude = _Globs(
        help="Globs of files and directories a directory or glob context leaves out, e.g. "
        "['tests/', '*.csv']; they win over include.",
    ).tag(config=True)
    gitignore = Bool(
        True,
        help="A directory context honours .gitignore and .ignore files at every level (git's "
        "semantics, also above the directory up to its repository root) and .git/info/exclude.",
    ).tag(config=True)
    default_skips = Bool(
        True,
        help="A directory context skips version control, tool caches, virtual environments (by "
        "name or pyvenv.cfg), dependencies (node_modules, site-packages, vendor), build output "
        "(build, dist, target, *.egg-info) and generated files (lockfiles, *.min.js). The metadata "
        "the model is sent says what was skipped and why.",
    ).tag(config=True)
    max_file_mb = Float(
        None,
        allow_none=True,
        help="Largest file (MB) a directory or glob context loads: a larger one is skipped as "
        "'too large' (a file given by itself always loads). None: no cap per file.",
    ).tag(config=True)
    cache = CaselessStrEnum(
        ["off", "memory", "disk"],
        default_value="off",
        help="Cache identical sub-calls (same endpoint, model, prompt, temperature and token limit): "
        "'memory' for this process, 'disk' under cache_dir across sessions.",
    ).tag(config=True)
    cache_dir = Unicode(
        help="Directory of the disk cache; empty means <data_dir>/cache when data_dir is set, else the "
        "platform's user cache directory (platformdirs): $XDG_CACHE_HOME/rlm_kernel (~/.cache/"
        "rlm_kernel) on Linux, ~/Library/Caches/rlm_kernel on macOS, "
        "%LOCALAPPDATA%\\rlm_kernel\\Cache on Windows.",
    ).tag(config=True)
    compaction = Bool(
        False,
        help="Summarise the root model's own history (never the context) when it nears "
        "compaction_threshold of context_window tokens.",
    ).tag(config=True)
    compaction_threshold = Float(
        0.85, help="Fraction of context_window that triggers compaction."
    ).tag(config=True)
    context_window = Int(
        128_000, help="Root model's context window in tokens (used by compaction)."
    ).tag(config=True)
    refuse_early_final = Bool(
        True,
        help="Refuse a final answer given before the model has seen any output of its code (first "
        "iteration, or after an earlier block of the same response printed something).",
    ).tag(config=True)
    loop_guard = Int(
        2,
        help="Repeats of an earlier step (the same code, once normalised, or the same output) that "
        "end the loop early: the first repeat runs with a note that says which step it repeats and "
        "what to do instead, and the repeat that reaches this count is not run; the model is asked "
        "for its best answer instead (reason 'loop'). 0 turns the guard off.",
    ).tag(config=True)
    prose_nudge = Bool(
        True,
        help="When a response states an answer in prose but submits nothing (no code, or code that "
        "only prints), tell the model once, per question, the exact FINAL(...) line that submits it.",
    ).tag(config=True)
    output_repairs = Int(
        2,
        help="With output= (a typed answer): how many times an answer that does not match the "
        "expected shape goes back to the model with the validator's message for another try; the "
        "next one that does not match ends the run (reason 'invalid_answer', that answer kept as "
        "text, result.value None). 0: the first answer that does not match ends it.",
    ).tag(config=True)
    protocol = CaselessStrEnum(
        ["rlm_kernel", "rlms"],
        default_value="rlm_kernel",
        help="The system prompt's shape: 'rlm_kernel' (ours), or 'rlms', the reference "
        "implementation's (alexzhang13/rlm), for models trained or prompted on it. Every spelling of "
        "both (context or P, llm_query_batched, rlm_query_batched, FINAL, FINAL_VAR, SUBMIT, the "
        "answer dict) works under either; docs/protocol.md lists them.",
    ).tag(config=True)
    strategy = Unicode(
        "",
        help="Tips on how to work added to the system prompt: a name ('search-first', 'map-reduce', "
        "'verify'; several joined by '+'), or your own tip text (anything with a space in it). "
        "Empty: none. `%rlm ... --strategy NAME` sets it for one run.",
    ).tag(config=True)

    @validate(*RANGES)
    def _valid_range(self, proposal: Any) -> Any:
        return check_range(proposal["trait"], proposal["value"])

    @validate("prices")
    def _valid_prices(self, proposal: Any) -> Any:
        return check_prices(proposal["value"])

    @validate("strategy")
    def _valid_strategy(self, proposal: Any) -> str:
        value = str(proposal["value"])
        check_strategy(value)  # a misspelt name is an error, not a one-word tip
        return value

    executor = CaselessStrEnum(
        ["namespace", "monty"],
        default_value="namespace",
        help="Where iteration code runs: 'namespace' (the kernel's namespace, or a private dict) or "
        "'monty' (a pydantic-monty sandbox: a subset of Python with no files, network or environment; "
        "only tools marked @rlm_kernel.sandbox_safe are exposed; limits: RLM.iteration_timeout and "
        "the monty_* settings).",
    ).tag(config=True)

    # --- the monty sandbox (executor = 'monty'); read when a session's sandbox starts -----------------
    monty_memory_mb = Int(
        1024,
        help="Memory (MB) the sandbox of one RLM session may use, the context P included; a block "
        "that needs more is stopped and undone. Allow about 3× the context's size plus working room.",
    ).tag(config=True)
    monty_max_recursion = Int(
        1000,
        help="Maximum call depth of sandboxed code (like sys.getrecursionlimit()).",
    ).tag(config=True)
    monty_max_host_calls = Int(
        1_000_000,
        help="Calls to helpers and tools (llm_query, llm_batch, …) one sandbox may make over the whole "
        "session; monty's own default of 1000 would cut long llm_query loops. Sub-call budgets are "
        "RLM.max_subcalls, RLM.max_tokens and RLM.max_cost.",
    ).tag(config=True)

    cells = Bool(
        True,
        help="When the front end can insert cells (the JupyterLab / Notebook 7 extension), run every "
        "iteration as a real notebook cell; False keeps the inline driver everywhere.",
    ).tag(config=True)
    stale_cells = CaselessStrEnum(
        ["mark", "remove"],
        default_value="mark",
        help="What happens to later step cells when an earlier one is edited and re-run: 'mark' greys "
        "them with a 'stale' badge, 'remove' deletes them.",
    ).tag(config=True)

    # --- records ---------------------------------------------------------------------------------
    autosave = Bool(
        True,
        help="Append every finished iteration to a JSONL trajectory under trajectory_dir.",
    ).tag(config=True)
    trajectory_dir = Unicode(
        help="Directory for autosaved trajectories; empty means <data_dir>/sessions.",
    ).tag(config=True)
    data_dir = Unicode(
        help="rlm_kernel's data directory; empty means the platform's user data directory "
        "(platformdirs): $XDG_DATA_HOME/rlm_kernel (~/.local/share/rlm_kernel) on Linux, "
        "~/Library/Application Support/rlm_kernel on macOS, %LOCALAPPDATA%\\rlm_kernel on Windows.",
    ).tag(config=True)

    # A copy works a derived setting out again unless it was given, so a variable set after the first
    # %rlm (`%env`, .env) is seen. Every assignment counts, also one of the value the default has:
    # traitlets notifies observers only of changes, and `api_key_env = "OPENAI_API_KEY"` given with
    # provider="azure" must stay what was given. Constructor keywords, traitlets config and %config
    # all assign through setattr; a worked-out default does not.
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _DERIVED:
            self.__dict__.setdefault("_given_names", set()).add(name)
        try:
            super().__setattr__(name, value)
        except TraitError as exc:
            error = setting_error(name, value, exc)
            if self._cross_validation_lock:  # loading config: traitlets rolls back on TraitError
                raise SettingValueError(error) from None
            raise error from None

    # A bad value met while traitlets holds notifications (the constructor, config loading, which
    # %config does) surfaces as a SettingValueError once it has rolled back: raise ours.
    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except SettingValueError as exc:
            raise exc.error from None

    def _load_config(self, *args: Any, **kwargs: Any) -> None:
        try:
            super()._load_config(*args, **kwargs)
        except SettingValueError as exc:
            raise exc.error from None

    @observe("provider")
    def _provider_changed(self, change: Mapping[str, Any]) -> None:
        # A default worked out for the old provider would name its variables (OPENAI_BASE_URL where
        # Azure's endpoint is AZURE_OPENAI_ENDPOINT): forget it, so it is worked out again when read.
        given = self.__dict__.get("_given_names", set())
        for name in _BY_PROVIDER:
            if name not in given:
                self._trait_values.pop(name, None)

    @default("model")
    def _default_model(self) -> str:
        return env_value("RLM_MODEL") or ""

    @default("sub_model")
    def _default_sub_model(self) -> str:
        return env_value("RLM_SUB_MODEL") or ""

    @default("base_url")
    def _default_base_url(self) -> str:
        if self.provider == "azure":
            return env_value("AZURE_OPENAI_ENDPOINT") or ""
        return env_value("OPENAI_BASE_URL") or ""

    @default("api_key_env")
    def _default_api_key_env(self) -> str:
        return _AZURE_KEY_ENV if self.provider == "azure" else _DEFAULT_KEY_ENV

    @default("api_version")
    def _default_api_version(self) -> str:
        return env_value("OPENAI_API_VERSION") or _DEFAULT_API_VERSION

    # --- derived values ----------------------------------------------------------------------------
    def resolve_api_key(self) -> str | None:
        """The API key to send to ``base_url``: the one in ``api_key_env`` (environment, then .env),
        read late, never stored; None when there is none or it is withheld (``key_withheld``)."""
        if self.key_withheld() is not None:
            return None
        return env_value(self.api_key_env)

    def key_withheld(self) -> str | None:
        """Why the key in ``api_key_env`` is not sent to ``base_url`` (None: it is). Only the default
        OPENAI_API_KEY is ever withheld, from a base_url set in these settings that points at another
        host than OpenAI's, this machine or OPENAI_BASE_URL's (``_secrets.key_withheld``)."""
        given = self.__dict__.get("_given_names", set())
        return key_withheld(
            self.base_url,
            default_key=self.provider == "openai" and "api_key_env" not in given,
            base_url_given="base_url" in given,
        )

    def resolved_data_dir(self) -> Path:
        """``data_dir``, or the platform's user data directory for rlm_kernel (platformdirs)."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        return user_data_dir()

    def resolved_trajectory_dir(self) -> Path:
        """``trajectory_dir``, or ``<data_dir>/sessions``."""
        if self.trajectory_dir:
            return Path(self.trajectory_dir).expanduser()
        return self.resolved_data_dir() / "sessions"

    def resolved_cache_dir(self) -> Path:
        """``cache_dir``; else ``<data_dir>/cache`` when data_dir is set; else the platform's user
        cache directory for rlm_kernel (platformdirs)."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        if self.data_dir:
            return self.resolved_data_dir() / "cache"
        return user_cache_dir()

    def secrets(self) -> list[str]:
        """What these settings hold that must never be shown or written: the API key, the credentials
        in base_url, and header or secret-named values in model_kwargs (for a ``Redactor``)."""
        return [
            *filter(None, [env_value(self.api_key_env)]),  # withheld or not: the code can read it
            *url_secrets(self.base_url),
            *kwargs_secrets(self.model_kwargs),
        ]

    def load_rules(self) -> LoadRules:
        """What a directory or glob context loads under these settings (``_files.LoadRules``)."""
        return LoadRules(
            include=tuple(self.include),
            exclude=tuple(self.exclude),
            gitignore=self.gitignore,
            default_skips=self.default_skips,
            max_file_mb=self.max_file_mb,
            max_mb=self.max_context_mb,
        )

    def effective_sub_model(self) -> str:
        """The model sub-calls go to: ``sub_model``, or the root ``model`` when that is empty."""
        return self.sub_model or self.model

    def with_overrides(self, overrides: Mapping[str, Any]) -> RLM:
        """A copy with some settings changed; unknown names raise a ConfigError with suggestions."""
        names = setting_names()
        clone = RLM(config=self.config)
        given = self.__dict__.get("_given_names", set())
        for name in names:
            if name not in _DERIVED or name in given:
                setattr(clone, name, getattr(self, name))
        for key, value in overrides.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, n=3)
                hint = f"Did you mean {', '.join(close)}? " if close else ""
                raise ConfigError(
                    f"Unknown setting {key!r}",
                    fix=f"{hint}`%config RLM` lists every setting with its help",
                )
            try:
                setattr(clone, key, value)
            except ConfigError:
                raise
            except Exception as exc:  # traitlets raises TraitError and friends; say it in our words
                raise ConfigError(
                    f"Setting RLM.{key} cannot be {value!r}: {exc}",
                    fix="`%config RLM` shows the type and allowed values of every setting",
                    setting=f"RLM.{key}",
                ) from exc
        return clone

    def public_dict(self) -> dict[str, Any]:
        """Every setting, safe to record: no secrets, URLs without credentials."""
        values = {name: getattr(self, name) for name in setting_names()}
        values["base_url"] = redact_url(values["base_url"])
        values["model_kwargs"] = redact_kwargs(values["model_kwargs"])
        return values


def setting_names() -> list[str]:
    return sorted(RLM.class_trait_names(config=True))


def parse_assignment(item: str) -> tuple[str, Any]:
    """``NAME=VALUE`` as given to ``--set`` (CLI and ``%rlm``): the value is read as JSON when it
    parses (numbers, true/false, null, lists), else kept as text, so ``--set model=gpt-5`` needs no
    quotes. The name is checked later, by ``RLM.with_overrides``."""
    name, sep, raw = item.partition("=")
    if not sep or not name.strip():
        raise ConfigError(
            f"--set {item!r} is not NAME=VALUE",
            fix="Write it like --set max_tokens=200000 (`%config RLM` lists the settings)",
        )
    try:
        return name.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return name.strip(), raw
