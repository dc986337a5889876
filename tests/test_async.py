"""The async API (issue 16, item 4): ``await rlm_kernel.arun(...)`` and ``AsyncSession``, against the
loopback ScriptedServer over real HTTP through the openai SDK, each test in an event loop of its own
(``asyncio.run``; the suite has no asyncio plugin).

What must hold: ``arun`` runs inside a running loop and takes exactly ``run``'s parameters; 20 runs
awaited together overlap and each answers its own token from its own observations; model code that
blocks does not hold the loop up; cancelling a run stops (``arun``) or pauses (``AsyncSession``) it at
its next safe point with a whole trajectory on disk; events stream onto the loop; a second call that
overlaps the first on one session is refused.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import RLM, AsyncSession, Session, SessionStateError, Trajectory
from rlm_kernel._events import (
    CodeReady,
    Event,
    Finished,
    IterationFinished,
    IterationStarted,
    StateChanged,
)
from rlm_kernel.testing import ChatRequest, ScriptedServer, fence, settings

Serve = Callable[..., ScriptedServer]
_SESSION = re.compile(r"session (\d+):")
_SEEN = re.compile(r"SEEN:(\S+)")
_TOKEN = re.compile(r"TOK-\d+")
PRINT_TOKEN = 'print("SEEN:" + P.split()[-1])'


def _turn(request: ChatRequest) -> int:
    return sum(m["role"] == "assistant" for m in request.messages) + 1


class TokenModel:
    """A root model for runs numbered in their question: it prints the token its context holds, then
    submits the token it saw, noting any observation that holds another run's token."""

    def __init__(self) -> None:
        self.cross_wired: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> str:
        first_user = next(str(m["content"]) for m in request.messages if m["role"] == "user")
        number = int(_SESSION.search(first_user).group(1))  # type: ignore[union-attr]
        if _turn(request) == 1:
            return fence(PRINT_TOKEN)
        observation = request.prompt
        foreign = set(_TOKEN.findall(observation)) - {f"TOK-{number}"}
        if foreign:
            with self.lock:
                self.cross_wired.append(f"run {number} saw {sorted(foreign)}")
        seen = _SEEN.findall(observation)
        return fence(f"FINAL({seen[-1]!r})" if seen else PRINT_TOKEN)


def test_arun_has_exactly_runs_parameters() -> None:
    # One list of parameters: whatever run gains (output=, sub_tools=…), arun takes too.
    assert inspect.signature(rlm_kernel.arun) == inspect.signature(rlm_kernel.run)
    assert inspect.iscoroutinefunction(rlm_kernel.arun)


def test_arun_inside_a_running_loop(serve: Serve) -> None:
    server = serve({"root": [fence("x = len(P)\nprint(x)"), fence("FINAL(x)")]})

    async def main() -> rlm_kernel.Result:
        assert asyncio.get_running_loop().is_running()
        return await rlm_kernel.arun("How long is P?", "abcdefgh" * 5, **settings(server))

    result = asyncio.run(main())
    assert (result.answer, result.reason) == ("40", "final")
    assert len(result.trajectory.iterations) == 2
    assert result.path is not None
    assert Trajectory.load(result.path).final is not None


def test_twenty_concurrent_aruns_answer_independently(serve: Serve) -> None:
    model = TokenModel()
    # 2 root turns of 0.3 s each: 20 runs one after another would take 12 s.
    server = serve({"root": model}, latency=0.3)
    base = settings(server, autosave=False)

    async def main() -> tuple[list[rlm_kernel.Result], float]:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                rlm_kernel.arun(f"session {i}: what is the token?", f"the token is TOK-{i}", **base)
                for i in range(20)
            )
        )
        return list(results), time.perf_counter() - started

    results, elapsed = asyncio.run(main())
    assert [r.answer for r in results] == [f"TOK-{i}" for i in range(20)]
    assert {r.reason for r in results} == {"final"}
    assert model.cross_wired == []
    for i, result in enumerate(results):  # each run's own record holds its own output only
        outputs = [it["output"] for it in result.trajectory.iterations]
        assert f"SEEN:TOK-{i}" in outputs[0]
        assert set(_TOKEN.findall(" ".join(outputs))) == {f"TOK-{i}"}
    assert elapsed < 6.0, f"20 runs took {elapsed:.1f} s: they did not overlap"


