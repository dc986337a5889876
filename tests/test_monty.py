"""Secure mode: iteration code in a pydantic-monty sandbox (RLM.executor = 'monty').

Every scenario goes through the real openai SDK against the loopback ScriptedServer and checks two
things: what the sandbox did with the code, and that the session went on afterwards (a later step ran
with its state intact and FINAL was accepted).
"""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import RLM, Session
from rlm_kernel._records import Result
from rlm_kernel._sandbox import is_sandbox_safe, sandbox_safe
from rlm_kernel.executors import NamespaceExecutor
from rlm_kernel.executors.monty import MontyExecutor
from rlm_kernel.testing import SECRET, ScriptedServer, fence, settings

pytest.importorskip("pydantic_monty")

# A later step that needs the state made before the escape attempt, then an answer.
AFTER = [fence("print('still here', marker)"), fence("FINAL('done')")]


def run_monty(server: ScriptedServer, context: object = "ctx", **overrides: Any) -> Result:
    return rlm_kernel.run("q", context, **settings(server, executor="monty", **overrides))


def assert_went_on(result: Result, blocked: int = 1) -> None:
    """The step after the blocked one ran with the earlier state, and FINAL ended the run."""
    assert (result.reason, result.answer) == ("final", "done"), result.message
    after = result.trajectory.iterations[blocked + 1]["results"][0]
    assert after["error"] is None
    assert after["stdout"] == "still here 7\n"


ESCAPES = {
    "builtins": ("print(__builtins__)", "NameError", "'__builtins__' is not defined"),
    "builtins import": (
        "__builtins__['__import__']('os').system('id')",
        "NameError",
        "'__builtins__' is not defined",
    ),
    "nested exec": (
        "exec(\"import os\\nos.system('id')\")",
        "AttributeError",
        "has no attribute 'system'",
    ),
    "nested eval": ("eval(\"__import__('os')\")", "NameError", "'__import__' is not defined"),
    "class bases": (
        "print(().__class__.__bases__[0].__subclasses__())",
        "AttributeError",
        "no attribute '__class__'",
    ),
    "import os": ("import os\nprint(os.listdir('/'))", "ImportError", "module 'os' is not"),
    "import sys": ("import sys\nprint(sys.modules)", "ImportError", "module 'sys' is not"),
    "from import": ("from subprocess import run", "ImportError", "module 'subprocess' is not"),
    "open": ("print(open('/etc/passwd').read())", "PermissionError", "/etc/passwd"),
    "memory": ("x = [0] * 10**9", "MemoryError", "RLM.monty_memory_mb"),
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escapes_are_blocked_and_the_session_goes_on(
    serve: Callable[..., ScriptedServer], name: str
) -> None:
    code, error_type, message = ESCAPES[name]
    server = serve({"root": [fence("marker = 7"), fence(code), *AFTER]})

    result = run_monty(server)

    blocked = result.trajectory.iterations[1]["results"][0]
    assert blocked["error_type"] == error_type
    assert message in blocked["error"]
    assert message in server.requests[2].prompt  # the model was told
    assert_went_on(result)


def test_an_import_refusal_lists_what_can_be_imported(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("marker = 7"), fence("import numpy"), *AFTER]})
    result = run_monty(server)
    error = result.trajectory.iterations[1]["results"][0]["error"]
    assert "RLM.executor = 'monty'" in error
    assert "nothing in this block ran" in error
    assert "re, time, tomllib" in error
    assert_went_on(result)


