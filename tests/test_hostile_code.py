"""Model code that fights back, and sessions that share a process (issue 15).

Each test drives real sessions through the real openai SDK against the loopback ScriptedServer, with
real threads, a real subprocess for the CLI and a real kernel for the notebook: output stays with
the session that printed it, a time limit holds off the main thread and when the code switches the
alarm off, a stray thread neither blocks the CLI's exit nor prints into later steps, a finished
session is freed without the cycle collector, rebinding the standard library or the sandbox's
bookkeeping is undone and told, a raised ``KeyboardInterrupt`` is the code's error, and printing
hundreds of megabytes keeps a bounded record.
"""

from __future__ import annotations

import gc
import json
import linecache
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import RLM, Session, Trajectory
from rlm_kernel._capture import proxies
from rlm_kernel.testing import ChatRequest, Kernel, ScriptedServer, configure, fence, kernel_env
from rlm_kernel.testing import settings as server_settings

EXECUTORS = ["namespace", "monty"]


def turns(*steps: str) -> Callable[[ChatRequest], str]:
    """A root model that answers its n-th turn of a conversation with ``steps[n - 1]``: every
    session on one server gets the same steps, whatever the order their requests arrive in."""

    def answer(request: ChatRequest) -> str:
        turn = sum(m["role"] == "assistant" for m in request.messages)
        return steps[min(turn, len(steps) - 1)]

    return answer


def config(server: ScriptedServer, **overrides: Any) -> RLM:
    return RLM().with_overrides(server_settings(server, **overrides))


def observations(result: rlm_kernel.Result) -> list[str]:
    return [it["observation"] for it in result.trajectory.iterations]


# --- 1. per-session output ------------------------------------------------------------------------
PRINTS = 200


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sessions_in_threads_each_see_only_their_own_output(
    serve: Callable[..., ScriptedServer], executor: str
) -> None:
    # P is the session's marker; SHOW_VARS prints on the host side (the monty feed's thread).
    step = fence(f"mark = P\nfor i in range({PRINTS}):\n    print(mark)\n    SHOW_VARS()")
    server = serve({"root": turns(step, fence('FINAL("done")'))})
    cfg = config(server, executor=executor, autosave=False)
    original = sys.stdout, sys.stderr
    results: dict[int, rlm_kernel.Result] = {}
    errors: list[BaseException] = []
    host_done = threading.Event()

    def host_noise() -> None:  # the host's own printing, on another thread, all along
        while not host_done.is_set():
            print("HOST-NOISE")
            print("HOST-NOISE-ERR", file=sys.stderr)
            time.sleep(0.001)

    def one(i: int) -> None:
        try:
            results[i] = Session("q", f"MARK{i:02d}", config=cfg).run()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    noise = threading.Thread(target=host_noise)
    noise.start()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    host_done.set()
    noise.join()
    assert not errors, errors
    assert len(results) == 20
    for i, result in results.items():
        assert result.answer == "done", result.message
        stdout = result.trajectory.iterations[0]["results"][0]["stdout"]
        lines = stdout.splitlines()
        assert lines.count(f"MARK{i:02d}") == PRINTS
        assert sum(line.startswith("Variables:") for line in lines) == PRINTS
        # Nothing else: no other session's marker, no host output.
        assert len(lines) == 2 * PRINTS, [x for x in lines if "MARK" in x and x != f"MARK{i:02d}"][
            :3
        ]
        for observation in observations(result):
            assert "HOST-NOISE" not in observation
    assert (sys.stdout, sys.stderr) == original
    assert proxies() == {}


def test_a_thread_started_by_model_code_never_prints_into_a_later_step(
    serve: Callable[..., ScriptedServer],
) -> None:
    start = (
        "import threading, time\n"
        "stop = threading.Event()\n"
        "def chatter():\n"
        "    while not stop.is_set():\n"
        "        print('STRAY')\n"
        "        time.sleep(0.005)\n"
        "threading.Thread(target=chatter, daemon=True).start()\n"
        "print('started')"
    )
    server = serve(
        {
            "root": turns(
                fence(start),
                fence("time.sleep(0.2)\nprint('second step')"),
                fence("stop.set()\nFINAL('ok')"),
            )
        }
    )
    result = Session("q", "c", config=config(server)).run()
    assert result.answer == "ok", result.message
    first, second = result.trajectory.iterations[:2]
    assert "STRAY" not in first["results"][0]["stdout"]
    assert second["results"][0]["stdout"] == "second step\n"