def test_request_context_reaches_the_tools_of_each_run(serve: Serve) -> None:
    # An application server keeps per-request state in context variables: each run's tools see the
    # value of the task that awaited it.
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    def whoami() -> str:
        """The id of the request this run serves."""
        return request_id.get()

    server = serve(
        {"root": lambda r: fence("print(whoami())" if _turn(r) == 1 else "FINAL(whoami())")}
    )
    base = settings(server, autosave=False)

    async def serve_request(name: str) -> str | None:
        request_id.set(name)
        result = await rlm_kernel.arun("Who asks?", "x" * 40, tools=[whoami], **base)
        return result.answer

    async def main() -> list[str | None]:
        return list(await asyncio.gather(*(serve_request(f"req-{i}") for i in range(6))))

    assert asyncio.run(main()) == [f"req-{i}" for i in range(6)]


def test_blocking_model_code_leaves_the_loop_free(serve: Serve) -> None:
    server = serve(
        {"root": [fence("import time\ntime.sleep(1.0)\nprint('woke')"), fence("FINAL(1)")]}
    )

    async def main() -> tuple[rlm_kernel.Result, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                await asyncio.sleep(0.02)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        result = await rlm_kernel.arun("Sleep", "x" * 40, **settings(server, autosave=False))
        done.set()
        await ticking
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result.answer == "1"
    assert ticks >= 20, f"the loop ticked only {ticks} times during a 1 s sleep in model code"


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def test_cancelling_arun_stops_the_session_with_its_trajectory_whole(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve(
        {"root": [fence("import time\ntime.sleep(0.6)\nprint('step one done')"), fence("FINAL(2)")]}
    )
    events: list[Event] = []
    sessions = tmp_path / "sessions"

    async def main() -> float:
        task = asyncio.create_task(
            rlm_kernel.arun(
                "Slow",
                "x" * 40,
                on_event=events.append,
                **settings(server, trajectory_dir=str(sessions)),
            )
        )
        await _until(lambda: any(isinstance(e, CodeReady) for e in events))  # step 1 is running
        task.cancel()
        cancelled = time.perf_counter()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.perf_counter() - cancelled

    waited = asyncio.run(main())
    assert waited > 0.2  # the cancelled task waited for step 1 to end: its safe point
    (path,) = sessions.glob("*.jsonl")
    recording = Trajectory.load(path)
    assert [it["output"].strip() for it in recording.iterations] == ["step one done"]
    final = recording.final
    assert final is not None
    assert (final["reason"], final["answer"]) == ("stopped", None)
    assert len([r for r in server.requests if r.model == "root"]) == 1  # no step after the stop
    assert events[-1] == Finished(
        recording.session["session_id"], 0, None, "stopped", final["message"]
    )


def test_cancelled_async_session_pauses_and_goes_on(serve: Serve) -> None:
    server = serve(
        {
            "root": [
                fence("import time\ntime.sleep(0.5)\nx = 21\nprint(x)"),
                fence("FINAL(x * 2)"),
            ]
        }
    )

    async def main() -> tuple[AsyncSession, str, rlm_kernel.Result]:
        s = await AsyncSession.create(
            "Double it", "x" * 40, config=RLM().with_overrides(settings(server))
        )
        task = asyncio.create_task(s.run())
        await _until(lambda: s.pending is not None)  # step 1 proposed, now running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        state = s.state
        return s, state, await s.run()

    s, state_after_cancel, result = asyncio.run(main())
    assert state_after_cancel == "paused"
    assert (result.answer, result.reason) == ("42", "final")
    assert s.path is not None
    recording = Trajectory.load(s.path)
    assert [it["iteration"] for it in recording.iterations] == [1, 2]
    assert recording.final is not None


def test_events_stream_onto_the_loop_until_the_run_ends(serve: Serve) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("FINAL('done')")]}, latency=0.1)

    async def main() -> tuple[list[Event], list[bool], rlm_kernel.Result]:
        s = await AsyncSession.create(
            "Go", "x" * 40, config=RLM().with_overrides(settings(server, autosave=False))
        )
        closed = s.events()
        await closed.aclose()
        assert [e async for e in closed] == []  # closed: nothing more, and no longer subscribed
        stream = s.events()
        task = asyncio.create_task(s.run())
        seen: list[Event] = []
        while_running: list[bool] = []
        async for event in stream:  # ends by itself with the root's Finished
            seen.append(event)
            while_running.append(not task.done())
        result = await task
        # The live numbers, read from the loop, are the finished session's.
        snap = s.snapshot()
        assert (snap.session_state, snap.iteration) == ("done", 2)
        assert snap.tokens == result.usage.total.total_tokens > 0
        return seen, while_running, result

    seen, while_running, result = asyncio.run(main())
    assert result.answer == "done"
    kinds = [type(e) for e in seen]
    assert seen[0] == StateChanged(seen[0].session_id, 0, "idle", "running")
    assert kinds.count(IterationStarted) == 2
    assert kinds.count(IterationFinished) == 2
    assert kinds[-1] is Finished
    assert all(while_running[: kinds.index(Finished)])  # streamed as they happened, not at the end


