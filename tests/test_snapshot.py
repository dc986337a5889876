"""One live snapshot, every view: during a 64-prompt llm_batch and during a child RLM's run, the CLI
line, the inline status bar, run()'s notebook widget and the toolbar's status message show the
session's snapshot, number for number; the toolbar's message also as a real kernel sends it over the
comm. And rlm_kernel.run() shows progress: a widget in a notebook, a line on a terminal, nothing in a
pipe.

The scripted sub model holds its answers until the test has looked, so the session stands still
with the calls in flight while the views are read."""

from __future__ import annotations

import html
import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from rlm_kernel import RLM, Session
from rlm_kernel._events import Event, IterationFinished
from rlm_kernel._notebook.cells import status_message
from rlm_kernel._notebook.status import StatusBar
from rlm_kernel._progress import ProgressLine, ProgressWidget
from rlm_kernel._snapshot import Snapshot, Throttle, describe
from rlm_kernel.testing import (
    ChatRequest,
    HeadlessFrontend,
    ScriptedServer,
    child_rlm_sub,
    fence,
    settings,
)

# describe()'s line, read back: what a person sees in each view.
LINE = re.compile(
    r"(?P<session_state>\w+) · iteration (?P<iteration>\d+)/(?P<max_iterations>\d+) · "
    r"(?P<tokens>[\d,]+) tokens \(root (?P<root_tokens>[\d,]+) · sub (?P<sub>[\d,]+)\)"
    r"(?: · \$(?P<cost>[\d.]+))? · (?P<subcalls>[\d,]+) sub-calls"
    r"(?: · (?P<in_flight>[\d,]+) in flight)? · (?P<elapsed>[\d.]+) s"
)
SHOWN = ("session_state", "iteration", "max_iterations", "tokens", "root_tokens", "subcalls")


def shown(text: str) -> dict[str, Any]:
    """The numbers a view's text shows."""
    match = LINE.search(html.unescape(re.sub(r"<[^>]+>", "", text)))
    assert match is not None, f"no status line in {text!r}"
    got: dict[str, Any] = {
        k: v if k == "session_state" else int(v.replace(",", ""))
        for k, v in match.groupdict().items()
        if k in SHOWN
    }
    got["in_flight"] = int(match["in_flight"] or 0)
    got["elapsed"] = float(match["elapsed"])
    assert got["tokens"] - got["root_tokens"] == int(match["sub"].replace(",", ""))
    return got


def assert_shows(view: str, text: str, snap: Snapshot) -> None:
    got = shown(text)
    want = {k: getattr(snap, k) for k in (*SHOWN, "in_flight")}
    assert {k: got[k] for k in want} == want, view
    # The clock moves between two draws: each view redraws it at least once a second.
    assert abs(got["elapsed"] - snap.elapsed) <= 1.5, view


