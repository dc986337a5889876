"""Where iteration code runs."""

from ._base import ExecResult, Executor
from .namespace import NamespaceExecutor

__all__ = ["ExecResult", "Executor", "NamespaceExecutor"]