def test_a_second_overlapping_call_is_refused(serve: Serve) -> None:
    server = serve({"root": [fence("import time\ntime.sleep(0.4)"), fence("FINAL(1)")]})

    async def main() -> tuple[str, rlm_kernel.Result]:
        s = await AsyncSession.create(
            "Go", "x" * 40, config=RLM().with_overrides(settings(server, autosave=False))
        )
        task = asyncio.create_task(s.run())
        await asyncio.sleep(0.05)
        with pytest.raises(SessionStateError) as refused:
            await s.step()
        return str(refused.value), await task  # the run itself went on untouched

    message, result = asyncio.run(main())
    assert "busy with run()" in message
    assert "step() was refused" in message
    assert result.answer == "1"


def test_stop_and_pause_during_a_run(serve: Serve) -> None:
    sleepy = fence("import time\ntime.sleep(0.3)")
    server = serve({"root": [sleepy, sleepy, sleepy, fence("FINAL(1)")]})

    async def main() -> tuple[rlm_kernel.Result, rlm_kernel.Result]:
        s = await AsyncSession.create(
            "Go", "x" * 40, config=RLM().with_overrides(settings(server, autosave=False))
        )
        task = asyncio.create_task(s.run())
        await _until(lambda: s.pending is not None)
        s.pause()
        paused = await task
        assert len(s.trajectory.iterations) == 1  # the step in progress ended first
        task = asyncio.create_task(s.run())
        await _until(lambda: s.state == "running" and s.pending is not None)
        s.stop()
        return paused, await task

    paused, stopped = asyncio.run(main())
    assert paused.reason == "paused"
    assert (stopped.reason, stopped.answer) == ("stopped", None)
    assert len(stopped.trajectory.iterations) == 2  # each request waited for its step to end


