"""The RLM loop end to end through the real openai SDK against the scripted server."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import ssl
import string
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import RLM, Trajectory
from rlm_kernel._aio import run_sync
from rlm_kernel._events import SubcallFinished, SubcallStarted
from rlm_kernel._timeout import IterationTimeout, time_limit
from rlm_kernel.models import Message, Usage
from rlm_kernel.models.openai import OpenAIClient
from rlm_kernel.testing import ChatRequest, Reply, ScriptedServer, child_rlm_sub, fence, settings

NEEDLE = "TANGERINE-4491"
# The scenarios that must behave the same in-process and in the sandbox.
EXECUTORS = ["namespace", "monty"]


def haystack(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(500)]
    text: list[str] = []
    total = 0
    while total < size:
        sentence = " ".join(rng.choices(words, k=12)) + ". "
        text.append(sentence)
        total += len(sentence)
    body = "".join(text)[:size]
    middle = size * 2 // 3
    return body[:middle] + f" The vault code is {NEEDLE}. " + body[middle:]


def sub_reader(request: ChatRequest) -> str:
    """A sub-model that 'reads' its prompt: it reports the vault code if the chunk holds it."""
    return NEEDLE if NEEDLE in request.prompt else "none"


FINISHERS = {
    "FINAL_VAR": 'code = found[0]\nFINAL_VAR("code")',
    "FINAL": "FINAL(found[0])",
    "answer": 'answer["content"] = found[0]\nanswer["ready"] = True',
}


def needle_script(finisher: str) -> list[str]:
    return [
        fence(
            'import re\nhits = [m.start() for m in re.finditer("vault code", P)]\nprint(len(P), hits[:5])'
        ),
        fence(
            "chunks = [P[i:i + 250_000] for i in range(0, len(P), 250_000)]\n"
            'answers = llm_batch(["Report the vault code in this text, or none:\\n" + c for c in chunks])\n'
            'found = [a for a in answers if a != "none"]\n'
            "print(len(chunks), found)"
        ),
        fence(FINISHERS[finisher]),
    ]


def kernel_interrupt() -> None:
    """What the kernel's interrupt does: a real SIGINT, which also cuts short a blocking wait."""
    os.kill(os.getpid(), signal.SIGINT)


def expected_prompt_tokens(requests: list[ChatRequest]) -> int:
    return sum(max(1, math.ceil(r.prompt_chars / 4)) for r in requests)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("finisher", sorted(FINISHERS))