def test_the_environment_and_the_api_key_are_out_of_reach(
    serve: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    attempts = [
        "exec(\"import os\\nprint(os.environ['OPENAI_API_KEY'])\")",
        "exec(\"import os\\nprint(os.getenv('OPENAI_API_KEY'))\")",
    ]
    server = serve({"root": [fence("marker = 7"), *map(fence, attempts), *AFTER]})

    result = run_monty(server)

    for it in result.trajectory.iterations[1:3]:
        [attempt] = it["results"]
        assert attempt["error_type"] == "RuntimeError"
        assert "is not supported in this environment" in attempt["error"]
    assert all(SECRET not in r.prompt for r in server.requests)
    assert_went_on(result, blocked=2)


def test_runaway_code_hits_the_time_limit_and_the_state_survives(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(
        {"root": [fence("marker = 7"), fence("marker = 8\nwhile True:\n    pass"), *AFTER]}
    )

    result = run_monty(server, iteration_timeout=0.5)

    blocked = result.trajectory.iterations[1]["results"][0]
    assert blocked["timed_out"]
    assert blocked["error_type"] == "IterationTimeout"
    assert "RLM.iteration_timeout" in server.requests[2].prompt
    assert "went back to its state before this block" in blocked["error"]
    assert_went_on(result)  # marker is 7 again: the broken block left no trace


def test_deep_recursion_names_its_setting(serve: Callable[..., ScriptedServer]) -> None:
    code = "def down(n):\n    return down(n + 1)\ndown(0)"
    server = serve({"root": [fence("marker = 7"), fence(code), *AFTER]})
    result = run_monty(server, monty_max_recursion=50)
    blocked = result.trajectory.iterations[1]["results"][0]
    assert blocked["error_type"] == "RecursionError"
    assert "RLM.monty_max_recursion" in blocked["error"]
    assert_went_on(result)


def test_the_host_call_cap_is_reported_and_reset(serve: Callable[..., ScriptedServer]) -> None:
    loop = "for i in range(10):\n    llm_query(str(i))"
    server = serve({"root": [fence("marker = 7"), fence(loop), *AFTER], "sub": lambda r: "ok"})
    result = run_monty(server, monty_max_host_calls=5)
    blocked = result.trajectory.iterations[1]["results"][0]
    assert blocked["error_type"] == "HostCallLimit"
    assert "RLM.monty_max_host_calls" in blocked["error"]
    assert_went_on(result)


def test_unsupported_syntax_says_nothing_ran(serve: Callable[..., ScriptedServer]) -> None:
    code = "marker = 8\nclass Base:\n    pass\nclass Child(Base):\n    pass"
    server = serve({"root": [fence("marker = 7"), fence(code), *AFTER]})
    result = run_monty(server)
    blocked = result.trajectory.iterations[1]["results"][0]
    assert blocked["error_type"] == "NotImplementedError"
    assert "class inheritance" in blocked["error"]
    assert "Nothing in this block ran" in blocked["error"]
    assert_went_on(result)


def test_variables_functions_and_imports_persist(serve: Callable[..., ScriptedServer]) -> None:
    root = [
        fence("import re\ncount = len(P)\ndef shout(s):\n    return s.upper() + '!'\nprint(count)"),
        fence("words = re.findall(r'\\w+', P)\nprint(words)"),
        fence("print(shout(P), count, len(words))"),
        fence("FINAL(shout(words[0]))"),
    ]
    server = serve({"root": root})

    result = run_monty(server, context="hello sandbox")

    third = result.trajectory.iterations[2]["results"][0]
    assert third["stdout"] == "HELLO SANDBOX! 13 2\n"
    assert result.answer == "HELLO!"


def test_helpers_survive_being_overwritten(serve: Callable[..., ScriptedServer]) -> None:
    root = [
        fence("print(P)"),
        fence("def FINAL(x):\n    return x\nllm_query = None\nP = 'gone'\nFINAL('nope')"),
        fence("FINAL(llm_query('echo ' + P))"),
    ]
    server = serve({"root": root, "sub": lambda r: r.prompt.upper()})
    result = run_monty(server, context="kept")
    assert result.answer == "ECHO KEPT"
    notes = result.trajectory.iterations[1]["notes"]
    assert any("FINAL" in n and "llm_query" in n and "P" in n for n in notes)


def test_final_var_and_show_vars_read_the_sandbox(serve: Callable[..., ScriptedServer]) -> None:
    root = [
        fence("n = len(P)\nitems = [1, 2]\nSHOW_VARS()"),
        fence("FINAL_VAR('missing')"),
        "Done.\nFINAL_VAR(n)",
    ]
    server = serve({"root": root})
    result = run_monty(server, context="abcd")
    first = result.trajectory.iterations[0]["results"][0]
    assert first["stdout"] == "Variables: items (list), n (int)\n"
    assert "'missing' not found" in result.trajectory.iterations[1]["results"][0]["stdout"]
    assert (result.answer, result.trajectory.iterations[2]["final"]["source"]) == ("4", "prose")


def test_the_reference_spellings_work_in_the_sandbox(serve: Callable[..., ScriptedServer]) -> None:
    """``context`` is ``P`` (sent once, bound as an alias), ``llm_query_batched`` and ``SUBMIT`` are
    helpers there too, and a rebound ``context`` is put back like ``P``."""
    root = [
        fence("print(context is P, llm_query_batched(['a', 'b']))\ncontext = 'gone'"),
        fence("SUBMIT(answer=context.upper())"),
    ]
    server = serve({"root": root, "sub": lambda r: r.prompt * 2})
    result = run_monty(server, context="kept")
    first = result.trajectory.iterations[0]
    assert first["results"][0]["stdout"] == "True ['aa', 'bb']\n"
    assert any("context" in n for n in first["notes"])
    assert (result.answer, result.trajectory.iterations[1]["final"]["source"]) == ("KEPT", "SUBMIT")


def test_answer_dict_and_a_refused_early_final(serve: Callable[..., ScriptedServer]) -> None:
    root = [
        fence('answer["content"] = "early"\nanswer["ready"] = True'),
        fence("print(answer)"),
        fence('answer["content"] = P\nanswer["ready"] = True'),
    ]
    server = serve({"root": root})
    result = run_monty(server)
    assert "first step" in result.trajectory.iterations[0]["notes"][0]
    # The refusal reset the dict inside the sandbox too.
    second = result.trajectory.iterations[1]["results"][0]
    assert second["stdout"] == "{'content': '', 'ready': False}\n"
    assert (result.answer, result.trajectory.iterations[2]["final"]["source"]) == ("ctx", "answer")


def test_only_tools_marked_safe_are_exposed_and_listed(
    serve: Callable[..., ScriptedServer],
) -> None:
    @sandbox_safe
    def search(query: str, k: int = 3) -> list[str]:
        """Find the k passages most relevant to query (BM25)."""
        return [f"passage about {query}"] * k

    def delete_everything() -> None:
        """Not for sandboxed code."""

    root = [
        fence("hits = search('cats', k=2)\nprint(hits)"),
        fence("delete_everything()"),
        fence("FINAL(hits[0])"),
    ]
    server = serve({"root": root})
    with pytest.warns(UserWarning, match="delete_everything"):
        result = run_monty(server, tools=[search, delete_everything])

    assert is_sandbox_safe(search)
    assert not is_sandbox_safe(delete_everything)
    assert result.answer == "passage about cats"
    system = server.requests[0].messages[0]["content"]
    assert "search(query: str, k: int = 3)" in system
    assert "delete_everything" not in system
    assert result.trajectory.iterations[1]["results"][0]["error_type"] == "NameError"


def test_the_sandbox_note_is_in_the_prompt_only_for_monty(
    serve: Callable[..., ScriptedServer],
) -> None:
    prompts = {}
    for executor in ("namespace", "monty"):
        server = serve({"root": [fence("print(1)"), fence("FINAL(1)")]})
        rlm_kernel.run("q", "ctx", **settings(server, executor=executor))
        prompts[executor] = server.requests[0].messages[0]["content"]
    assert "sandbox" not in prompts["namespace"]
    note = prompts["monty"].removeprefix(prompts["namespace"])
    assert "pydantic-monty" in note
    assert "class inheritance" in note
    assert "`yield`" in note
    assert "You can import only: asyncio" in note


def test_interrupt_restores_the_last_state_and_the_session_resumes(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("marker = 7"), fence("marker = 8\nwhile True:\n    pass"), *AFTER]
    server = serve({"root": root})
    config = RLM().with_overrides(settings(server, executor="monty", iteration_timeout=30))
    session = Session("q", "ctx", config=config)
    session.step()
    session.propose()
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    outcome = session.execute()  # a kernel interrupt arrives while the sandbox loops
    timer.join()

    assert outcome["type"] == "interrupted"
    assert session.state == "paused"
    # A person replaces the runaway step; the sandbox is back at its state before it.
    record = session.execute("print('still here', marker)")
    assert record["results"][0]["stdout"] == "still here 7\n"
    assert record["results"][0]["interrupted"] is False
    result = session.run()
    assert (result.reason, result.answer) == ("final", "done")


def test_interrupt_from_another_thread(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("marker = 7"), fence("while True:\n    pass"), *AFTER]})
    config = RLM().with_overrides(settings(server, executor="monty", iteration_timeout=30))
    session = Session("q", "ctx", config=config)
    assert isinstance(session.executor, MontyExecutor)
    session.step()
    session.propose()
    timer = threading.Timer(0.3, session.executor.interrupt)  # a pause button
    timer.start()
    assert session.execute()["type"] == "interrupted"
    timer.join()
    session.execute("print('still here', marker)")
    assert session.run().answer == "done"