def test_wrapping_a_session_and_driving_it_by_hand(serve: Serve, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("forty-two\n")
    server = serve(
        {
            "root": [
                fence("x = 1"),
                fence("y = x * 2\nprint(y)"),
                fence("FINAL(y)"),
                fence("FINAL(y + 1)"),
            ]
        }
    )
    config = RLM().with_overrides(settings(server, autosave=False))

    async def main() -> list[Any]:
        s = AsyncSession(Session("Double it", str(tmp_path / "notes.txt"), config=config))
        proposal = await s.propose()
        seen: list[Any] = [proposal.code, s.state]
        await s.execute("x = 41 + 1")  # a person's edit in place of the model's x = 1
        result = await s.run()
        seen += [result.answer, s.session.context.strip()]  # type: ignore[union-attr]
        await s.follow_up("And one more?")
        seen.append((await s.run()).answer)
        again = await s.rewind(3)
        seen += [again.iteration, s.state]
        return seen

    assert asyncio.run(main()) == ["x = 1", "idle", "84", "forty-two", "85", 3, "paused"]


def test_arun_cancelled_at_once_and_cancelled_twice(serve: Serve, tmp_path: Path) -> None:
    script = {"root": [fence("import time\ntime.sleep(1.0)\nprint('slept')"), fence("FINAL(1)")]}
    server, other = serve(script), serve(script)  # one each: the first may take a step or none
    first, second = tmp_path / "first", tmp_path / "second"
    events: list[Event] = []

    async def main() -> float:
        # Cancelled while the session is still being built: it is stopped before its first step.
        task = asyncio.create_task(
            rlm_kernel.arun("Slow", "x" * 40, **settings(server, trajectory_dir=str(first)))
        )
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Cancelled again while it waits for the step in progress: it stops waiting at once.
        task = asyncio.create_task(
            rlm_kernel.arun(
                "Slow",
                "x" * 40,
                on_event=events.append,
                **settings(other, trajectory_dir=str(second)),
            )
        )
        await _until(lambda: any(isinstance(e, CodeReady) for e in events))
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()
        cancelled = time.perf_counter()
        with pytest.raises(asyncio.CancelledError):
            await task
        waited = time.perf_counter() - cancelled
        await _until(lambda: any(isinstance(e, Finished) for e in events))  # on its own thread
        return waited

    waited = asyncio.run(main())
    assert waited < 0.5
    for folder in (first, second):
        (path,) = folder.glob("*.jsonl")
        final = Trajectory.load(path).final
        assert final is not None
        assert final["reason"] == "stopped"
    # Cancelled at once: stopped before its first step, or, when a loaded machine runs the session's
    # thread before the loop delivers the cancel, after the step already in progress; never later.
    assert len(Trajectory.load(next(first.glob("*.jsonl"))).iterations) <= 1
    assert Trajectory.load(next(second.glob("*.jsonl"))).iterations[0]["output"].strip() == "slept"


def test_errors_reach_the_awaiting_task_as_run_raises_them(serve: Serve) -> None:
    server = serve({"root": [fence("print(1)")]})

    async def main() -> None:
        with pytest.raises(
            rlm_kernel.ConfigError
        ) as raised:  # no model named: said before a request
            await rlm_kernel.arun("Go", "x" * 40, base_url=server.base_url, max_retries=0)
        assert "model" in str(raised.value).lower()
        with pytest.raises(rlm_kernel.ConfigError, match="not_a_setting"):
            await rlm_kernel.arun("Go", "x" * 40, not_a_setting=1, **settings(server))

    asyncio.run(main())
    assert server.requests == []


def test_no_thread_outlives_the_runs(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    # The calls' threads end with their calls, and the spawner that starts them when it is idle.
    monkeypatch.setattr("rlm_kernel._async._Spawner.IDLE", 0.2)
    server = serve({"root": TokenModel()})
    base = settings(server, autosave=False)

    async def main() -> list[str | None]:
        results = await asyncio.gather(
            *(
                rlm_kernel.arun(f"session {i}: token?", f"the token is TOK-{i}", **base)
                for i in range(5)
            )
        )
        return [r.answer for r in results]

    assert asyncio.run(main()) == [f"TOK-{i}" for i in range(5)]
    deadline = time.monotonic() + 5.0
    while any(t.name.startswith(("rlm-arun", "rlm-async")) for t in threading.enumerate()):
        assert time.monotonic() < deadline, [t.name for t in threading.enumerate()]
        time.sleep(0.05)
