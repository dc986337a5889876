"""%rlm in real kernels (the "RLM (Python 3)" kernel and a plain ipykernel with %load_ext), inline mode."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlm_kernel import RLM, Session
from rlm_kernel.testing import (
    EDITED_STEP,
    Kernel,
    KernelRun,
    ScriptedServer,
    configure,
    fence,
    kernel_env,
    record_edited_session,
    settings,
)

HAS_RLM = "ip = get_ipython()\nprint(ip.find_line_magic('rlm') is not None, ip.find_cell_magic('rlm_step') is not None)"
SESSION_ID = "import rlm_kernel\nprint(rlm_kernel.current_session().id)"


def answer_of(run: KernelRun) -> str | None:
    """The answer shown in the cell's answer block."""
    found = re.search(r">Answer</b>.*?<pre[^>]*>(.*?)</pre>", run.html, re.DOTALL)
    return html.unescape(found.group(1)) if found else None


def test_rlm_runs_to_an_answer_in_the_users_namespace(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    root = [
        fence("words = P.split()\nprint(len(words))"),
        fence("longest = max(words, key=len)\nprint(longest)"),
        fence("FINAL(longest)"),
    ]
    server = serve({"root": root})
    configure(kernel, server)
    assert not kernel.run("ctx = 'a quick brown elephant jumps'").errors

    run = kernel.run('%rlm "Which word is longest?" ctx')

    assert not run.errors, run.errors
    assert "In [rlm 1]:" in run.html
    assert "In [rlm 3]:" in run.html
    assert "5\n" in run.stdout  # the model's print, live in the cell
    assert "Answer" in run.html
    assert answer_of(run) == "elephant"
    # The model's variables are the user's now; P is the context itself.
    after = kernel.run("print(longest, P is ctx, len(words))")
    assert after.stdout.strip() == "elephant True 5"


def test_cell_magic_takes_the_question_from_the_body(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    server = serve({"root": [fence("print(P)"), fence("FINAL(P.upper())")]})
    configure(kernel, server)
    kernel.run("notes = 'shout me'")
    run = kernel.run("%%rlm notes\nWhat does it say,\nloudly?")
    assert "SHOUT ME" in run.html
    assert "What does it say,\nloudly?" in server.requests[0].messages[1]["content"]


def test_settings_precedence(serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    """env < ipython_config.py < %config < magic options."""
    server = serve({"root": lambda r: "no code"})
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_config.py").write_text(
        "c.RLM.max_iterations = 4\nc.RLM.sub_model = 'from-file'\nc.RLM.model = 'from-file'\n"
    )
    env = kernel_env(tmp_path)
    env.update(RLM_MODEL="from-env", RLM_SUB_MODEL="from-env", OPENAI_BASE_URL=server.base_url)
    k = Kernel("rlm", env, tmp_path)
    try:
        shown = k.run(
            "from rlm_kernel._notebook import get_magics\ns = get_magics(get_ipython()).settings\nprint(s.model, s.sub_model, s.max_iterations, s.base_url)"
        )
        assert shown.stdout.split() == ["from-file", "from-file", "4", server.base_url]
        k.run("%config RLM.model = 'from-config'")
        k.run("ctx = 'x'")
        k.run('%rlm "q" ctx --max-iterations 1 --set max_retries=0')
        assert server.requests[0].model == "from-config"
        k.run('%rlm "q" ctx --model from-option --max-iterations 1')
        assert server.requests[-1].model == "from-option"
        config_help = k.run("%config RLM")
        assert "max_iterations" in config_help.stdout
    finally:
        k.shutdown()


def test_terminal_ipython_shows_every_block_as_text(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    root = [
        fence("a = len(P)\nprint(a)"),
        fence("b = llm_query('double it')\nprint(b)"),
        fence("FINAL(b)"),
    ]
    server = serve({"root": root, "sub": ["22"]})
    script = tmp_path / "session.ipy"
    setup = "\n".join(f"%config RLM.{k} = {v!r}" for k, v in settings(server).items())
    script.write_text(
        f'%load_ext rlm_kernel\n{setup}\nctx = "hello world"\n%rlm "How long, doubled?" ctx\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", str(script)],
        env=kernel_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "In [rlm 1]:\na = len(P)\nprint(a)\n11\n" in out
    assert "llm_query · sub · " in out  # the sub-call panel's entry
    assert "Answer (Answered by FINAL)\n22\n" in out
    assert "object>" not in out  # no Python reprs of display objects
    assert "VBox(" not in out


def test_an_endpoint_set_after_a_failed_start_is_used(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("FINAL('reached')")]})
    kernel.run("ctx = 'c'")
    failed = kernel.run('%rlm "q" ctx')  # no key, no endpoint: the error says what to set
    assert "OPENAI_BASE_URL" in failed.text + failed.stderr
    # Doing what it says, in the same kernel, is enough: the environment is read again.
    kernel.run(f"%env OPENAI_BASE_URL={server.base_url}\n%env RLM_MODEL=root")
    run = kernel.run('%rlm "q" ctx --set max_retries=0')
    assert answer_of(run) == "reached", run.text + run.stderr
    assert server.requests[0].model == "root"


def test_interrupt_pauses_and_resume_finishes(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    wait = "import os, time\nwhile not os.path.exists('go'):\n    time.sleep(0.05)\nprint('slept')"
    root = [fence(wait), fence("FINAL('woke up')")]
    server = serve({"root": root})
    configure(kernel, server)
    kernel.run("ctx = 'c'")
    timer = threading.Timer(1.5, kernel.manager.interrupt_kernel)
    timer.start()
    run = kernel.run('%rlm "q" ctx')
    timer.join()
    assert "paused" in run.html
    status = kernel.run("%rlm status")
    assert "paused" in status.stdout
    # Resuming runs the interrupted step again (now it can finish), then asks for the next one.
    kernel.run("open('go', 'w').close()")
    resumed = kernel.run("%rlm resume")
    assert not resumed.errors
    assert "woke up" in resumed.html


def test_step_mode_shows_each_step_before_it_runs(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    server = serve(
        {
            "root": [
                fence("made = 1\nprint(made)"),
                fence("made += 1\nprint(made)"),
                fence("FINAL(made)"),
            ]
        }
    )
    configure(kernel, server)
    kernel.run("ctx = 'c'")
    started = kernel.run('%rlm "q" ctx --step')
    assert "In [rlm 1]:" in started.html
    assert "made = 1" in started.text
    assert kernel.run("print('made' in dir())").stdout.strip() == "False"  # proposed, not run
    kernel.run("%rlm step")
    assert kernel.run("print(made)").stdout.strip() == "1"
    kernel.run("%rlm step")
    done = kernel.run("%rlm step")
    assert "Answer" in done.html
    assert kernel.run("print(made)").stdout.strip() == "2"


def run_as_the_extension(kernel: Kernel, code: str, timeout: float = 60) -> KernelRun:
    """Execute ``code`` in a request tagged as the JupyterLab extension tags every request: from a
    front end that can insert cells."""
    kc = kernel.client
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    tag = {"rlm_frontend": {"version": "test", "session": kc.session.session}}
    request = kc.session.msg("execute_request", content, metadata=tag)
    kc.shell_channel.send(request)
    msg_id = request["header"]["msg_id"]
    messages: list[dict[str, Any]] = []
    while True:
        message = kc.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    return KernelRun(messages, reply)


def test_a_session_started_inline_stays_inline(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    """The driver is chosen once, when the session starts: a later command from a front end that
    could insert cells still runs this session's steps in its own cell, and inserts none."""
    server = serve({"root": [fence("made = 1\nprint(made)"), fence("FINAL(made)")]})
    configure(kernel, server)
    kernel.run("ctx = 'c'")
    started = kernel.run('%rlm "q" ctx --step')
    assert "Step mode: `%rlm step` runs step 1" in started.text
    stepped = run_as_the_extension(kernel, "%rlm step")
    assert not stepped.errors, stepped.errors
    assert [m for m in stepped.messages if m["msg_type"].startswith("comm_")] == []
    assert stepped.stdout == "1\n"  # step 1's print, in this cell
    assert "Step mode: `%rlm step` runs step 2" in stepped.text
    done = run_as_the_extension(kernel, "%rlm step")
    assert answer_of(done) == "1"


def test_pause_and_stop_from_magics(kernel: Kernel, serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print(1)"), fence("print(2)")]})
    configure(kernel, server)
    kernel.run("ctx = 'c'")
    kernel.run('%rlm "q" ctx --step')
    paused = kernel.run("%rlm pause")  # already paused by --step: it stays so
    assert "is paused; `%rlm resume` continues it" in paused.stdout
    stopped = kernel.run("%rlm stop")
    assert "done (stopped)" in stopped.stdout
    late = kernel.run("%rlm pause")
    assert "has already ended (stopped)" in late.stdout
    assert "resume" not in late.stdout  # it cannot be resumed, so it must not say so
    again = kernel.run("%rlm step")  # a notebook stepping through may reach the end: no error
    assert not again.errors, again.errors
    assert "has finished (stopped): nothing left to step" in again.stdout
    assert "not paused" in kernel.run("%rlm resume").stderr


def test_questions_are_taken_verbatim_and_mistakes_get_one_line_errors(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("FINAL('ok')")] * 2})
    configure(kernel, server)
    kernel.run("ctx = 'c'\nx = 42\ndocs = {'a b': 'the text'}")
    run = kernel.run('%rlm "What is {x} in $x, in USD ($)?" ctx')
    assert answer_of(run) == "ok"
    asked = server.requests[0].messages[1]["content"]
    assert "What is {x} in $x, in USD ($)?" in asked  # not expanded by IPython
    # A question that is a subcommand's name, and a context expression with its own quotes.
    run = kernel.run('%rlm "status" docs["a b"]')
    assert answer_of(run) == "ok", run.stderr
    assert "Question: status\n" in server.requests[-1].messages[1]["content"]
    assert "str with 8 characters" in server.requests[-1].messages[1]["content"]

    for line, message in [
        (
            '%rlm "q" ctx --session abc',
            "--session names the session a follow-up (--continue) goes to",
        ),
        ('%rlm "q" ctx --continue', "a context cannot be given with it"),
        ('%rlm "q" --continue --step', "--step cannot be given with it"),
        ("%rlm edit 7", "has iterations 1–2; step 7 does not exist"),
        ("%%rlm_step 9\nprint(1)", "has iterations 1–2; step 9 does not exist"),
        ("%rlm export out.bogus", "Cannot tell the export format from"),
        ("%rlm export out.json --format bogus", "Unknown trajectory format 'bogus'"),
    ]:
        wrong = kernel.run(line)
        assert not wrong.errors, (line, wrong.errors)  # a usage error, not a traceback
        assert message in wrong.stderr, (line, wrong.stderr)


def test_an_edited_step_rewinds_and_continues(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    step2 = fence("y = x * 10\nprint(y)")
    root = [fence("x = 1\nprint(x)"), step2, fence("FINAL(y)"), step2, fence("FINAL(y)")]
    server = serve({"root": root})
    configure(kernel, server)
    kernel.run("ctx = 'c'")
    first = kernel.run('%rlm "q" ctx')
    assert answer_of(first) == "10"
    sid = kernel.run(SESSION_ID).stdout.strip()
    edit = kernel.run("%rlm edit 1")
    assert f"%%rlm_step {sid} 1" in json.dumps(edit.reply["content"].get("payload", []))
    rerun = kernel.run(f"%%rlm_step {sid} 1\nx = 7\nprint(x)")
    assert not rerun.errors
    assert answer_of(rerun) == "70"  # the model's steps 2 and 3 ran again, on the edited x
    traj = kernel.run(
        "import json\nimport rlm_kernel\ns = rlm_kernel.current_session()\n"
        "print(json.dumps([it['edited_by_user'] for it in s.trajectory.iterations]))"
    )
    assert json.loads(traj.stdout.strip().splitlines()[-1]) == [True, False, False]


def test_continue_asks_a_follow_up_in_the_same_namespace(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    root = [
        fence("n = len(P)\nprint(n)"),
        fence("FINAL(n)"),
        fence("print(n * 2)"),
        fence("FINAL(n * 2)"),
    ]
    server = serve({"root": root})
    configure(kernel, server)
    kernel.run("ctx = 'abcd'")
    kernel.run('%rlm "How long?" ctx')
    again = kernel.run('%rlm "And doubled?" --continue')
    assert not again.errors, again.errors
    assert answer_of(again) == "8"
    history = server.requests[2].messages
    joined = json.dumps(history)
    assert "How long?" in joined
    assert "Follow-up question: And doubled?" in joined


def test_clear_errors_never_a_traceback(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    server = serve({"root": [fence("print(1)")]})
    configure(kernel, server)
    kernel.run("ctx = 'c'\nempty = ''")
    wrong = kernel.run('%rlm "q" ctxx')
    assert "no variable named 'ctxx'" in wrong.stderr
    assert "Did you mean 'ctx'?" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert "is empty" in kernel.run('%rlm "q" empty').stderr
    assert "Did you mean `%rlm pause`?" in kernel.run("%rlm paus").stderr
    assert "No RLM session yet" in kernel.run("%rlm status").stderr
    assert "Unknown setting" in kernel.run('%rlm "q" ctx --set max_iteration=3').stderr


def test_a_second_session_cannot_start_while_one_runs(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    nested = "get_ipython().run_line_magic('rlm', '\"inner\" P')"
    server = serve({"root": [fence(nested), fence("FINAL('outer done')")]})
    configure(kernel, server)
    kernel.run("ctx = 'c'")
    run = kernel.run('%rlm "outer" ctx')
    assert "outer done" in run.html
    assert "is running" in json.dumps(server.requests[1].messages[-1])


def test_user_variables_named_like_helpers_are_kept(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    server = serve({"root": [fence("print(1)"), fence("FINAL(2)")]})
    configure(kernel, server)
    kernel.run("ctx = 'c'\nanswer = 42")
    run = kernel.run('%rlm "q" ctx')
    assert "rlm_saved['answer']" in run.stdout
    assert kernel.run("print(rlm_saved['answer'])").stdout.strip() == "42"


def test_a_context_variable_called_context_needs_no_keeping(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    """The reference's name for the context is bound as an alias of P: the user's own ``context``,
    when it is the context asked about, is the same object, so nothing is set aside."""
    server = serve({"root": [fence("print(context == P)"), fence("FINAL(2)")]})
    configure(kernel, server)
    kernel.run("context = 'c'")
    run = kernel.run('%rlm "q" context')
    assert "rlm_saved" not in run.stdout
    assert "True" in run.stdout
    assert kernel.run("print(context)").stdout.strip() == "c"


def test_the_rlm_kernel_advertises_its_protocol(tmp_path: Path) -> None:
    k = Kernel("rlm", kernel_env(tmp_path), tmp_path)
    try:
        k.client.kernel_info()
        reply = k.client.get_shell_msg(timeout=10)
        assert reply["content"]["rlm"]["protocol"] == 1
        assert reply["content"]["implementation"] == "rlm_kernel"
        assert k.run(HAS_RLM).stdout.split() == ["True", "True"]
    finally:
        k.shutdown()


def test_unload_removes_the_magics(tmp_path: Path) -> None:
    k = Kernel("python3", kernel_env(tmp_path), tmp_path)
    try:
        k.run("%load_ext rlm_kernel")
        assert k.run(HAS_RLM).stdout.split() == ["True", "True"]
        k.run("%unload_ext rlm_kernel")
        assert k.run(HAS_RLM).stdout.split() == ["False", "False"]
        assert "RLM" not in k.run("%config").stdout
    finally:
        k.shutdown()


def _record(server: ScriptedServer, context: str) -> Path:
    """A finished recorded session on ``context`` (one sub-call); returns its trajectory file."""
    config = RLM().with_overrides(settings(server))
    session = Session("What is the code?", context, config=config, namespace={})
    assert session.run().answer == "CODE 7781"
    assert session.path is not None
    return session.path


def test_replay_runs_offline_and_a_miss_is_explained(
    kernel: Kernel, serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    root = [
        fence("found = llm_query('code? ' + P)\nprint(found)"),
        fence("FINAL(found)"),
    ]
    server = serve({"root": root, "sub": lambda r: "CODE 7781"})
    path = _record(server, "the code is 7781")
    server.stop()  # from here on there is no model at all
    kernel.run("ctx = 'the code is 7781'")

    replayed = kernel.run(f"%rlm replay {path} ctx")
    assert not replayed.errors, replayed.errors
    assert "CODE 7781" in replayed.text
    assert kernel.run("print(found)").stdout.strip() == "CODE 7781"

    # A person edits step 1 so it asks a sub-call the recording never made.
    sid = kernel.run(SESSION_ID).stdout.strip()
    edited = kernel.run(f"%%rlm_step {sid} 1\nfound = llm_query('something else?')\nprint(found)")
    assert not edited.errors, edited.errors
    assert "The recording holds no response from 'sub'" in edited.stdout
    assert "The recording holds no response from 'root'" in edited.text  # the run stops here
    assert "--live-fallback" in edited.text
    assert "paused" in kernel.run("%rlm status").stdout

    # With a model configured and --live-fallback, what the recording lacks is asked live.
    live = serve({"root": [fence("FINAL(found)")], "sub": lambda r: "LIVE " + r.prompt})
    configure(kernel, live)
    kernel.run(f"%rlm replay {path} ctx --live-fallback")
    assert not live.requests  # the recording covers the replay itself
    sid = kernel.run(SESSION_ID).stdout.strip()
    again = kernel.run(f"%%rlm_step {sid} 1\nfound = llm_query('something else?')\nprint(found)")
    assert not again.errors, again.errors
    assert "LIVE something else?" in again.text
    assert [r.model for r in live.requests] == ["sub", "root"]

    wrong = kernel.run(f"%rlm replay {path}")
    assert "which context?" in wrong.stderr


def test_help_shows_every_subcommand_and_examples(kernel: Kernel) -> None:
    run = kernel.run("%rlm?")
    pages = [p for p in run.reply["content"].get("payload", []) if p.get("source") == "page"]
    assert pages, run.reply
    text = pages[0]["data"]["text/plain"]
    for word in (
        "pause",
        "resume",
        "step",
        "stop",
        "status",
        "edit",
        "export",
        "replay",
        "--continue",
        "Examples:",
    ):
        assert word in text, word


def test_a_replay_re_enacts_a_persons_edit_and_steps_through(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    path = record_edited_session(serve, "c")
    kernel.run("ctx = 'c'")

    # Run through: the person's code runs at step 1, as it did in the recording.
    whole = kernel.run(f"%rlm replay {path} ctx")
    assert not whole.errors, whole.errors
    assert answer_of(whole) == "84"

    # Step mode: each step is proposed and waits; the edit can be made by hand, as in class.
    first = kernel.run(f"%rlm replay {path} ctx --step")
    assert not first.errors, first.errors
    assert "In [rlm 1]:" in first.html
    assert "x = 1" in first.text  # what the model proposed
    assert "In the recording a person ran their own code here instead" in first.text
    assert answer_of(first) is None
    edited = kernel.run(f"%%rlm_step 1\n{EDITED_STEP}")  # no session id: the current session
    assert not edited.errors, edited.errors
    assert "42" in edited.stdout
    assert "`%rlm step` runs step 2" in edited.text
    assert answer_of(edited) is None
    rest = kernel.run("%rlm resume")
    assert answer_of(rest) == "84"
    flags = kernel.run(
        "import rlm_kernel\n"
        "s = rlm_kernel.current_session()\n"
        "print([it['edited_by_user'] for it in s.trajectory.iterations])"
    )
    assert flags.stdout.strip().splitlines()[-1] == "[True, False, False]"
    assert "nothing left to step" in kernel.run("%rlm step").stdout
