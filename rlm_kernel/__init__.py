"""rlm_kernel: Recursive Language Models with a Jupyter kernel as the REPL.

The context lives in ``P`` inside a persistent namespace; the root model sees only metadata about it,
writes code to inspect it, and delegates pieces to sub-LLM calls or child RLMs from inside that code.
"""

from ._api import run
from ._config import RLM, RLMConfig
from ._context import ContextInfo, Documents, describe_context, load_context
from ._errors import (
    ConfigError,
    ContextError,
    ModelError,
    ReplayMissError,
    RLMError,
    SessionStateError,
    TrajectoryError,
)
from ._records import Proposal, Result
from ._session import Session
from ._trajectory import Trajectory
from ._version import __version__

__all__ = [
    "RLM",
    "ConfigError",
    "ContextError",
    "ContextInfo",
    "Documents",
    "ModelError",
    "Proposal",
    "RLMConfig",
    "RLMError",
    "ReplayMissError",
    "Result",
    "Session",
    "SessionStateError",
    "Trajectory",
    "TrajectoryError",
    "__version__",
    "describe_context",
    "load_context",
    "run",
]