def test_needle_in_a_2mb_haystack(
    serve: Callable[..., ScriptedServer], finisher: str, executor: str
) -> None:
    P = haystack(2_000_000)
    server = serve({"root": needle_script(finisher), "sub": sub_reader})

    result = rlm_kernel.run("What is the vault code?", P, **settings(server, executor=executor))

    assert result.reason == "final", result.message
    assert result.answer == NEEDLE
    # The context never enters a root prompt.
    root_requests = [r for r in server.requests if r.model == "root"]
    assert len(root_requests) == 3
    assert all(r.prompt_chars < 20_000 for r in root_requests)
    # The autosaved file holds every iteration, sub-call, token count and timing.
    assert result.path is not None
    saved = Trajectory.load(result.path)
    assert saved == result.trajectory
    iterations = saved.iterations
    assert [it["iteration"] for it in iterations] == [1, 2, 3]
    calls = iterations[1]["subcalls"]
    chunks = math.ceil(len(P) / 250_000)
    assert len(calls) == chunks
    assert [c["batch"]["index"] for c in calls] == list(range(chunks))
    assert sum(c["response"] == NEEDLE for c in calls) == 1
    for call in calls:
        assert call["usage"]["prompt_tokens"] > 0
        assert call["usage"]["completion_tokens"] > 0
        assert call["latency"] > 0
    for it in iterations:
        assert it["model_call"]["usage"]["prompt_tokens"] > 0
        assert it["duration"] > 0
    assert iterations[2]["final"] == {"value": NEEDLE, "source": finisher}
    # Usage adds up exactly to what the server reported.
    assert result.usage.total.prompt_tokens == expected_prompt_tokens(server.requests)
    assert result.usage.total.calls == len(server.requests) == 3 + chunks
    assert saved.final is not None
    assert saved.final["reason"] == "final"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_rlm_query_runs_a_child_rlm_at_depth_2(
    serve: Callable[..., ScriptedServer], executor: str
) -> None:
    P = haystack(300_000)

    sub = child_rlm_sub(sub_reader)
    root = [
        fence("print(len(P))"),
        fence(
            "i = P.find('vault code')\n"
            "r = rlm_query('What is the vault code?', P[i - 1000:i + 1000])\n"
            "print(r)"
        ),
        fence("FINAL(r)"),
    ]
    server = serve({"root": root, "sub": sub})

    result = rlm_kernel.run(
        "What is the vault code?", P, **settings(server, max_depth=2, executor=executor)
    )

    assert result.reason == "final", result.message
    assert result.answer == NEEDLE
    [call] = result.trajectory.iterations[1]["subcalls"]
    assert call["kind"] == "rlm_query"
    child = Trajectory.from_dict(call["child"])
    assert child.session["depth"] == 1
    assert child.session["parent_call"] == call["id"]
    assert [it["iteration"] for it in child.iterations] == [1, 2]
    [grandchild_call] = child.iterations[1]["subcalls"]
    assert grandchild_call["kind"] == "llm_query"
    assert grandchild_call["response"] == NEEDLE
    # Usage rolls up exactly: 3 root turns + 2 child turns + 1 plain call, all counted once.
    assert result.usage.total.calls == len(server.requests) == 6
    assert result.usage.total.prompt_tokens == expected_prompt_tokens(server.requests)
    assert call["usage"]["calls"] == 3
    assert result.usage.by_model["sub"].calls == 3


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_interrupt_during_a_child_rlm_stops_it_and_pauses_the_parent(
    serve: Callable[..., ScriptedServer], executor: str
) -> None:
    attempts: list[int] = []

    def child(request: ChatRequest) -> str:
        turn = sum(m["role"] == "assistant" for m in request.messages) + 1
        if turn == 1:
            attempts.append(1)
        # The first child never finishes on its own; the one started again after resuming does.
        if len(attempts) > 1 and turn == 3:
            return fence("FINAL('from the child')")
        return fence(f"print('child turn {turn}')")

    root = [fence("r = rlm_query('dig', 'ctx')\nprint(r)"), fence("FINAL(r)")]
    server = serve({"root": root, "sub": child}, latency={"sub": 0.1, "*": 0.0})
    config = RLM().with_overrides(settings(server, max_depth=2, executor=executor))
    session = rlm_kernel.Session("q", "ctx", config=config)
    panels: dict[str, list[str]] = {"started": [], "finished": []}

    def watch(event: object) -> None:
        if isinstance(event, SubcallStarted | SubcallFinished) and event.depth == 0:
            panels["started" if isinstance(event, SubcallStarted) else "finished"].append(
                event.call_id
            )

    session.subscribe(watch)
    timer = threading.Timer(0.5, kernel_interrupt)  # mid-child
    timer.start()
    result = session.run()
    timer.join()

    assert (session.state, result.reason) == ("paused", "paused")
    assert "was interrupted" in session.message
    assert session.trajectory.iterations == []  # the parent's step is not kept
    time.sleep(0.6)  # a sandboxed child ends at its next safe point, after the call it is in
    asked = len(server.requests)
    time.sleep(0.8)  # a child left running would ask its model again within 0.1 s
    assert len(server.requests) == asked
    assert len(panels["started"]) == 1
    assert panels["finished"] == panels["started"]  # the rlm_query panel does not spin forever

    result = session.run()  # resuming runs the step again, with a new child
    assert (result.reason, result.answer) == ("final", "from the child")
    assert len(attempts) == 2


def test_an_interrupt_during_llm_batch_cancels_the_calls_and_closes_their_panels(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("r = llm_batch(['a', 'b', 'c'])\nprint(r)"), fence("FINAL(r[0])")]
    server = serve({"root": root, "sub": ["x"] * 6}, latency={"sub": 5.0, "*": 0.0})
    config = RLM().with_overrides(settings(server))
    session = rlm_kernel.Session("q", "ctx", config=config)
    events: list[object] = []
    session.subscribe(events.append)
    timer = threading.Timer(0.5, kernel_interrupt)
    timer.start()
    started = time.monotonic()
    session.run()
    timer.join()

    assert session.state == "paused"
    assert time.monotonic() - started < 4  # not the 5 s the sub-model takes
    opened = {e.call_id for e in events if isinstance(e, SubcallStarted)}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the cancellations land on the sub-call loop
        closed = {e.call_id: e.record for e in events if isinstance(e, SubcallFinished)}
        if set(closed) == opened:
            break
        time.sleep(0.05)
    assert len(opened) == 3
    assert set(closed) == opened
    assert {r["error"] for r in closed.values()} == {"interrupted"}
    assert session.subcalls_in_flight == 0