def last_line(stream: io.StringIO) -> str:
    return [part for part in stream.getvalue().split("\r\x1b[K") if part][-1]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Views:
    """Every in-process view of one session, built before it runs."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.stream = io.StringIO()
        self.line = ProgressLine(session, self.stream, interval=0.2)
        self.bar = StatusBar(session, lambda _action: None)
        self.widget = ProgressWidget(session)

    def texts(self) -> dict[str, str]:
        return {
            "CLI line": last_line(self.stream),
            "status bar": self.bar.label.value,
            "run() widget": self.widget.label.value,
        }

    def assert_all_show(self, snap: Snapshot) -> None:
        for view, text in self.texts().items():
            assert_shows(view, text, snap)
        message = status_message(self.session)
        assert message["type"] == "status"
        fields = snap.fields()
        assert {k: v for k, v in message.items() if k not in ("type", "elapsed")} == {
            k: v for k, v in fields.items() if k != "elapsed"
        }
        assert abs(message["elapsed"] - snap.elapsed) <= 1.5

    def close(self) -> None:
        self.line.close()
        self.widget.close()


@contextmanager
def running(session: Session, views: Views, release: threading.Event) -> Iterator[None]:
    thread = threading.Thread(target=session.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        release.set()
        thread.join(60)
        views.close()
    assert not thread.is_alive()


def test_a_64_prompt_batch_shows_the_same_numbers_in_every_view(
    serve: Callable[..., ScriptedServer],
) -> None:
    release, arrived = threading.Event(), []

    def sub(request: ChatRequest) -> str:
        arrived.append(request.prompt)
        release.wait(60)
        return "ok"

    batch = "r = llm_batch([f'item {i}' for i in range(64)])\nprint(len(r))"
    server = serve({"root": [fence(batch), fence("FINAL(len(r))")], "sub": sub})
    session = Session("How many?", "ctx", config=RLM().with_overrides(settings(server)))
    views = Views(session)
    with running(session, views, release):
        wait_for(lambda: len(arrived) == 16 and session.snapshot().in_flight == 64)
        time.sleep(0.6)  # the throttled views' last draws
        snap = session.snapshot()
        # All 64 are in flight, 16 of them at the server (RLM.subcall_concurrency), the rest
        # waiting for a slot: the toolbar used to count the 16 only.
        assert (snap.in_flight, snap.subcalls, snap.wave, len(arrived)) == (64, 64, 64, 16)
        assert (snap.session_state, snap.iteration) == ("running", 1)
        assert snap.tokens == snap.root_tokens == session.root_usage.total.total_tokens > 0
        assert session.subcalls_in_flight == 64
        views.assert_all_show(snap)
        for bar in (views.bar.progress, views.widget.progress):
            assert (bar.value, bar.max, bar.layout.visibility) == (0, 64, "visible")
    final = session.snapshot()
    assert session.answer == "64"
    assert (final.session_state, final.in_flight, final.subcalls, final.wave) == ("done", 0, 64, 0)
    # The live count and the session's usage summary are one number once the run is over.
    assert final.tokens == session.usage.total.total_tokens
    assert final.root_tokens == session.root_usage.total.total_tokens
    assert_shows("status bar", views.bar.label.value, final)
    assert_shows("run() widget", views.widget.label.value, final)


def test_a_child_rlm_run_counts_the_same_everywhere_tokens_included(
    serve: Callable[..., ScriptedServer],
) -> None:
    release = threading.Event()
    asked: list[str] = []

    def reader(request: ChatRequest) -> str:
        asked.append(request.prompt)
        release.wait(60)
        return "7781"

    root = [
        fence("code = rlm_query('Find the vault code', P)\nprint(code)"),
        fence("FINAL(code)"),
    ]
    server = serve({"root": root, "sub": child_rlm_sub(reader)})
    config = RLM().with_overrides(settings(server, max_depth=2))
    session = Session("What is the code?", "the vault code is 7781", config=config)
    views = Views(session)
    with running(session, views, release):
        # The child took two steps and its second waits for its llm_query.
        wait_for(lambda: len(asked) == 1 and session.snapshot().in_flight == 2)
        time.sleep(0.6)
        snap = session.snapshot()
        assert (snap.in_flight, snap.subcalls, snap.iteration) == (2, 2, 1)
        # The child's two root calls are spent and counted, though the child has not ended: the
        # session's own usage takes them in only then (the status bar used to show that).
        own = session.usage.total.total_tokens
        assert own == snap.root_tokens < snap.tokens
        views.assert_all_show(snap)
    final = session.snapshot()
    assert session.answer == "7781"
    assert final.tokens == session.usage.total.total_tokens
    assert (final.in_flight, final.subcalls) == (0, 2)


def test_the_snapshot_holds_the_step_under_way_then_the_steps_that_stand(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("print(1)"), fence("FINAL(2)")]})
    session = Session("q", "ctx", config=RLM().with_overrides(settings(server)))
    assert session.snapshot().iteration == 0
    assert session.snapshot().session_state == "idle"
    session.propose()
    assert session.snapshot().iteration == 1  # step 1 waits to run
    session.execute()
    snap = session.snapshot()
    assert (snap.iteration, session.iteration) == (1, 1)
    session.run()
    snap = session.snapshot()
    assert (snap.session_state, snap.iteration) == ("done", 2)
    assert snap.cost is None  # the scripted server reports no cost, and no price is set
    assert describe(snap).startswith("done · iteration 2/30 · ")
    assert "$" not in describe(snap)


def test_the_throttle_draws_at_once_then_the_last_state_at_the_end_of_the_interval() -> None:
    drawn: list[float] = []
    throttle = Throttle(lambda: drawn.append(time.monotonic()), 0.2)
    started = time.monotonic()
    for _ in range(50):
        throttle()
    assert len(drawn) == 1  # the first at once, the rest fold into one trailing draw
    wait_for(lambda: len(drawn) == 2, timeout=2)
    assert drawn[1] - started >= 0.19
    throttle(force=True)
    assert len(drawn) == 3
    throttle()
    throttle.close()
    time.sleep(0.3)
    assert len(drawn) == 3  # a closed throttle drops its trailing draw


# --- over a real kernel -----------------------------------------------------------------------------
SAMPLER = """
import threading, time, rlm_kernel
sampled = []
def _sample():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = rlm_kernel.current_session()
        if s is not None and s.snapshot().in_flight == 64:
            time.sleep(0.6)
            sampled.append(s.snapshot().fields())
            return
        time.sleep(0.02)
