"""The session surface: propose / execute / step / run / pause / stop / rewind, and its events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rlm_kernel import RLM, Session, SessionStateError, Trajectory
from rlm_kernel._events import (
    CodeReady,
    Event,
    Finished,
    IterationFinished,
    StateChanged,
    SubcallFinished,
    SubcallStarted,
)
from rlm_kernel.models import ConversationKeys, Message, request_key
from rlm_kernel.testing import ScriptedServer, fence, settings


def make(server: ScriptedServer, context: object = "ctx", **overrides: Any) -> Session:
    return Session("q", context, config=RLM().with_overrides(settings(server, **overrides)))


def test_propose_then_execute_is_one_step(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("x = len(P)\nprint(x)"), fence("FINAL(x)")]})
    session = make(server)
    proposal = session.propose()
    assert proposal.iteration == 1
    assert proposal.code == "x = len(P)\nprint(x)"
    assert session.propose() is proposal  # asking again does not call the model again
    assert len(server.requests) == 1
    record = session.execute()
    assert record["results"][0]["stdout"] == "3\n"
    assert session.state == "paused"
    session.step()
    assert (session.state, session.answer) == ("done", "3")


def test_a_person_edits_the_code_before_it_runs(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print(P)"), fence("FINAL(y)")]})
    session = make(server)
    session.propose()
    record = session.execute("y = P * 2\nprint(y)")
    assert record["edited_by_user"]
    assert "+y = P * 2" in record["diff"]
    assert record["blocks"] == ["print(P)"]
    # The model sees the code that ran as its own turn, and is told a person changed it.
    session.step()
    sent = server.requests[1].messages
    assert sent[-2]["content"] == "```repl\ny = P * 2\nprint(y)\n```"
    assert "A person edited your code" in sent[-1]["content"]
    assert session.answer == "ctxctx"


def test_rewind_reruns_an_earlier_step_and_supersedes_later_ones(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(
        {
            "root": [
                fence("a = 1\nprint(a)"),
                fence("b = a + 1\nprint(b)"),
                fence("print(b * 10)"),
                fence("FINAL(b)"),
            ]
        }
    )
    session = make(server)
    session.step()
    session.step()
    session.step()
    assert session.iteration == 3
    proposal = session.rewind(2)
    assert proposal.code == "b = a + 1\nprint(b)"
    assert session.iteration == 1
    session.execute("b = a + 100\nprint(b)")
    session.step()
    assert session.answer == "101"
    iterations = session.trajectory.iterations
    assert [it["iteration"] for it in iterations] == [1, 2, 3]
    assert iterations[1]["edited_by_user"]
    kinds = [r["type"] for r in session.trajectory.records]
    assert kinds.count("rewind") == 1
    assert kinds.count("iteration") == 5  # the superseded ones stay in the record
    # The model's history after the rewind holds the edited step, not the superseded one.
    assert "print(b * 10)" not in str(server.requests[-1].messages)
    # Each record's replay key is the key of a request the model really got, across the rewind.
    sent = {request_key(r.model, r.messages) for r in server.requests}
    recorded = [
        r["model_call"]["request_key"]
        for r in session.trajectory.records
        if r["type"] == "iteration"
    ]
    assert set(recorded) == sent


def test_rewind_after_done_reopens_the_session(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print(P)"), fence("FINAL('first')")]})
    session = make(server)
    session.run()
    assert session.state == "done"
    session.rewind(2)
    session.execute("FINAL('second')")
    assert (session.state, session.answer) == ("done", "second")
    assert session.path is not None
    assert Trajectory.load(session.path) == session.trajectory


def test_rewind_out_of_range_is_a_clear_error(serve: Callable[..., ScriptedServer]) -> None:
    session = make(serve({"root": [fence("print(1)")]}))
    session.step()
    with pytest.raises(SessionStateError, match="iterations 1–1"):
        session.rewind(5)


def test_pause_from_a_listener_stops_at_the_next_safe_point(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("print(1)"), fence("print(2)"), fence("FINAL(3)")]})
    session = make(server)

    def pause_after_first(event: Event) -> None:
        if isinstance(event, IterationFinished) and event.iteration == 1:
            session.pause()

    session.subscribe(pause_after_first)
    result = session.run()
    assert (result.reason, session.state, session.iteration) == ("paused", "paused", 1)
    assert len(server.requests) == 1
    result = session.run()
    assert result.answer == "3"


def test_stop_ends_without_an_answer(serve: Callable[..., ScriptedServer]) -> None:
    session = make(serve({"root": [fence("print(1)")]}))
    session.step()
    session.stop()
    assert (session.state, session.reason, session.answer) == ("done", "stopped", None)
    with pytest.raises(SessionStateError):
        session.step()


def test_events_describe_the_run(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(
        {"root": [fence("print(llm_batch(['a', 'b']))"), fence("FINAL(1)")], "sub": lambda r: "ok"}
    )
    session = make(server)
    events: list[Event] = []
    session.subscribe(events.append)
    session.run()
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "StateChanged"
    assert kinds.count("CodeReady") == 2
    assert kinds.count("SubcallStarted") == kinds.count("SubcallFinished") == 2
    assert kinds[-1] == "Finished"
    states = [(e.old, e.new) for e in events if isinstance(e, StateChanged)]
    assert states == [("idle", "running"), ("running", "done")]
    started = [e for e in events if isinstance(e, SubcallStarted)]
    assert {e.batch_size for e in started} == {2}
    finished = [e for e in events if isinstance(e, SubcallFinished)]
    assert all(e.record["response"] == "ok" for e in finished)
    code = [e for e in events if isinstance(e, CodeReady)]
    assert code[0].blocks == ("print(llm_batch(['a', 'b']))",)
    assert isinstance(events[-1], Finished)
    assert events[-1].answer == "1"


def test_autosave_has_every_finished_iteration_while_running(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("print(1)"), fence("print(2)"), fence("FINAL(3)")]})
    session = make(server)
    seen: list[int] = []

    def check_file(event: Event) -> None:
        if isinstance(event, IterationFinished):
            assert session.path is not None
            lines = session.path.read_text().splitlines()
            seen.append(sum('"type":"iteration"' in line for line in lines))

    session.subscribe(check_file)
    session.run()
    assert seen == [1, 2, 3]


def test_variables_persist_in_a_given_namespace(serve: Callable[..., ScriptedServer]) -> None:
    ns: dict[str, Any] = {"user_value": 41}
    server = serve(
        {
            "root": [
                fence("made_by_model = user_value + 1\nprint(made_by_model)"),
                fence("FINAL(made_by_model)"),
            ]
        }
    )
    session = Session("q", "ctx", config=RLM().with_overrides(settings(server)), namespace=ns)
    session.run()
    assert ns["made_by_model"] == 42
    assert ns["P"] == "ctx"


def test_clobbered_user_names_are_reported(serve: Callable[..., ScriptedServer]) -> None:
    ns: dict[str, Any] = {"answer": 42, "llm_query": "mine"}
    server = serve({"root": []})
    session = Session("q", "ctx", config=RLM().with_overrides(settings(server)), namespace=ns)
    assert sorted(session.clobbered) == ["answer", "llm_query"]


def test_the_context_object_is_bound_without_a_copy(serve: Callable[..., ScriptedServer]) -> None:
    context = ["doc one", "doc two"]
    ns: dict[str, Any] = {}
    Session("q", context, config=RLM().with_overrides(settings(serve({"root": []}))), namespace=ns)
    assert ns["P"] is context


def test_conversation_keys_are_request_keys_for_any_change_of_history() -> None:
    keys = ConversationKeys()
    history: list[Message] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q"},
    ]
    assert keys("root", history) == request_key("root", history)
    for turn in range(3):  # the usual case: the history grows by appending
        history += [
            {"role": "assistant", "content": f"```repl\nprint({turn})\n```"},
            {"role": "user", "content": f"{turn} ✓ «output»"},
        ]
        assert keys("root", history) == request_key("root", history)
    assert keys("other-model", history) == request_key("other-model", history)
    shorter = history[:4]  # a rewind
    assert keys("root", shorter) == request_key("root", shorter)
    replaced = [{"role": "system", "content": "a new system prompt"}, *history[1:]]
    assert keys("root", replaced) == request_key("root", replaced)
    replaced[3]["content"] = "changed in place"
    assert keys("root", replaced) == request_key("root", replaced)
    assert keys("root", []) == request_key("root", [])


def test_an_unexpected_error_ends_the_session_failed_not_running(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("print(1)"), fence("print(2)")]})
    session = make(server)
    session.step()

    class FullDisk:
        # A writer that raises: the real one keeps a failed write as its error and the session
        # pauses (test_hostile_inputs); any error that escapes like this one is unexpected.
        path = session.path
        error = None

        def write(self, record: dict[str, Any]) -> None:
            raise OSError(28, "No space left on device")

        def catch_up(self, records: Any) -> None:
            pass

    session._recorder.writer = FullDisk()  # type: ignore[assignment]  # the disk fills up mid-run
    ended: list[Finished] = []
    session.subscribe(lambda e: ended.append(e) if isinstance(e, Finished) else None)
    with pytest.raises(OSError, match="No space left"):
        session.run()
    assert (session.state, session.reason) == ("failed", "failed")
    assert [e.reason for e in ended] == ["failed"]  # front ends hear of it (panels, status bar)
    assert "No space left on device" in session.message
    assert str(session.path) in session.message  # where the trajectory so far is
    with pytest.raises(SessionStateError):
        session.step()  # nothing resumes a failed session; a new %rlm may start