def test_stop_during_a_child_rlm_ends_both_at_their_next_safe_point(
    serve: Callable[..., ScriptedServer],
) -> None:
    def child(request: ChatRequest) -> str:
        if sum(m["role"] == "assistant" for m in request.messages) == 2:
            session.stop()  # %rlm stop, pressed while the first child is on its third turn
        return fence("print('still digging')")  # a child never answers on its own

    code = "for i in range(3):\n    r = rlm_query('dig', 'ctx')\n    print(r)"
    server = serve({"root": [fence(code), fence("FINAL(r)")], "sub": child})
    config = RLM().with_overrides(settings(server, max_depth=2, max_iterations=50, loop_guard=0))
    session = rlm_kernel.Session("q", "ctx", config=config)
    result = session.run()

    assert (result.reason, result.answer) == ("stopped", None)
    [step] = result.trajectory.iterations  # the step that was running finished, and was kept
    first, *later = step["subcalls"]
    assert Trajectory.from_dict(first["child"]).records[-1]["reason"] == "stopped"
    assert "child RLM ended without an answer (stopped" in step["output"]
    # The loop's next children were not started: they would have run their 50 turns each.
    assert [c["child"] for c in later] == [None, None]
    assert step["output"].count("the session is stopping; no child RLM was started") == 2
    assert len(server.requests) == 1 + 3


def test_rlm_query_at_max_depth_1_is_a_plain_call(serve: Callable[..., ScriptedServer]) -> None:
    root = [fence("print(P)"), fence("r = rlm_query('say hi')\nprint(r)"), fence("FINAL(r)")]
    server = serve({"root": root, "sub": ["hi"]})
    result = rlm_kernel.run("q", "tiny context", **settings(server))
    assert result.answer == "hi"
    [call] = result.trajectory.iterations[1]["subcalls"]
    assert call["child"] is None
    assert call["response"] == "hi"


def test_rlm_query_at_the_depth_limit_still_shows_its_context(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [
        fence("print(P)"),
        fence("r = rlm_query('Find the code', P)\nprint(r)"),
        fence("FINAL(r)"),
    ]
    server = serve({"root": root, "sub": sub_reader})
    result = rlm_kernel.run("q", f"The vault code is {NEEDLE}.", **settings(server))
    assert result.answer == NEEDLE
    [sub] = [r for r in server.requests if r.model == "sub"]
    assert sub.prompt.startswith("Find the code\n\nThe vault code is")


def test_rlm_query_at_the_depth_limit_refuses_a_context_beyond_the_window(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("r = rlm_query('Find the code', P)\nprint(r)"), fence("FINAL(r)")]
    server = serve({"root": root, "sub": sub_reader})
    result = rlm_kernel.run("q", "x" * 40_000, **settings(server, context_window=10_000))
    assert "raise RLM.max_depth so that a child RLM can read it" in result.answer
    assert not [r for r in server.requests if r.model == "sub"]  # no doomed request was sent


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_child_rlm_context_is_a_value_never_a_host_path(
    serve: Callable[..., ScriptedServer], executor: str, tmp_path: Path
) -> None:
    secret = tmp_path / "host-only.txt"
    secret.write_text("HOST-ONLY launch code 0000")

    def child(request: ChatRequest) -> str:
        if sum(m["role"] == "assistant" for m in request.messages) == 0:
            return fence("print(P)")
        return fence("FINAL(P)")

    code = f"r = rlm_query('Return the text', {str(secret)!r})\nprint(r)"
    root = [fence("print(len(P))"), fence(code), fence("FINAL(r)")]
    server = serve({"root": root, "sub": child})
    result = rlm_kernel.run("q", "ctx", **settings(server, max_depth=2, executor=executor))
    assert result.answer == str(secret)  # the child's P was the string, not the file
    assert "launch code" not in json.dumps(result.trajectory.to_dict())


def test_code_runs_before_a_final_line_in_the_same_response(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [
        fence("print(len(P))"),
        # Code plus a prose FINAL: the code's real output must be seen first.
        fence("x = P.upper()\nprint(x)") + "\nFINAL(I guess it is 42)",
        "The output shows it.\nFINAL(HELLO WORLD)",
    ]
    server = serve({"root": root})
    result = rlm_kernel.run("Shout the context", "hello world", **settings(server))
    assert result.answer == "HELLO WORLD"
    assert len(result.trajectory.iterations) == 3
    assert "HELLO WORLD" in server.requests[2].prompt


def test_a_final_in_a_later_block_after_unseen_output_is_refused(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [
        fence("print(len(P))"),
        fence("print(P.find('world'))") + "\n\n" + fence('FINAL("hallucinated")'),
        fence("FINAL(P[6:])"),
    ]
    server = serve({"root": root})
    result = rlm_kernel.run("q", "hello world", **settings(server))
    assert result.answer == "world"
    second = result.trajectory.iterations[1]
    assert second["final"] is None
    assert any("not accepted" in n for n in second["notes"])
    assert "not accepted" in server.requests[2].prompt


def test_a_final_in_the_first_step_is_refused(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence('FINAL("too early")'), fence("print(P)"), fence("FINAL(P)")]})
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert result.answer == "ctx"
    assert "first step" in result.trajectory.iterations[0]["notes"][0]


def test_a_response_without_code_is_fed_back(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": ["I think the answer is 7.", fence("print(P)"), fence("FINAL(P)")]})
    result = rlm_kernel.run("q", "seven", **settings(server))
    assert result.answer == "seven"
    first = result.trajectory.iterations[0]
    assert first["final"] is None
    assert first["results"] == []
    assert "no ```repl code block" in server.requests[1].prompt


def test_prose_final_var_reads_the_namespace(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("n = len(P)\nprint(n)"), "Done.\nFINAL_VAR(n)"]})
    result = rlm_kernel.run("q", "abcd", **settings(server))
    assert result.answer == "4"