threading.Thread(target=_sample, daemon=True).start()
"""


def setup_cell(server: ScriptedServer, **overrides: Any) -> str:
    return "\n".join(f"%config RLM.{k} = {v!r}" for k, v in settings(server, **overrides).items())


def test_the_toolbar_is_sent_the_snapshot_during_a_batch(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    """Cells mode in a real kernel: the last status message the page got while the batch stood
    still is the kernel's snapshot of that moment, field for field (the clock aside)."""
    release, arrived = threading.Event(), []

    def sub(request: ChatRequest) -> str:
        arrived.append(request.prompt)
        release.wait(60)
        return "ok"

    batch = "r = llm_batch([f'item {i}' for i in range(64)])\nprint(len(r))"
    server = serve({"root": [fence(batch), fence("FINAL(len(r))")], "sub": sub})
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(setup_cell(server)),
            nbformat.v4.new_code_cell(SAMPLER + "ctx = 'the items'"),
            nbformat.v4.new_code_cell('%rlm "How many?" ctx'),
        ]
    )
    client = NotebookClient(
        nb, kernel_name="rlm", timeout=120, resources={"metadata": {"path": str(env)}}
    )
    frontend = HeadlessFrontend(client)
    seen: list[dict[str, Any]] = []

    def watch() -> None:
        try:
            wait_for(lambda: (frontend.status or {}).get("in_flight") == 64, timeout=60)
            time.sleep(1.2)  # past the kernel's sample, and its throttled last send
            seen.append({**(frontend.status or {}), "at_the_server": len(arrived)})
        finally:
            release.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with client.setup_kernel():
        index = 0
        while index < len(nb.cells):  # the step cells the kernel asks for, as they come
            client.execute_cell(nb.cells[index], index)
            index += 1
        nb.cells.append(nbformat.v4.new_code_cell("import json; print(json.dumps(sampled))"))
        client.execute_cell(nb.cells[-1], index)
    watcher.join(10)
    sampled = json.loads(nb.cells[-1].outputs[0]["text"])
    assert (len(sampled), len(seen)) == (1, 1), (sampled, seen)
    kernel, page = sampled[0], seen[0]
    at_the_server = page.pop("at_the_server")
    assert page.pop("type") == "status"
    page.pop("for_session", None)
    assert abs(page.pop("elapsed") - kernel.pop("elapsed")) <= 1.5
    assert page == kernel
    assert (page["in_flight"], page["subcalls"], page["wave"], at_the_server) == (64, 64, 64, 16)
    assert page["session_state"] == "running"
    assert page["tokens"] == page["root_tokens"] > 0
    # And the last status the page got is the finished session's.
    assert frontend.status is not None
    assert (frontend.status["session_state"], frontend.status["in_flight"]) == ("done", 0)


