"""The live echo (a notebook cell's output as the code prints) is scrubbed before it is shown.

The writer's own behaviour (``_capture.ScrubbedEcho``: whole lines through the scrubber, partial lines
held, huge lines passed on early, never holding up the code's writes) on real threads with the real
``Redactor``; then both executors' echoes in real sessions against the loopback ScriptedServer, and a
real kernel running ``%rlm`` with a key in its environment, checked live and for the key's encodings.
"""

from __future__ import annotations

import base64
import io
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel import RLM, Session
from rlm_kernel._capture import _HOLD, _KEEP, ScrubbedEcho, capturing
from rlm_kernel._secrets import REDACTED, Redactor
from rlm_kernel.executors import make_executor
from rlm_kernel.testing import ChatRequest, Kernel, ScriptedServer, configure, fence, kernel_env
from rlm_kernel.testing import settings as server_settings

# Made up, random-looking as real ones are; none authenticates anywhere.
KEY = "sk-proj-Ht5wQ2rXn8mZ4pK7bV1cY6jL9dF3sG0aE5uR2oI7kW4qM8xN"
TOKEN = "Zt7Qm2Wx9Rb4Kp1Lv8Nc3Hd6Jf0Gs5Ya"  # no known shape: found only by its variable's name
B64 = base64.b64encode(KEY.encode()).decode()
SCRUB = Redactor([KEY]).scrub