# --- 2. the time limit holds ------------------------------------------------------------------------
def test_off_the_main_thread_a_blocking_call_cannot_hang_the_session(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(
        {
            "root": turns(
                fence("import time\ntime.sleep(10**6)"),
                fence("x = 6 * 7\nprint(x)"),
                fence("FINAL(x)"),
            )
        }
    )
    cfg = config(server, iteration_timeout=0.5)
    box: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: box.update(result=Session("q", "c", config=cfg).run()))
    started = time.monotonic()
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the session hung on a blocking call off the main thread"
    assert time.monotonic() - started < 15
    result = box["result"]
    assert result.answer == "42", result.message
    first, second = result.trajectory.iterations[:2]
    assert first["results"][0]["timed_out"]
    told = first["results"][0]["error"]
    assert "did not stop when interrupted" in told
    assert "left running in the background" in told
    assert "RLM.iteration_timeout" in told
    # The next step says that the block is still running, since it may still change variables.
    assert any("still running in the background" in note for note in second["notes"])


SWITCH_OFF = {
    "SIG_IGN": "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass",
    "setitimer(0)": "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0)\nwhile True:\n    pass",
    "setitimer(0) + sleep": "import signal, time\nsignal.setitimer(signal.ITIMER_REAL, 0)\n"
    "time.sleep(10**6)",
    "alarm(0) + swallow": "import signal\nsignal.alarm(0)\nwhile True:\n    try:\n        pass\n"
    "    except BaseException:\n        pass",
}


@pytest.mark.parametrize("code", SWITCH_OFF.values(), ids=SWITCH_OFF.keys())
def test_code_that_switches_the_alarm_off_is_still_stopped(
    serve: Callable[..., ScriptedServer], code: str
) -> None:
    server = serve({"root": turns(fence(code), fence("x = 42\nprint(x)"), fence("FINAL(x)"))})
    handler = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    result = Session("q", "c", config=config(server, iteration_timeout=0.5)).run()
    assert time.monotonic() - started < 20
    assert result.answer == "42", result.message
    assert result.trajectory.iterations[0]["results"][0]["timed_out"]
    assert signal.getsignal(signal.SIGALRM) is handler  # put back, whatever the code set


