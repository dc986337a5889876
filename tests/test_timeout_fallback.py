"""Iteration timeouts where there is no SIGALRM (Windows): the watchdog thread keeps the limit.

The platform is simulated by removing SIGALRM and the interval timer from the ``signal`` module, as
on Windows; the code under test runs unchanged and has to pick the watchdog by itself.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import rlm_kernel
from rlm_kernel import RLM
from rlm_kernel._timeout import uses_alarm
from rlm_kernel.testing import ScriptedServer, fence, settings


@contextmanager
def without_sigalrm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``signal`` module as Windows has it: no SIGALRM, no setitimer/getitimer.

    Put back before the test returns, pass or fail: pytest-timeout needs them when the test ends.
    """
    with monkeypatch.context() as patch:
        for name in ("SIGALRM", "setitimer", "getitimer", "ITIMER_REAL"):
            patch.delattr(signal, name)
        yield


def test_the_main_thread_uses_sigalrm_where_there_is_one() -> None:
    assert uses_alarm()


def test_without_sigalrm_runaway_code_is_stopped_and_the_session_goes_on(
    serve: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(
        {"root": [fence("while True:\n    pass"), fence("x = 6 * 7\nprint(x)"), fence("FINAL(x)")]}
    )
    config = RLM().with_overrides(settings(server, iteration_timeout=0.5))
    with without_sigalrm(monkeypatch):
        assert not uses_alarm()
        result = rlm_kernel.Session("q", "c", config=config).run()
    assert result.answer == "42", result.message
    first, second = result.trajectory.iterations[:2]
    assert first["results"][0]["timed_out"]
    # The model is told, in the words SIGALRM's path uses, and the namespace still works after it.
    told = server.requests[1].prompt
    assert "IterationTimeout: the code ran longer than 0.5 s and was stopped" in told
    assert "RLM.iteration_timeout" in told
    assert "42" in second["output"]