def test_final_of_an_answer_shaped_dict_submits_its_content(
    serve: Callable[..., ScriptedServer],
) -> None:
    # Recorded from a small model: it mixed up FINAL(...) and the answer dict.
    step = 'answer = {"content": code, "ready": True}\nFINAL(answer)'
    server = serve({"root": [fence("code = P.split()[-1]\nprint(code)"), fence(step)]})
    result = rlm_kernel.run("q", "the code is 7351", **settings(server))
    assert result.answer == "7351"
    assert result.trajectory.iterations[-1]["final"] == {"value": "7351", "source": "FINAL"}


def test_helpers_survive_being_overwritten(serve: Callable[..., ScriptedServer]) -> None:
    root = [
        fence("print(P)"),
        fence("def FINAL(x):\n    return x\nllm_query = None\nP = 'gone'\nFINAL('nope')"),
        fence("FINAL(llm_query('echo ' + P))"),
    ]
    server = serve({"root": root, "sub": lambda r: r.prompt.upper()})
    result = rlm_kernel.run("q", "kept", **settings(server))
    assert result.answer == "ECHO KEPT"
    notes = result.trajectory.iterations[1]["notes"]
    assert any("FINAL" in n and "llm_query" in n and "P" in n for n in notes)


def test_errors_and_tracebacks_reach_the_model(serve: Callable[..., ScriptedServer]) -> None:
    root = [fence("def f():\n    return 1 / 0\nf()"), fence("FINAL('ok')")]
    server = serve({"root": root})
    result = rlm_kernel.run("q", "c", **settings(server))
    assert result.answer == "ok"
    observation = server.requests[1].prompt
    assert "ZeroDivisionError" in observation
    assert "return 1 / 0" in observation


def test_runaway_code_is_stopped_and_the_session_goes_on(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("while True:\n    pass"), fence("FINAL('recovered')")]})
    result = rlm_kernel.run("q", "c", **settings(server, iteration_timeout=0.5))
    assert result.answer == "recovered"
    first = result.trajectory.iterations[0]
    assert first["results"][0]["timed_out"]
    assert "RLM.iteration_timeout" in server.requests[1].prompt


SWALLOWING = [
    "while True:\n    try:\n        time.sleep(1)\n    except:\n        pass",
    "while True:\n    try:\n        pass\n    except BaseException:\n        continue",
    "for i in range(100):\n    try:\n        time.sleep(1)\n    except:\n        try:\n            time.sleep(1)\n        except:\n            pass",
]


