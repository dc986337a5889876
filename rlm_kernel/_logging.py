"""rlm_kernel's standard ``logging`` loggers: follow a run in the tools people already use.

Off by default: the package logger ``rlm_kernel`` has a ``NullHandler`` and no level, so nothing is
printed until an application configures logging (``logging.basicConfig(level=logging.INFO)``, or a
handler on ``logging.getLogger("rlm_kernel")``). The loggers, one list (``LOGGERS``, which the README
and the tests read):

- ``rlm_kernel.requests``: each model request as it ends: model, tokens, cost, seconds, status
  (DEBUG when it succeeded, WARNING when it failed).
- ``rlm_kernel.retries``: each retry of a model request: why (an HTTP status, a timeout, a dropped
  connection), the wait, which retry of how many (INFO).
- ``rlm_kernel.guards``: each guard intervention (a repeat warned or stopped, a prose answer nudged),
  in the words a notebook shows (INFO).
- ``rlm_kernel.recovery``: a session resumed from its autosave file: what was re-enacted, what
  differed (INFO, WARNING for a difference).

Lines carry names, numbers and the endpoint without credentials, never prompts, answers or keys; and
every line is scrubbed by a ``Redactor`` of the settings' secrets before it is written, built only when
the logger is enabled for that level, so a run with logging off pays nothing for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

__all__ = ["LOGGERS", "PACKAGE", "emit", "logger"]

PACKAGE = "rlm_kernel"
LOGGERS: dict[str, str] = {
    "rlm_kernel.requests": "each model request: model, tokens, cost, seconds, status",
    "rlm_kernel.retries": "each retry of a model request: why, the wait, which retry of how many",
    "rlm_kernel.guards": "each guard intervention: a repeat warned or stopped, a prose answer nudged",
    "rlm_kernel.recovery": "a session resumed from its autosave file: steps re-enacted, differences",
}

# A library's loggers print nothing unless the application asks (the logging HOWTO's advice).
logging.getLogger(PACKAGE).addHandler(logging.NullHandler())


def logger(name: str) -> logging.Logger:
    """One of ``LOGGERS`` (a name not in the list is a bug here, not a new logger)."""
    if name not in LOGGERS:
        raise KeyError(f"{name!r} is not one of rlm_kernel's loggers: {sorted(LOGGERS)}")
    return logging.getLogger(name)


def emit(
    name: str, level: int, message: str, secrets: Callable[[], Iterable[str | None]] = tuple
) -> None:
    """Log ``message`` on logger ``name`` at ``level``, scrubbed of ``secrets()`` (asked for, and
    the scrubber built, only when the line will be written) and of credential shapes."""
    log = logger(name)
    if not log.isEnabledFor(level):
        return
    from ._secrets import (
        Redactor,
    )  # the environment is read for secrets only when a line is written

    log.log(level, "%s", Redactor(secrets()).scrub(message))
