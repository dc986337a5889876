"""Every exception and warning rlm_kernel raises or warns, in one hierarchy.

Errors (``RLMError`` and its subclasses) say what happened (``what``), what to do about it (``fix``)
and, where one applies, the setting that controls it (``setting``, spelled as ``RLM.<name>`` so it can
be pasted into ``%config``) and the model endpoint involved (``endpoint``). Front ends render these
fields; ``str(err)`` joins them into one short paragraph, never a traceback wall.

::

    RLMError                      anything rlm_kernel raises on purpose
    ├── ConfigError               a setting is missing, misspelt or cannot work
    ├── ContextError              the context cannot be used
    ├── ModelError                the model endpoint gave no answer
    │   ├── ModelAuthError        the API key was refused (401/403)
    │   ├── ModelConnectionError  unreachable, or no answer in time
    │   ├── ModelRateLimitError   429 after every retry
    │   ├── ModelServerError      5xx after every retry
    │   └── ModelResponseError    an answer, but not a usable chat completion
    │       └── ModelNotFoundError  the endpoint does not serve that model (404)
    ├── ProtocolError             a malformed comm message between kernel and frontend
    ├── ReplayMissError           a recording lacks the response a replay asked for
    ├── RetrievalError            a retriever or index cannot answer (no such document, server down)
    ├── SessionStateError         the call does not fit the session's state
    └── TrajectoryError           a trajectory file cannot be read or written
        └── AutosaveError         writing the autosave failed mid-run (a full disk)

    IterationTimeout (BaseException)  raised inside a step's code that ran too long

    RLMWarning (UserWarning)      anything rlm_kernel warns about
    ├── ContextMismatchWarning    a replay runs on another context than the recorded one
    ├── CostUnknownWarning        RLM.max_cost cannot be kept: a model's calls have no cost
    ├── RecoveryWarning           re-running a loaded session printed something else
    └── SandboxToolWarning        tools left out of the monty sandbox

Catch ``RLMError`` for any error, ``ModelError`` for anything the endpoint did; filter warnings with
``warnings.filterwarnings("ignore", category=rlm_kernel.errors.RLMWarning)`` or one of its subclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AutosaveError",
    "ConfigError",
    "ContextError",
    "ContextMismatchWarning",
    "CostUnknownWarning",
    "IterationTimeout",
    "MCPServerError",
    "MCPToolError",
    "ModelAuthError",
    "ModelConnectionError",
    "ModelError",
    "ModelNotFoundError",
    "ModelRateLimitError",
    "ModelResponseError",
    "ModelServerError",
    "ProtocolError",
    "RLMError",
    "RLMWarning",
    "RecoveryWarning",
    "ReplayMissError",
    "RetrievalError",
    "SandboxToolWarning",
    "SessionStateError",
    "ToolArgumentsError",
    "TrajectoryError",
]


# ---- errors ------------------------------------------------------------------------------------


class RLMError(Exception):
    """Base class of every error rlm_kernel raises on purpose.

    ``RLMError(what, fix=..., setting=..., endpoint=..., **details)``: ``what`` happened, ``fix`` says
    what to do about it, ``setting`` names the setting that controls it (``"RLM.max_tokens"``),
    ``endpoint`` the model endpoint involved; ``details`` holds anything else a front end may show
    (``ModelNotFoundError`` keeps the models the endpoint offers there).
    """

    def __init__(
        self,
        what: str,
        *,
        fix: str = "",
        setting: str | None = None,
        endpoint: str | None = None,
        **details: Any,
    ) -> None:
        self.what = what
        self.fix = fix
        self.setting = setting
        self.endpoint = endpoint
        self.details = details
        super().__init__(what)

    def __str__(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.endpoint:
            parts.append(f"Endpoint: {self.endpoint}.")
        if self.fix:
            parts.append(self.fix.rstrip(".") + ".")
        return " ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields would be lost by the default Exception pickling.
        return (
            _rebuild,
            (type(self), self.what, self.fix, self.setting, self.endpoint, self.details),
        )

    def to_dict(self) -> dict[str, Any]:
        """The structured form written to trajectories and sent to front ends."""
        return {
            "type": type(self).__name__,
            "what": self.what,
            "fix": self.fix,
            "setting": self.setting,
            "endpoint": self.endpoint,
        }


def _rebuild(
    cls: type[RLMError],
    what: str,
    fix: str,
    setting: str | None,
    endpoint: str | None,
    details: dict[str, Any],
) -> RLMError:
    return cls(what, fix=fix, setting=setting, endpoint=endpoint, **details)


class ConfigError(RLMError):
    """A setting is missing, misspelt or has a value that cannot work."""


class ContextError(RLMError):
    """The context cannot be used: unknown name, unreadable path, empty, wrong type."""


class ModelError(RLMError):
    """The model endpoint could not give an answer.

    A session that meets one pauses (reason ``error``) instead of failing: ``%rlm resume`` or another
    ``run()`` takes it up again once the cause is fixed.
    """


class ModelConnectionError(ModelError):
    """The endpoint is unreachable or did not answer in time."""


class ModelRateLimitError(ModelError):
    """The endpoint kept answering 429 after every retry."""


class ModelAuthError(ModelError):
    """The endpoint refused the API key (401/403)."""


class ModelServerError(ModelError):
    """The endpoint kept failing with 5xx after every retry."""


class ModelResponseError(ModelError):
    """The endpoint answered, but not with a usable chat completion."""


class ModelNotFoundError(ModelResponseError):
    """The endpoint does not serve the model asked for (404).

    ``details["offered"]`` holds what its ``GET /models`` lists, when that answered.
    """


class MCPServerError(RLMError):
    """An MCP server given as a tool (``rlm_kernel.MCPServer``) could not be started or listed: the
    message names its command or URL and ends with what it printed on stderr.
    ``details["server"]`` holds the command line or URL."""


class MCPToolError(RLMError):
    """An MCP server's tool answered with an error (the message is its text). The model's code gets
    it raised from the tool's function (``tools=``); a sub-model gets it as the tool's result."""


class ToolArgumentsError(RLMError):
    """A sub-model called a tool (``sub_tools=``) that does not exist, or with arguments that do not
    fit its schema. Never raised into the model's code: the sub-model reads it as the tool's result."""


class RetrievalError(RLMError):
    """A retriever (``retriever=``, ``rlm_kernel.index``) cannot answer: no such index or document,
    an id outside the scope a parent gave, a query the backend refuses, a server that is down."""


class ProtocolError(RLMError, ValueError):
    """A comm message that is not a well-formed protocol-1 message (kernel ↔ JupyterLab extension)."""


class ReplayMissError(RLMError):
    """Replay was asked for a model response that the recording does not hold."""


class SessionStateError(RLMError):
    """An operation does not fit the session's current state (e.g. ``step`` on a finished session)."""