@pytest.mark.parametrize(
    ("code", "thread"),
    [
        *[(code, "main") for code in SWALLOWING],
        # Off the main thread a watchdog raises asynchronously: it stops loops, not a swallower.
        ("while True:\n    pass", "worker"),
    ],
    ids=["bare-except", "except-continue", "nested", "worker-thread"],
)
def test_code_that_swallows_the_timeout_is_still_stopped(
    serve: Callable[..., ScriptedServer], code: str, thread: str
) -> None:
    server = serve({"root": [fence("import time\n" + code), fence("FINAL('recovered')")]})
    config = RLM().with_overrides(settings(server, iteration_timeout=0.5))
    session = rlm_kernel.Session("q", "c", config=config)
    took: list[float] = []

    def first_step() -> None:
        started = time.monotonic()
        session.step()
        took.append(time.monotonic() - started)

    if thread == "main":  # SIGALRM
        first_step()
    else:  # the watchdog thread
        worker = threading.Thread(target=first_step)
        worker.start()
        worker.join(timeout=30)
    assert took, "the step never ended"
    assert took[0] < 3
    assert session.trajectory.iterations[0]["results"][0]["timed_out"]
    assert session.run().answer == "recovered"


def test_an_alarm_armed_before_an_iteration_is_kept_and_handed_back() -> None:
    """A test runner's or a host's own SIGALRM: the iteration limit nests inside it."""
    fired: list[float] = []
    outer = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    try:
        # The inner limit comes first: it fires, and the outer alarm is handed back.
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 1.5)
        with pytest.raises(IterationTimeout), time_limit(0.2) as limit:
            time.sleep(5)
        assert limit.fired
        assert time.monotonic() - started < 1.2
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 1.3  # the outer one, re-armed
        time.sleep(1.6)
        assert len(fired) == 1
        assert 1.4 < fired[0] - started < 2.5  # at its own deadline

        # The outer alarm comes first: it acts once, and the inner limit still holds.
        fired.clear()
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(IterationTimeout), time_limit(0.5) as limit:
            time.sleep(5)
        assert limit.fired
        assert time.monotonic() - started < 2.5
        assert len(fired) == 1
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # spent: not armed again
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer)


def test_a_parents_timeout_is_not_taken_by_its_child_rlm(
    serve: Callable[..., ScriptedServer],
) -> None:
    def child(request: ChatRequest) -> str:
        turn = sum(m["role"] == "assistant" for m in request.messages) + 1
        return fence("FINAL('late')") if turn > 3 else fence("import time\ntime.sleep(0.6)")

    root = [fence("r = rlm_query('q', 'abc')\nprint(r)"), fence("FINAL('parent went on')")]
    server = serve({"root": root, "sub": child})
    config = RLM().with_overrides(settings(server, max_depth=2, iteration_timeout=1.0))
    session = rlm_kernel.Session("q", "c", config=config)
    started = time.monotonic()
    record = session.step()
    assert time.monotonic() - started < 1.5  # not the child's 4 turns of 0.6 s
    assert record["results"][0]["timed_out"]
    [call] = record["subcalls"]
    assert call["error"] == "IterationTimeout"
    assert session.run().answer == "parent went on"


