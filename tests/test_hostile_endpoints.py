"""Endpoints that misbehave and replies that attack the parser: each ends in a stated state, in time.

Everything goes through the real openai SDK over real HTTP to the loopback ``ScriptedServer``, which
trickles answers (a byte at a time, so the HTTP library's read timeout never fires), cuts streams off
before their finish reason, and answers 10 MB replies. What the model is sent is checked on the wire.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import rlm_kernel
from rlm_kernel import RLM, ConfigError
from rlm_kernel._prompts import BEST_ANSWER_PROMPT, prose_final
from rlm_kernel._session import Session
from rlm_kernel.errors import ModelConnectionError
from rlm_kernel.models import call_deadline
from rlm_kernel.models.openai import OpenAIClient
from rlm_kernel.testing import Fault, ScriptedServer, fence, settings

HELLO = [{"role": "user", "content": "hello"}]
BEST_ASKED = BEST_ANSWER_PROMPT.split("{")[0]  # "You cannot run more code: "

transports = pytest.mark.parametrize("lean_http", [True, False], ids=["lean", "sdk-transport"])
streamed = pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])


@contextmanager
def takes_less_than(seconds: float) -> Iterator[None]:
    """The block must be over within ``seconds``: a behavioural bound (today's code takes minutes
    or forever), generous enough for a loaded machine."""
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took < seconds, f"took {took:.1f} s, more than {seconds:g} s"


def observation(result: rlm_kernel.Result, n: int = 1) -> str:
    return str(result.trajectory.iterations[n - 1]["observation"])


# --- 1. request_timeout bounds the whole answer, not the silence between its bytes -------------------


@transports
@streamed
def test_an_answer_that_trickles_times_out_at_request_timeout(
    serve: Callable[..., ScriptedServer], lean_http: bool, stream: bool
) -> None:
    # Five bytes a second: the read timeout (1 s) never fires, the answer would take over a minute.
    server = serve({"root": [fence("FINAL('late')")]})
    server.inject(Fault.trickle(0.2), times=2)
    with takes_less_than(6):
        result = rlm_kernel.run(
            "q",
            "ctx",
            **settings(
                server, request_timeout=1.0, max_retries=1, lean_http=lean_http, stream=stream
            ),
        )
    assert result.reason == "error"
    assert isinstance(result.error, ModelConnectionError)
    message = str(result.error)
    assert "did not answer within 1 s" in message
    assert "RLM.request_timeout" in message
    if not stream:  # each attempt had the whole timeout: the retry came, and trickled too
        assert len(server.requests) == 2


@transports
@streamed
def test_a_slow_answer_within_request_timeout_still_arrives(
    serve: Callable[..., ScriptedServer], lean_http: bool, stream: bool
) -> None:
    # The deadline is checked piece by piece: a steady answer inside the timeout is read whole.
    server = serve(["unused"])
    server.inject(
        Fault.trickle(0.001)
    )  # a few hundred bytes (streamed: a kilobyte) in about a second
    client = OpenAIClient(
        RLM().with_overrides(
            settings(server, request_timeout=10.0, lean_http=lean_http, stream=stream)
        )
    )
    assert (
        client.complete(HELLO, model="root").text
        == "scripted server: an answer sent one byte at a time"
    )


def test_a_sub_call_that_trickles_times_out_at_request_timeout(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("print(llm_query('hi'))"), fence("FINAL('ok')")], "sub": ["x"]})
    server.inject(Fault.trickle(0.2), model="sub")
    with takes_less_than(6):
        result = rlm_kernel.run("q", "ctx", **settings(server, request_timeout=1.0))
    assert result.answer == "ok"
    seen = observation(result)
    assert "did not answer within 1 s" in seen
    assert "RLM.request_timeout" in seen


# --- 2. wall_timeout cuts a call in flight --------------------------------------------------------


@transports
@pytest.mark.parametrize(
    "fault", [Fault.trickle(0.2), Fault.timeout(60.0)], ids=["trickling", "silent"]
)
def test_wall_timeout_cuts_a_root_call_in_flight(
    serve: Callable[..., ScriptedServer], lean_http: bool, fault: Fault
) -> None:
    server = serve({"root": ["my best guess"]})
    server.inject(fault)
    with takes_less_than(8):
        result = rlm_kernel.run(
            "q",
            "ctx",
            **settings(server, wall_timeout=1.5, request_timeout=60.0, lean_http=lean_http),
        )
    # Ended as at the limit after a step: the best-answer call (its own request_timeout only).
    assert result.reason == "wall_timeout"
    assert result.answer == "my best guess"
    assert "RLM.wall_timeout" in result.message
    assert BEST_ASKED in server.requests[-1].prompt
    assert result.path is not None
    assert rlm_kernel.Trajectory.load(result.path).final is not None


def test_wall_timeout_cuts_a_sub_call_in_flight(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print(llm_query('hi'))"), "best guess"], "sub": ["x"]})
    server.inject(Fault.trickle(0.2), model="sub")
    with takes_less_than(8):
        result = rlm_kernel.run(
            "q", "ctx", **settings(server, wall_timeout=1.5, request_timeout=60.0)
        )
    assert (result.reason, result.answer) == ("wall_timeout", "best guess")
    seen = observation(result)
    assert "cut when the session's time ran out" in seen
    assert "RLM.wall_timeout" in seen
    [call] = result.trajectory.iterations[0]["subcalls"]
    assert "RLM.wall_timeout" in str(call["error"])


# --- 3. a stream cut off before its finish reason is not a reply ----------------------------------


@transports
@pytest.mark.parametrize("abrupt", [False, True], ids=["message-ends", "connection-drops"])
def test_a_stream_cut_before_its_finish_reason_is_a_connection_failure(
    serve: Callable[..., ScriptedServer], lean_http: bool, abrupt: bool
) -> None:
    server = serve({"root": [fence("print(1)"), fence("FINAL('whole')")]})
    server.inject(Fault.cut(after=2, abrupt=abrupt))
    config = RLM().with_overrides(settings(server, stream=True, lean_http=lean_http))
    session = Session("q", "ctx", config=config)
    result = session.run()
    # Not taken as the model's reply (its first 40 characters would have been run as a turn).
    assert result.reason == "error"
    assert isinstance(result.error, ModelConnectionError)
    assert "the stream ended before the model finished its reply" in str(result.error).lower()
    assert result.error.setting == "RLM.stream"
    assert session.state == "paused"
    assert not session.trajectory.iterations
    # Nothing lost: resuming asks again, and the whole reply comes.
    assert session.run().answer == "whole"


@transports
def test_a_plain_answer_cut_halfway_is_a_broken_connection(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    server = serve({"root": [fence("print(1)"), fence("FINAL('whole')")]})
    server.inject(Fault.cut())
    result = rlm_kernel.run("q", "ctx", **settings(server, lean_http=lean_http))
    assert isinstance(result.error, ModelConnectionError)
    message = str(result.error)
    assert "broke during the exchange" in message
    assert "Could not connect" not in message  # it did connect; the answer broke off


# --- 4. a huge reply is not re-sent whole with every later prompt ---------------------------------


def test_a_ten_megabyte_reply_is_clipped_in_later_prompts(
    serve: Callable[..., ScriptedServer],
) -> None:
    huge = fence("print('looked')") + "\n" + "y" * 10_000_000
    server = serve({"root": [huge, fence("print(2)"), fence("FINAL('done')")]})
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert result.answer == "done"
    limit = RLM().max_reply_chars
    for request in server.requests[1:]:
        [reply] = [
            m["content"]
            for m in request.messages
            if m["content"].startswith("```repl\nprint('looked')")
        ]
        assert len(reply) < limit + 200
        assert "characters cut; your reply was longer" in reply
        assert request.prompt_chars < 100_000
    # The code ran in full, and the trajectory records the reply as it was received.
    step = result.trajectory.iterations[0]
    assert "looked" in step["output"]
    assert len(step["response"]) == len(huge)


def test_max_reply_chars_none_keeps_replies_whole(serve: Callable[..., ScriptedServer]) -> None:
    long = fence("print('looked')") + "\n" + "y" * 30_000
    server = serve({"root": [long, fence("FINAL('done')")]})
    result = rlm_kernel.run("q", "ctx", **settings(server, max_reply_chars=None))
    assert result.answer == "done"
    assert long in [m["content"] for m in server.requests[1].messages]


# --- 5. the prose-FINAL pattern is linear ---------------------------------------------------------


def test_unclosed_prose_final_lines_parse_in_linear_time(
    serve: Callable[..., ScriptedServer],
) -> None:
    hostile = "FINAL(the answer is\n" * 16_000  # 320 KB, no line closes: 65 s with the old pattern
    with takes_less_than(2):
        assert prose_final(hostile) is None
    # And as a reply, through the whole loop.
    server = serve({"root": [hostile, fence("FINAL('ok')")]})
    with takes_less_than(10):
        result = rlm_kernel.run("q", "ctx", **settings(server))
    assert result.answer == "ok"


@pytest.mark.parametrize(
    ("reply", "found"),
    [
        ("FINAL(42)", ("FINAL", "42")),
        ("I am done.\n  FINAL('Paris')  \nthanks", ("FINAL", "Paris")),
        ("FINAL(a (b)\nc)\nmore prose", ("FINAL", "a (b")),  # the first ")" that ends a line
        ('SUBMIT(answer="x")', ("SUBMIT", "x")),
        ('FINAL_VAR("result")', ("FINAL_VAR", "result")),
        (
            "FINAL(open\n" * 3 + "FINAL(closed)",
            ("FINAL", "open\nFINAL(open\nFINAL(open\nFINAL(closed"),
        ),
        ("no final here", None),
        ("x = FINAL(1)", None),
    ],
)
def test_prose_final_reads_what_it_read_before(reply: str, found: tuple[str, str] | None) -> None:
    assert prose_final(reply) == found


# --- 6. pathologically nested code is the model's error -------------------------------------------

EXECUTORS = [
    "namespace",
    pytest.param(
        "monty",
        marks=pytest.mark.skipif(
            __import__("importlib").util.find_spec("pydantic_monty") is None,
            reason="pydantic-monty is not installed",
        ),
    ),
]


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    "code",
    ["x = " + "-" * 100_000 + "1", "x = " + "+".join(["1"] * 100_000)],
    ids=["deep-unary", "long-sum"],  # MemoryError, RecursionError from Python's parser today
)
def test_pathologically_nested_code_is_the_models_error(
    serve: Callable[..., ScriptedServer], executor: str, code: str
) -> None:
    server = serve({"root": [fence(code), fence("FINAL('ok')")]})
    result = rlm_kernel.run("q", "ctx", **settings(server, executor=executor))
    assert (result.reason, result.answer) == ("final", "ok")
    assert "too deeply nested" in observation(result)


# --- 7. a request with no time at all reads as a timeout, not as "could not connect" --------------


def test_request_timeout_zero_is_refused_naming_the_setting(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("FINAL('x')")]})
    with pytest.raises(ConfigError) as caught:
        rlm_kernel.run("q", "ctx", **settings(server, request_timeout=0))
    assert "RLM.request_timeout" in str(caught.value)
    assert "connect" not in str(caught.value).lower()
    assert not server.requests


@transports
def test_a_call_with_no_time_left_is_cut_before_it_is_sent(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    # A zero socket timeout would put the socket in non-blocking mode: "could not connect".
    server = serve(["never"])
    client = OpenAIClient(
        RLM().with_overrides(settings(server, lean_http=lean_http, wall_timeout=5.0))
    )
    with call_deadline(time.monotonic()), pytest.raises(ModelConnectionError) as caught:
        client.complete(HELLO, model="m")
    message = str(caught.value)
    assert "RLM.wall_timeout" in message
    assert "Could not connect" not in message
    assert not server.requests
