"""One exception hierarchy for everything rlm_kernel raises at a person.

Every error says what happened (``what``), what to do about it (``fix``) and, where one applies, the
setting that controls it (``setting``, spelled as ``RLM.<name>`` so it can be pasted into ``%config``)
and the model endpoint involved (``endpoint``). Front ends render these fields; ``str(err)`` joins them
into one short paragraph, never a traceback wall.
"""

from __future__ import annotations

from typing import Any


class RLMError(Exception):
    """Base class of every error rlm_kernel raises on purpose."""

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
    """The model endpoint could not give an answer."""


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
    """The endpoint does not serve the model asked for (404); ``details["offered"]`` holds what its
    ``GET /models`` lists, when that answered."""


class SessionStateError(RLMError):
    """An operation does not fit the session's current state (e.g. ``step`` on a finished session)."""


class TrajectoryError(RLMError):
    """A trajectory file cannot be read: missing, corrupt, or from an unknown schema version."""


class ReplayMissError(RLMError):
    """Replay was asked for a model response that the recording does not hold."""