def test_a_follow_up_after_done_finds_the_state(serve: Callable[..., ScriptedServer]) -> None:
    root = [fence("marker = 7\nprint(marker)"), fence("FINAL(marker)"), *AFTER]
    server = serve({"root": root})
    session = Session("q", "ctx", config=RLM().with_overrides(settings(server, executor="monty")))
    assert session.run().answer == "7"
    # Finishing gave the worker back; the follow-up restores the sandbox from its last dump.
    session.follow_up("and now?")
    result = session.run()
    assert result.answer == "done"
    assert result.trajectory.iterations[2]["results"][0]["stdout"] == "still here 7\n"


def test_records_have_the_same_shape_for_both_executors(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("x = 1\nprint(x)\nx"), fence("1/0"), fence("FINAL(x)")]
    trajectories = {}
    for executor in ("namespace", "monty"):
        server = serve({"root": root})
        result = rlm_kernel.run("q", "ctx", **settings(server, executor=executor))
        assert result.answer == "1"
        trajectories[executor] = result.trajectory

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k != "config"}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__

    namespace, monty = (t.iterations for t in trajectories.values())
    assert shape(namespace) == shape(monty)
    for a, b in zip(namespace, monty, strict=True):
        assert [(r["stdout"], r["value"], r["error_type"]) for r in a["results"]] == [
            (r["stdout"], r["value"], r["error_type"]) for r in b["results"]
        ]


def test_the_executor_follows_the_setting(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": []})
    plain = Session("q", "c", config=RLM().with_overrides(settings(server)))
    boxed = Session("q", "c", config=RLM().with_overrides(settings(server, executor="Monty")))
    assert isinstance(plain.executor, NamespaceExecutor)
    assert isinstance(boxed.executor, MontyExecutor)
    assert boxed.executor.limits.memory_mb == RLM().monty_memory_mb


def test_sandbox_safe_refuses_what_takes_no_attributes() -> None:
    with pytest.raises(TypeError, match="wrap it in a def"):
        sandbox_safe(len)