def test_run_in_a_notebook_shows_a_progress_widget(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("FINAL(3)")] * 2})
    call = f"r = rlm_kernel.run('How long?', 'abc', **{settings(server)!r})"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(f"import rlm_kernel\n{call}\nprint(r.answer)"),
            nbformat.v4.new_code_cell(f"{call[:-1]}, progress=False)\nprint(r.answer)"),
        ]
    )
    NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(env)}}
    ).execute()
    outputs, quiet = nb.cells[0].outputs, nb.cells[1].outputs
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(widgets) == 1
    # The twins hold the finished state (a saved notebook and nbconvert show them).
    assert shown(widgets[0]["data"]["text/plain"])["session_state"] == "done"
    assert "iteration 2/30" in widgets[0]["data"]["text/plain"]
    assert "RLM " in widgets[0]["data"]["text/html"]
    assert [o["text"] for o in outputs if o.get("name") == "stdout"] == ["3\n"]
    assert [o.get("text") for o in quiet] == ["3\n"]  # progress=False: the answer alone


RUN_SCRIPT = """
import json, sys, rlm_kernel
r = rlm_kernel.run("How long?", "abc", **json.loads(sys.argv[1]))
print(r.answer)
"""


def test_run_draws_a_line_on_a_terminal_and_nothing_into_a_pipe(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("FINAL(3)")] * 2})
    argv = [sys.executable, "-c", RUN_SCRIPT, json.dumps(settings(server, autosave=False))]
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "3\n", "")
    # stderr on a terminal (a pty): the progress line, cleared at the end.
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=follower, timeout=60, cwd=tmp_path
        )
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert (done.returncode, done.stdout) == (0, b"3\n")
    text = drawn.decode()
    assert "\r\x1b[Krlm " in text
    assert "rlm done · iteration 2/30" in text
    assert text.endswith("\r\x1b[K")


def test_the_timeline_totals_are_the_snapshot_s_at_every_step_a_child_s_included(
    serve: Callable[..., ScriptedServer],
) -> None:
    """The live timeline draws from the records (live == replay), so between two steps, when no
    call is in flight, its lanes add up to the snapshot: tokens, root tokens, sub-calls."""
    from rlm_kernel._timeline_view import timeline

    root = [
        fence("code = rlm_query('Find the vault code', P)\nprint(code)"),
        fence("r = llm_batch(['a', 'b'])\nprint(r)"),
        fence("FINAL(code)"),
    ]
    server = serve({"root": root, "sub": child_rlm_sub(lambda _request: "7781")})
    config = RLM().with_overrides(settings(server, max_depth=2))
    session = Session("What is the code?", "the vault code is 7781", config=config)
    seen: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = []

    def at_step(event: Event) -> None:
        if not isinstance(event, IterationFinished) or event.depth != 0:
            return
        every = [ln for t in timeline(session).timelines for ln in t.lanes]
        lanes = [ln for ln in every if ln.depth == 0]  # a child's lanes are in its rlm_query's
        drawn = (
            sum(ln.root_tokens + ln.sub_tokens for ln in lanes),
            sum(ln.root_tokens for ln in lanes),
            sum(ln.subcalls for ln in every),  # each lane its own, the child's in the child's
        )
        snap = session.snapshot()
        seen.append((drawn, (snap.tokens, snap.root_tokens, snap.subcalls)))

    session.subscribe(at_step)
    session.run()
    assert session.answer == "7781"
    assert len(seen) == 3
    for drawn, snap in seen:
        assert drawn == snap
    assert seen[-1][1][0] == session.usage.total.total_tokens