class Screen(io.TextIOBase):
    """A target stream that records each write with the time it arrived (a cell's output)."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []
        self.flushes = 0
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self.writes.append((time.monotonic(), text))
        return len(text)

    def flush(self) -> None:
        self.flushes += 1

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(t for _, t in self.writes)

    def wait_for(self, wanted: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while wanted not in self.text and time.monotonic() < deadline:
            time.sleep(0.005)
        return wanted in self.text


def echo_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rlm-echo"]


# --- the writer ------------------------------------------------------------------------------------
def test_whole_lines_are_passed_on_live_and_scrubbed() -> None:
    screen = Screen()
    echo = ScrubbedEcho(screen, SCRUB)
    echo.write("visible text")
    echo.write("\n")
    assert screen.wait_for("visible text\n"), "a whole line is shown before the block ends"
    echo.write(f"the key {KEY} and its base64 {B64}\n")
    assert screen.wait_for(REDACTED)
    echo.finish()
    assert KEY not in screen.text
    assert B64 not in screen.text
    assert screen.text == "visible text\n" + SCRUB(f"the key {KEY} and its base64 {B64}\n")
    assert not echo_threads(), "the echo's thread ends with the block"


def test_a_key_printed_in_pieces_on_one_line_is_held_until_the_line_ends() -> None:
    screen = Screen()
    echo = ScrubbedEcho(screen, SCRUB)
    for piece in (KEY[:5], KEY[5:30], KEY[30:]):
        echo.write(piece)
        time.sleep(0.05)  # several of the echo's batches go by meanwhile
    assert screen.text == "", "a partial line is held"
    echo.write(" end\n")
    assert screen.wait_for(" end\n")
    echo.finish()
    assert screen.text == f"{REDACTED} end\n"


def test_a_partial_line_goes_out_when_the_block_ends() -> None:
    screen = Screen()
    echo = ScrubbedEcho(screen, SCRUB)
    echo.write("done\nno newline at the end: " + KEY)
    assert screen.wait_for("done\n")
    time.sleep(0.1)
    assert screen.text == "done\n"
    echo.finish()
    assert screen.text == f"done\nno newline at the end: {REDACTED}"
    assert screen.flushes >= 1  # the cell is flushed at the block's end


def test_carriage_returns_end_lines_so_a_progress_bar_moves() -> None:
    screen = Screen()
    echo = ScrubbedEcho(screen, SCRUB)
    echo.write("\r 10%")
    echo.write("\r 20%")  # its \r ends the 10% update, which is then shown
    assert screen.wait_for("\r 10%")
    echo.write("\r 30%\r")
    assert screen.wait_for("\r 20%\r 30%\r")
    echo.finish()
    assert screen.text == "\r 10%\r 20%\r 30%\r"


def test_a_huge_single_line_goes_out_early_and_a_key_across_the_cut_is_still_caught() -> None:
    screen = Screen()
    echo = ScrubbedEcho(screen, SCRUB)
    size = _HOLD + 5 * _KEEP
    # The key straddles the point a plain cut would take (_KEEP before the end of what is held).
    at = size - _KEEP - len(KEY) // 2
    line = "x" * at + KEY + "y" * (size - at - len(KEY))
    echo.write(line)
    assert screen.wait_for("x" * 1000), "most of a line past _HOLD is shown before it ends"
    time.sleep(0.1)
    early = screen.text
    assert len(early) >= size - 4 * _KEEP
    assert KEY[: len(KEY) // 3] not in early
    echo.finish()
    assert screen.text == line.replace(KEY, REDACTED)


def test_any_chunking_of_the_output_comes_out_whole_and_in_order() -> None:
    rng = random.Random(7)
    # The key between spaces: its shape's match (sk-…) would run on into letters that follow it.
    words = ["alpha ", "beta", "\n", "\r", "gamma delta ", "\r\n", "x" * 3000, f" {KEY} ", "\n"]
    text = "".join(rng.choice(words) for _ in range(20_000)) + "y" * (3 * 2**20)
    screen = Screen()
    echo = ScrubbedEcho(screen, SCRUB)
    at = 0
    while at < len(text):  # writes of 1 character to 64 KB, the last one a 3 MB line
        step = rng.choice([1, 7, 100, 5000, 65_536])
        echo.write(text[at : at + step])
        at += step
    echo.write("z" * (3 * 2**20))
    echo.finish()
    assert screen.text == SCRUB(text + "z" * (3 * 2**20))
    assert KEY not in screen.text


def test_writers_on_many_threads_each_keep_their_lines_whole() -> None:
    screen = Screen()
    echo = ScrubbedEcho(screen, SCRUB)

    def write(n: int) -> None:
        for i in range(2000):
            echo.write(f"thread {n} line {i} {KEY}\n")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    echo.finish()
    lines = screen.text.splitlines()
    assert sorted(lines) == sorted(
        f"thread {n} line {i} {REDACTED}" for n in range(8) for i in range(2000)
    )


def test_writes_never_wait_for_the_scrubber() -> None:
    def slow_scrub(text: str) -> str:
        time.sleep(0.2)
        return SCRUB(text)

    screen = Screen()
    echo = ScrubbedEcho(screen, slow_scrub)
    started = time.monotonic()
    for i in range(2000):
        echo.write(f"line {i}\n")
    assert time.monotonic() - started < 0.15  # 2000 writes, while scrubs of 0.2 s each run
    echo.finish()
    assert screen.text == "".join(f"line {i}\n" for i in range(2000))
    assert len(screen.writes) < 20, "what piled up while it scrubbed went out as a few batches"


def test_a_broken_cell_stream_stops_the_echo_not_the_code() -> None:
    class Closed(Screen):
        def write(self, text: str) -> int:
            raise ValueError("I/O operation on closed file")

    echo = ScrubbedEcho(Closed(), SCRUB)
    for i in range(100):
        echo.write(f"line {i}\n")
    echo.finish()  # returns, raises nothing
    assert not echo_threads()


def test_through_capturing_the_echo_is_scrubbed_and_the_capture_keeps_every_write() -> None:
    screen = Screen()
    with capturing(screen, screen, scrub=SCRUB) as (out, err):
        print("visible")
        print(KEY)
        print("on stderr", KEY, file=sys.stderr)
        assert screen.wait_for("visible\n")
    # At the block's end everything has been passed on, the thread is gone.
    assert screen.text.count(REDACTED) == 2
    assert KEY not in screen.text
    assert out.getvalue() == f"visible\n{KEY}\n"  # scrubbed later, where the session records it
    assert err.getvalue() == f"on stderr {KEY}\n"
    assert not echo_threads()


def test_an_echo_that_wraps_the_proxy_reaches_the_real_stream_not_the_capture() -> None:
    class Wrapper(io.TextIOBase):  # like the notebook's resume gate, made while a capture was on
        def __init__(self, target: Any) -> None:
            self.target = target

        def write(self, text: str) -> int:
            return int(self.target.write(text))

    with capturing() as (outer, _):
        wrapper = Wrapper(sys.stdout)  # the proxy
        with capturing(wrapper, wrapper, scrub=SCRUB) as (inner, _):
            print("once")
        assert inner.getvalue() == "once\n"  # not fed back into the capture by the echo's thread
    assert outer.getvalue() == ""


# --- both executors, in real sessions ----------------------------------------------------------------
LEAK = (
    "import os, base64\n"
    "key = os.environ['OPENAI_API_KEY']\n"
    "print('visible text')\n"
    "print(key)\n"
    "print(base64.b64encode(key.encode()).decode())\n"
    "print('token', os.environ['SERVICE_TOKEN'])\n"
)
# The sandbox cannot read the environment: its code prints what it was given (the context).
SANDBOXED_LEAK = (
    "import base64\nprint('visible text')\nprint(P)\nprint(base64.b64encode(P.encode()).decode())\n"
)


def turns(*steps: str) -> Callable[[ChatRequest], str]:
    def answer(request: ChatRequest) -> str:
        turn = sum(m["role"] == "assistant" for m in request.messages)
        return steps[min(turn, len(steps) - 1)]

    return answer


@pytest.mark.parametrize("executor", ["namespace", "monty"])
def test_both_executors_echo_scrubbed_output(
    executor: str, serve: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("SERVICE_TOKEN", TOKEN)
    code = LEAK if executor == "namespace" else SANDBOXED_LEAK
    server = serve({"root": turns(fence(code), fence("FINAL('ok')"))})
    config = RLM().with_overrides(server_settings(server, executor=executor))
    screen = Screen()
    echoing = make_executor(config, echo_stdout=screen, echo_stderr=screen)
    result = Session("q", KEY, config=config, executor=echoing).run()
    assert result.answer == "ok", result.message
    assert "visible text\n" in screen.text
    for secret in (KEY, B64, TOKEN):
        assert secret not in screen.text
    assert REDACTED in screen.text


# --- in a real kernel ----------------------------------------------------------------------------------
def test_in_a_kernel_the_cell_shows_the_output_live_and_never_the_key(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    step = fence(
        "import os, base64, time\n"
        "key = os.environ['OPENAI_API_KEY']\n"
        "print('visible text')\n"
        "print(key)\n"
        "print(base64.b64encode(key.encode()).decode())\n"
        "print('token', os.environ['SERVICE_TOKEN'])\n"
        "time.sleep(1.5)\n"
        "print('after the pause')"
    )
    server = serve({"root": turns(step, fence("FINAL('ok')"))})
    env = kernel_env(tmp_path)
    env["OPENAI_API_KEY"] = KEY
    env["SERVICE_TOKEN"] = TOKEN
    kernel = Kernel("rlm", env, tmp_path)
    try:
        configure(kernel, server)
        assert not kernel.run("ctx = 'some context'").errors
        run = kernel.run('%rlm "q" ctx')
        assert not run.errors, run.errors
        assert "visible text\n" in run.stdout
        assert "after the pause" in run.stdout
        everything = json.dumps([m["content"] for m in run.messages])
        for secret in (KEY, B64, TOKEN):
            assert secret not in everything
        assert REDACTED in run.stdout
        # Live: the line before the pause reached the front end well before the one after it.
        sent = {
            name: next(
                datetime.fromisoformat(str(m["header"]["date"]))
                for m in run.messages
                if m["msg_type"] == "stream" and name in m["content"]["text"]
            )
            for name in ("visible text", "after the pause")
        }
        assert (sent["after the pause"] - sent["visible text"]).total_seconds() > 1.0
    finally:
        kernel.shutdown()