class TrajectoryError(RLMError):
    """A trajectory file cannot be read (missing, corrupt, or from an unknown schema version) or
    written."""


class AutosaveError(TrajectoryError):
    """Appending to the autosave file failed during a run (a full disk, the file taken away).

    Nothing is lost: the session keeps every record in memory (``session.trajectory``,
    ``result.trajectory``) and pauses (reason ``error``), or keeps its answer if it had one. Resuming
    it writes the file whole again before it goes on; ``trajectory.save(path)`` writes it elsewhere.
    """


class IterationTimeout(BaseException):
    """Raised inside a step's code that ran longer than ``RLM.iteration_timeout``.

    A BaseException, like KeyboardInterrupt, so that the model's own ``except Exception`` does not
    swallow it; a tool that catches BaseException should let it through. The session records it as
    the step's error and the loop goes on. ``args[0]`` is the limit in seconds.
    """


# ---- warnings ----------------------------------------------------------------------------------


class RLMWarning(UserWarning):
    """Base class of every warning rlm_kernel issues; filter on it to silence or escalate them all."""


class ContextMismatchWarning(RLMWarning):
    """A replay runs on a context whose sha256 differs from the recorded one.

    The replayed model answers may then not fit what the code now prints.
    """


class CostUnknownWarning(RLMWarning):
    """``RLM.max_cost`` cannot be kept: the endpoint reports no cost for a model's calls.

    Neither ``RLM.prices`` nor the genai-prices table (``RLM.known_prices``) has a price for that
    model either. Warned once per session tree; add a price, or
    limit ``RLM.max_tokens`` instead.
    """


class RecoveryWarning(RLMWarning):
    """Re-running a loaded session (``rlm_kernel.resume``) printed something else than the record.

    ``mismatches`` holds one ``Mismatch(iteration, diff)`` per step that differs; the namespace holds
    what the re-run made, the model's history what the model saw.
    """

    # Typed loosely: Mismatch lives with the recovery code, above this module's layer.
    def __init__(self, message: str, mismatches: Sequence[Any]) -> None:
        super().__init__(message)
        self.mismatches = tuple(mismatches)


class SandboxToolWarning(RLMWarning):
    """Tools were left out of the monty sandbox because they are not marked ``@sandbox_safe``.

    A tool runs with the host's full rights, so only tools marked with ``rlm_kernel.sandbox_safe`` are
    exposed to code running under ``RLM.executor = "monty"``.
    """