def test_output_sent_back_is_truncated_head_and_tail(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print('A' * 5000 + 'B' * 5000)"), fence("FINAL(1)")]})
    rlm_kernel.run("q", "c", **settings(server, max_output_chars=1000))
    observation = server.requests[1].prompt
    assert "characters cut" in observation
    assert "AAAA" in observation
    assert "BBBB" in observation
    assert len(observation) < 2000


def test_max_iterations_ends_with_a_best_answer_call(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print(1)"), fence("print(2)"), "My best guess is 3."]})
    result = rlm_kernel.run("q", "c", **settings(server, max_iterations=2))
    assert result.reason == "max_iterations"
    assert result.answer == "My best guess is 3."
    assert "RLM.max_iterations" in result.message
    assert "cannot run more code" in server.requests[-1].prompt
    final = result.trajectory.final
    assert final is not None
    assert final["forced"]["response"] == "My best guess is 3."


def test_max_tokens_is_shared_with_sub_calls(serve: Callable[..., ScriptedServer]) -> None:
    root = [fence("x = llm_batch(['a' * 4000] * 4)\nprint(len(x))"), "best"]
    server = serve({"root": root, "sub": lambda r: "ok"})
    result = rlm_kernel.run("q", "c", **settings(server, max_tokens=3000))
    assert result.reason == "max_tokens"
    assert "RLM.max_tokens" in result.message
    assert result.answer == "best"


def test_a_batch_stops_at_the_token_limit_instead_of_sending_every_prompt(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("x = llm_batch(['a' * 400] * 40)\nprint(sum(a == 'ok' for a in x))"), "best"]
    server = serve({"root": root, "sub": lambda r: "ok"})
    result = rlm_kernel.run("q", "c", **settings(server, max_tokens=2000, subcall_concurrency=2))
    assert result.reason == "max_tokens"
    sent = len([r for r in server.requests if r.model == "sub"])
    assert sent < 20  # ~110 tokens each: the limit is reached long before the 40th
    calls = result.trajectory.iterations[0]["subcalls"]
    assert sum("Budget exhausted" in (c["error"] or "") for c in calls) == 40 - sent


def test_max_cost_is_enforced_with_prices_and_says_so_without(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("print(1)"), fence("print(2)"), fence("print(3)"), "best"]
    server = serve({"root": root})
    with pytest.warns(UserWarning, match="RLM.max_cost cannot hold") as caught:
        unpriced = rlm_kernel.run("q", "c", **settings(server, max_cost=0.0001, max_iterations=2))
    assert len(caught) == 1  # once, not per call
    assert unpriced.reason == "max_iterations"

    server = serve({"root": root})
    prices = {"root": {"input": 10.0, "output": 10.0}}  # USD per million tokens
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        priced = rlm_kernel.run("q", "c", **settings(server, max_cost=0.001, prices=prices))
    assert priced.reason == "max_cost", priced.message
    assert "RLM.max_cost" in priced.message


def test_wall_timeout_counts_running_time_only(serve: Callable[..., ScriptedServer]) -> None:
    slow = fence("import time\ntime.sleep(0.4)\nprint('step')")
    server = serve({"root": [slow, fence("FINAL(1)"), *[slow] * 8, "best"]})
    config = RLM().with_overrides(settings(server, wall_timeout=1.0))
    session = rlm_kernel.Session("q", "c", config=config)
    assert session.run().answer == "1"
    time.sleep(1.2)  # the notebook sat idle: that is not the session's time
    session.follow_up("and again?")
    result = session.run()
    assert result.reason == "wall_timeout", result.message
    assert "RLM.wall_timeout = 1 s" in result.message
    assert 3 <= len(session.trajectory.iterations) <= 5  # one or more steps after the idle time


def test_wall_timeout_counts_steps_taken_by_hand(serve: Callable[..., ScriptedServer]) -> None:
    slow = fence("import time\ntime.sleep(0.4)\nprint('step')")
    server = serve({"root": [*[slow] * 8, "best"]})
    config = RLM().with_overrides(settings(server, wall_timeout=1.0, loop_guard=0))
    session = rlm_kernel.Session("q", "c", config=config)
    while session.state == "paused" or session.state == "idle":
        session.execute()  # one step at a time (it asks the model first): never "running"
        time.sleep(0.3)  # a person reading the step: not counted
    assert session.reason == "wall_timeout"
    assert 3 <= len(session.trajectory.iterations) <= 5


def test_max_subcalls_turns_further_calls_into_error_strings(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("r = llm_batch(['a', 'b', 'c'])\nprint(r)"), fence("FINAL(r[2])")]
    server = serve({"root": root, "sub": lambda r: "fine"})
    result = rlm_kernel.run("q", "c", **settings(server, max_subcalls=2))
    assert result.answer is not None
    assert "RLM.max_subcalls" in result.answer
    calls = result.trajectory.iterations[0]["subcalls"]
    assert [c["error"] is None for c in calls] == [True, True, False]
    assert len([r for r in server.requests if r.model == "sub"]) == 2


def test_a_failing_batch_item_does_not_kill_the_batch(serve: Callable[..., ScriptedServer]) -> None:
    def sub(request: ChatRequest) -> Any:
        from rlm_kernel.testing import Fault

        return Fault.status_code(400) if request.prompt == "bad" else request.prompt

    root = [fence("r = llm_batch(['x', 'bad', 'y'])\nprint(r)"), fence("FINAL(r)")]
    server = serve({"root": root, "sub": sub})
    result = rlm_kernel.run("q", "c", **settings(server))
    answers = eval(result.answer or "")
    assert answers[0] == "x"
    assert answers[2] == "y"
    assert answers[1].startswith("Error:")
    assert result.trajectory.iterations[0]["subcalls"][1]["error"]


def test_user_tools_are_listed_and_callable(serve: Callable[..., ScriptedServer]) -> None:
    def search(query: str, k: int = 3) -> list[str]:
        """Find the k passages most relevant to query (BM25)."""
        return [f"passage about {query}"] * k

    server = serve(
        {"root": [fence("hits = search('cats', k=2)\nprint(hits)"), fence("FINAL(hits[0])")]}
    )
    result = rlm_kernel.run("q", "c", tools=[search], **settings(server))
    assert result.answer == "passage about cats"
    system = server.requests[0].messages[0]["content"]
    assert "search(query: str, k: int = 3)" in system
    assert "BM25" in system


def test_sub_call_cache_answers_identical_calls_once(serve: Callable[..., ScriptedServer]) -> None:
    root = [
        fence("a = llm_query('same')\nb = llm_query('same')\nprint(a, b)"),
        fence("FINAL(a + b)"),
    ]
    server = serve({"root": root, "sub": lambda r: "x"})
    result = rlm_kernel.run("q", "c", **settings(server, cache="memory"))
    assert result.answer == "xx"
    assert len([r for r in server.requests if r.model == "sub"]) == 1
    calls = result.trajectory.iterations[0]["subcalls"]
    assert [c["cached"] for c in calls] == [False, True]


def test_the_disk_cache_does_not_answer_for_another_endpoint_or_temperature(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    root = [fence("a = llm_query('same')\nprint(a)"), fence("FINAL(a)")]
    servers = {n: serve({"root": root * 3, "sub": lambda r, n=n: f"from {n}"}) for n in "AB"}
    answers = []
    for name, temperature in [("A", 0.0), ("B", 0.0), ("B", 1.5), ("B", 1.5)]:
        server = servers[name]
        overrides = {"cache": "disk", "cache_dir": str(tmp_path), "temperature": temperature}
        result = rlm_kernel.run("q", "c", **settings(server, **overrides))
        answers.append((result.answer, result.trajectory.iterations[0]["subcalls"][0]["cached"]))
    assert answers == [
        ("from A", False),
        ("from B", False),  # another endpoint
        ("from B", False),  # another temperature
        ("from B", True),  # the same call again
    ]


def test_the_disk_cache_does_not_answer_for_other_model_kwargs(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    root = [fence("a = llm_query('same')\nprint(a)"), fence("FINAL(a)")]
    server = serve({"root": root * 3, "sub": lambda r: "x"})
    cached = []
    for seed in (1, 2, 1):
        overrides = {"cache": "disk", "cache_dir": str(tmp_path), "model_kwargs": {"seed": seed}}
        result = rlm_kernel.run("q", "c", **settings(server, **overrides))
        cached.append(result.trajectory.iterations[0]["subcalls"][0]["cached"])
    assert cached == [False, False, True]  # another seed is another call; the same seed is not


def test_streaming_emits_deltas_and_counts_usage(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(
        {"root": [fence("print('a long enough line of output')"), fence("FINAL('streamed')")]}
    )
    deltas: list[str] = []

    def listen(event: object) -> None:
        if isinstance(event, rlm_kernel._events.ResponseDelta):
            deltas.append(event.text)

    result = rlm_kernel.run("q", "c", on_event=listen, **settings(server, stream=True))
    assert result.answer == "streamed"
    assert len(deltas) > 2
    assert all(r.stream for r in server.requests)
    assert not result.usage.total.estimated
    assert result.usage.total.prompt_tokens == expected_prompt_tokens(server.requests)


@pytest.mark.parametrize("how", ["sync", "async", "stream"])
def test_the_client_reads_text_finish_reason_and_usage_with_cached_tokens_and_cost(
    serve: Callable[..., ScriptedServer], how: str
) -> None:
    reported = Reply(
        "counted", prompt_tokens=100, completion_tokens=3, cached_tokens=40, cost=0.0012
    )
    server = serve({"root": [reported, Reply("cut", finish_reason="length")]})
    config = rlm_kernel.RLM().with_overrides(settings(server, stream=how == "stream"))
    client = OpenAIClient(config)
    messages: list[Message] = [{"role": "user", "content": "hi"}]

    def call() -> Any:
        if how == "async":
            return run_sync(client.acomplete(messages, model="root"))
        return client.complete(messages, model="root")

    first, second = call(), call()
    assert (first.text, first.model, first.finish_reason) == ("counted", "root", "stop")
    assert first.usage == Usage(
        prompt_tokens=100, completion_tokens=3, cached_tokens=40, cost=0.0012, calls=1
    )
    assert (second.text, second.finish_reason) == ("cut", "length")
    assert (second.usage.completion_tokens, second.usage.cost) == (1, None)


def test_both_sdk_clients_are_built_at_set_up_around_one_shared_tls_context(
    serve: Callable[..., ScriptedServer],
) -> None:
    from rlm_kernel.models import openai as sdk_clients

    servers = [serve(["x"]), serve(["y"])]
    clients = [OpenAIClient(rlm_kernel.RLM().with_overrides(settings(s))) for s in servers]
    for client in clients:  # the async one too, so the first llm_batch does not build it
        assert client._key in sdk_clients._SYNC
        assert client._key in sdk_clients._ASYNC
    context = sdk_clients._tls_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    answers = [c.complete([{"role": "user", "content": "hi"}], model="m").text for c in clients]
    assert answers == ["x", "y"]


@pytest.mark.parametrize(
    ("mode", "size", "reason"), [("auto", 100, "baseline"), ("baseline", 50_000, "baseline")]
)
def test_baseline_modes_answer_in_one_direct_call(
    serve: Callable[..., ScriptedServer], mode: str, size: int, reason: str
) -> None:
    server = serve({"root": ["direct answer"]})
    result = rlm_kernel.run("q", "z" * size, **settings(server, mode=mode))
    assert (result.reason, result.answer) == (reason, "direct answer")
    assert "z" * size in server.requests[0].prompt


def test_auto_mode_uses_the_loop_for_large_contexts(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("FINAL(len(P))")]})
    result = rlm_kernel.run("q", "z" * 50_000, **settings(server, mode="auto"))
    assert (result.reason, result.answer) == ("final", "50000")


def test_compaction_summarises_history_not_the_context(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [
        fence("print('x' * 3000)"),
        fence("print('y' * 3000)"),
        "SUMMARY: printed x and y",
        fence("FINAL('done')"),
    ]
    server = serve({"root": root})
    result = rlm_kernel.run(
        "q",
        "c" * 100_000,
        **settings(server, compaction=True, context_window=2000, compaction_threshold=0.5),
    )
    assert result.answer == "done"
    kinds = [r["type"] for r in result.trajectory.records]
    assert "compaction" in kinds
    last = server.requests[-1]
    assert "SUMMARY: printed x and y" in [m["content"] for m in last.messages]
    assert all("x" * 3000 not in m["content"] for m in last.messages)


# --- guards over real HTTP (the unit tier drives them in process: tests/unit/test_guards.py) ------


def test_the_loop_guard_over_http_warns_then_stops_a_repeated_code(
    serve: Callable[..., ScriptedServer],
) -> None:
    look = fence("i = P.find('7')\nprint(i)")
    server = serve({"root": [look, look, look, "It is 7781."]})
    result = rlm_kernel.run("q", "code 7781", **settings(server))
    assert (result.reason, result.answer) == ("loop", "It is 7781.")
    guards = [r for r in result.trajectory.records if r["type"] == "guard"]
    assert [(g["rule"], g["action"], g["iteration"]) for g in guards] == [
        ("repeated_code", "warned", 2),
        ("repeated_code", "stopped", 3),
    ]
    # The warning reached the model in its next prompt, over the wire.
    assert "already above, at step 1" in json.dumps(server.requests[2].messages[-1])
    assert Trajectory.load(result.path) == result.trajectory


def test_the_loop_guard_over_http_sees_a_repeated_output(
    serve: Callable[..., ScriptedServer],
) -> None:
    steps = [fence("print(len(P))"), fence("n = len(P)\nprint(n)"), fence("FINAL(9)")]
    server = serve({"root": steps})
    result = rlm_kernel.run("q", "code 7781", **settings(server))
    [guard] = [r for r in result.trajectory.records if r["type"] == "guard"]
    assert (guard["rule"], guard["action"], guard["repeats"]) == ("repeated_output", "warned", 1)
    assert (result.reason, result.answer) == ("final", "9")


def test_the_prose_nudge_over_http_gives_the_final_line_once(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("print(P[-4:])"), "The answer is 7781.", fence("FINAL('7781')")]
    server = serve({"root": root})
    result = rlm_kernel.run("q", "code 7781", **settings(server))
    [guard] = [r for r in result.trajectory.records if r["type"] == "guard"]
    assert (guard["rule"], guard["action"], guard["iteration"]) == ("prose_answer", "nudged", 2)
    assert "FINAL('7781')" in json.dumps(server.requests[2].messages[-1])
    assert (result.reason, result.answer) == ("final", "7781")