# --- 3. the CLI exits once it has its answer ---------------------------------------------------------
def test_a_non_daemon_thread_of_model_code_does_not_keep_the_cli_from_exiting(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    start = (
        "import threading, time\n"
        "def forever():\n"
        "    while True:\n"
        "        print('STRAY')\n"
        "        time.sleep(0.01)\n"
        "threading.Thread(target=forever).start()\n"  # not a daemon: it would block the exit
        "print('started')"
    )
    server = serve(
        {
            "root": turns(
                fence(start), fence("time.sleep(0.2)\nprint('second step')"), fence("FINAL('42')")
            )
        }
    )
    (isolated_env / "ctx.txt").write_text("some context\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "rlm_kernel.cli", "run", "q", "ctx.txt", "--model", "root",
         "--base-url", server.base_url, "--export", "out.json"],
        capture_output=True, text=True, cwd=isolated_env, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout.splitlines()  # the stray thread's own prints go to the real stdout
    assert "thread(s) started by the model's code were still running" in done.stderr
    trajectory = Trajectory.load(isolated_env / "out.json")
    second = trajectory.iterations[1]
    assert second["results"][0]["stdout"] == "second step\n"
    assert "STRAY" not in second["observation"]


# --- 4. a finished session is freed at once ----------------------------------------------------------
def test_after_a_memory_error_the_finished_session_is_freed_without_the_cycle_collector(
    serve: Callable[..., ScriptedServer],
) -> None:
    allocate = (
        "import array\nbig = array.array('b', bytes(200 * 2**20))\n"
        "raise MemoryError('no room for the next copy')"
    )
    server = serve(
        {"root": turns(fence(allocate), fence("print(len(big))"), fence("FINAL(str(len(big)))"))}
    )
    gc.collect()
    gc.disable()
    try:
        session = Session("q", "c", config=config(server))
        result = session.run()
        assert result.answer == str(200 * 2**20), result.message
        assert result.trajectory.iterations[0]["results"][0]["error_type"] == "MemoryError"
        big = weakref.ref(session.executor.namespace["big"])
        alive = weakref.ref(session)
        del session, result
        assert alive() is None, "the finished session is kept alive by a reference cycle"
        assert big() is None, "the 200 MB the code allocated is still held"
    finally:
        gc.enable()


def test_a_finished_sessions_block_sources_leave_linecache_with_it(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(
        {"root": turns(fence("def f():\n    return 1\nprint(f())"), fence("FINAL('1')"))}
    )
    session = Session("q", "c", config=config(server))
    assert session.run().answer == "1"
    mine = [name for name in linecache.cache if name.startswith(f"<rlm {session.id} ")]
    assert len(mine) == 2  # one per block, for tracebacks and inspect.getsource meanwhile
    assert "return 1" in "".join(linecache.getlines(mine[0]))
    del session
    gc.collect()  # whatever else holds the session, its executor's sources go with it
    assert [name for name in mine if name in linecache.cache] == []


def test_a_finished_sandboxed_session_is_freed_without_the_cycle_collector(
    serve: Callable[..., ScriptedServer],
) -> None:
    steps = (fence("x = 41\nprint(SHOW_VARS())"), fence("y = x + 1\nFINAL_VAR('y')"))
    server = serve({"root": turns(*steps)})
    # A first session warms the process: the first client and sandbox pool leave cyclic garbage of
    # their own (import-time frames) that would hold the session that happened to start them.
    assert Session("q", "c", config=config(server, executor="monty")).run().answer == "42"
    gc.collect()
    gc.disable()
    try:
        session = Session("q", "c", config=config(server, executor="monty"))
        assert session.step()["results"][0]["stdout"].startswith("Variables: x (int)")
        worker = session.executor._live.worker  # type: ignore[attr-defined]
        assert worker is not None
        assert not worker.closed
        result = session.run()
        assert result.answer == "42", result.message
        alive, executor = weakref.ref(session), weakref.ref(session.executor)
        del session, result
        assert alive() is None, "the finished sandboxed session is kept alive by a reference cycle"
        assert executor() is None, "the monty executor is kept alive by a reference cycle"
        # The worker goes back to the pool (at once, or when the state dump in flight ends).
        deadline = time.monotonic() + 10
        while not worker.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.closed, "the sandbox worker was never handed back to the pool"
    finally:
        gc.enable()


# --- 5. the runtime's standard library -----------------------------------------------------------------
def test_code_that_rebinds_what_the_runtime_uses_is_undone_and_told(
    serve: Callable[..., ScriptedServer],
) -> None:
    dumps, stdout = json.dumps, sys.stdout
    clobber = (
        "import json, os, sys, builtins\n"
        "json.dumps = None\nos.getpid = None\ndel json.loads\n"
        "builtins.sorted = None\nsys.stdout = None\nprint('gone')"
    )
    server = serve(
        {"root": turns(fence(clobber), fence("print(len(sorted('abc')))"), fence("FINAL('ok')"))}
    )
    result = Session("q", "c", config=config(server)).run()
    assert result.answer == "ok", result.message
    assert json.dumps is dumps
    assert sys.stdout is stdout
    first, second = result.trajectory.iterations[:2]
    note = " ".join(first["notes"])
    for name in ("json.dumps", "json.loads", "os.getpid", "builtins.sorted", "sys.stdout"):
        assert name in note
    assert "put back" in note
    assert second["results"][0]["stdout"] == "3\n"
    # The autosave, written with json.dumps, has every step.
    assert result.path is not None
    assert len(Trajectory.load(result.path).iterations) == 3


def test_in_the_sandbox_rebinding_the_standard_library_stays_inside(
    serve: Callable[..., ScriptedServer],
) -> None:
    dumps = json.dumps
    server = serve(
        {
            "root": turns(
                fence(
                    "import json\ntry:\n    json.dumps = None\nexcept Exception as e:\n    print(e)"
                ),
                fence("print(json.dumps([1]))"),
                fence("FINAL('ok')"),
            )
        }
    )
    result = Session("q", "c", config=config(server, executor="monty")).run()
    assert result.answer == "ok", result.message
    assert json.dumps is dumps


# --- 6. a raised KeyboardInterrupt is the code's error ----------------------------------------------------
def test_a_keyboard_interrupt_raised_by_the_code_does_not_pause_a_headless_run(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(
        {
            "root": turns(
                fence("print('before')\nraise KeyboardInterrupt"),
                fence("from rlm_kernel.errors import IterationTimeout\nraise IterationTimeout(1)"),
                fence("FINAL('went on')"),
            )
        }
    )
    session = Session("q", "c", config=config(server))
    result = session.run()
    assert session.state == "done"
    assert result.answer == "went on", result.message
    first, second = (it["results"][0] for it in result.trajectory.iterations[:2])
    assert first["error_type"] == "KeyboardInterrupt"
    assert not first["interrupted"]
    assert "raise KeyboardInterrupt" in first["error"]
    # An IterationTimeout that no limit fired is the code's own too.
    assert second["error_type"] == "IterationTimeout"
    assert not second["timed_out"]


# --- 7. printing hundreds of megabytes ------------------------------------------------------------------
def test_printing_200_mb_keeps_a_bounded_result_and_trajectory(
    serve: Callable[..., ScriptedServer],
) -> None:
    flood = "line = 'x' * 999\nfor i in range(200_000):\n    print(line)\nprint('THE END')"
    server = serve({"root": turns(fence(flood), fence("FINAL('ok')"))})
    result = Session("q", "c", config=config(server, max_capture_chars=100_000)).run()
    assert result.answer == "ok", result.message
    kept = result.trajectory.iterations[0]["results"][0]
    assert len(kept["stdout"]) < 100_200
    assert kept["output_cut"] == 200_000 * 1000 + len("THE END\n") - 100_000
    assert (
        f"{kept['output_cut']:,} characters of output cut here (RLM.max_capture_chars)"
        in (kept["stdout"])
    )
    assert kept["stdout"].startswith("x" * 999 + "\n")
    assert kept["stdout"].endswith("THE END\n")  # the tail is kept too
    assert result.path is not None
    assert result.path.stat().st_size < 1_000_000


def test_max_capture_chars_is_checked() -> None:
    with pytest.raises(rlm_kernel.ConfigError, match="max_capture_chars"):
        RLM(max_capture_chars=0)


# --- 8. the sandbox's bookkeeping ----------------------------------------------------------------------
def test_in_the_sandbox_rebound_bookkeeping_names_are_put_back(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(
        {
            "root": turns(
                fence("__rlm__ = None\nprint('one')"),
                fence("__rlm_host__ = 5\ntype = 3\nlen = 4\nzip = 5\nx = 'forty-two'\nprint(x)"),
                fence('FINAL_VAR("x")'),
            )
        }
    )
    result = Session("q", "c", config=config(server, executor="monty")).run()
    assert result.answer == "forty-two", result.message
    first, second = result.trajectory.iterations[:2]
    assert any("__rlm__" in n and "put back" in n for n in first["notes"])
    assert any("__rlm_host__" in n and "put back" in n for n in second["notes"])
    assert "bookkeeping was damaged" not in second["output"]  # x survived the block


# --- in a notebook kernel -------------------------------------------------------------------------------
def test_in_a_kernel_output_is_echoed_live_and_the_stream_is_the_kernels_after(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    step = fence("for i in range(3):\n    print('live', i)")
    server = serve({"root": turns(step, fence("FINAL('ok')"))})
    kernel = Kernel("rlm", kernel_env(tmp_path), tmp_path)
    try:
        configure(kernel, server)
        before = kernel.run("import sys\nprint(type(sys.stdout).__name__, id(sys.stdout))")
        assert not kernel.run("ctx = 'some context'").errors
        run = kernel.run('%rlm "q" ctx')
        assert not run.errors, run.errors
        assert "live 0\nlive 1\nlive 2\n" in run.stdout  # echoed to the cell as it ran
        after = kernel.run("print(type(sys.stdout).__name__, id(sys.stdout))")
        assert after.stdout == before.stdout  # ipykernel's own stream, not a proxy
        record = kernel.run(
            "import rlm_kernel\n"
            "print(repr(rlm_kernel.current_session().trajectory.iterations[0]['results'][0]['stdout']))"
        )
        assert record.stdout.strip() == repr("live 0\nlive 1\nlive 2\n")
    finally:
        kernel.shutdown()
