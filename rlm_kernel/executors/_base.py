"""What an executor is: something that runs one iteration's code and reports what happened."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable


@dataclass
class ExecResult:
    """What running one code block produced: its output, the error it raised, the value of a
    trailing bare expression, and how it ended (timed out, interrupted)."""

    stdout: str = ""
    stderr: str = ""
    # The formatted traceback of an exception the code raised (only the model's own frames).
    error: str | None = None
    error_type: str | None = None
    # repr() of a trailing bare expression, shown as ``Out: …`` like a notebook cell would.
    value: str | None = None
    duration: float = 0.0
    timed_out: bool = False
    # A real interrupt (a kernel interrupt, Ctrl-C) stopped the code; the session pauses.
    interrupted: bool = False
    # Characters of stdout and stderr dropped between the head and the tail that were kept
    # (RLM.max_capture_chars); the text holds a marker where they were.
    output_cut: int = 0
    # What the executor tells the model about this block besides its output: standard-library or
    # bookkeeping names the code rebound and that were put back, a block still running after its limit.
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in an iteration record's ``results``."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), list) else value
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecResult:
        """The result back from ``to_dict``'s form; fields it lacks keep their defaults."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class Executor(Protocol):
    """Where a session runs the model's code: a namespace, and a way to run one block in it."""

    @property
    def namespace(self) -> MutableMapping[str, Any]:
        """The variables the code sees and defines; ``P`` and the helpers are bound in it."""
        ...

    def run(self, code: str, *, label: str, timeout: float | None) -> ExecResult:
        """Run one block. Never raises for what the code did: its error goes in the result.

        ``label`` names the block in tracebacks (``"<session> step 2.1"``); ``timeout`` is
        ``RLM.iteration_timeout`` in seconds, or None for no limit.
        """
        ...


@runtime_checkable
class Echoing(Protocol):
    """An executor that can show the code's output live (``echo_stdout``/``echo_stderr``, a notebook
    cell) and scrub it first.

    The session sets ``echo_scrub`` to its ``Redactor.scrub`` (``executors.scrub_echo``, from
    ``BlockRunner``): the echo then passes on whole lines, scrubbed (``_capture.ScrubbedEcho``).
    None (an executor used on its own) echoes the output as written.
    """

    echo_scrub: Callable[[str], str] | None


@runtime_checkable
class Sandboxed(Protocol):
    """What an executor that isolates the code from the host offers beyond ``Executor``.

    The session asks for these through ``isinstance`` so that plain executors need none of them.
    """

    @property
    def prompt_note(self) -> str:
        """A system-prompt section on what the sandbox lacks, so the model does not waste steps."""
        ...

    def admits_tool(self, fn: Callable[..., Any]) -> bool:
        """Whether a user tool may be exposed inside the sandbox."""
        ...

    def release(self) -> None:
        """Free the sandbox's resources; the next ``run`` picks up the state where it was."""
        ...
