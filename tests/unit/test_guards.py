"""The loop guard and the prose nudge, through a real Session driven by a scripted model: what the
model is told, what is recorded, and how a run ends; and that a replay and a resume follow a guarded
recording."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel import RLM, Session, resume
from rlm_kernel._guards import normalised, stated_answer
from rlm_kernel._replay import replay_session
from rlm_kernel.exporters import export
from rlm_kernel.models import Message
from rlm_kernel.models.scripted import ScriptedClient
from rlm_kernel.testing import fence, scripted_session

LOOK = 'i = P.find("cd")\nprint(i, P[i:i + 4])'


class Recorder:
    """A scripted root model that keeps what it was sent."""

    def __init__(self, script: Sequence[str]) -> None:
        self.script = list(script)
        self.sent: list[list[Message]] = []

    def __call__(self, messages: Sequence[Message], model: str) -> str:
        self.sent.append(list(messages))
        return self.script[len(self.sent) - 1]


def guards(session: Session) -> list[dict[str, Any]]:
    return [dict(r) for r in session.trajectory.records if r["type"] == "guard"]


def test_a_repeated_step_is_warned_then_the_next_repeat_is_not_run_and_the_run_ends() -> None:
    model = Recorder([fence(LOOK), fence(LOOK), fence(LOOK + "  # once more"), "It is at 2: cdef"])
    s = scripted_session(model)
    result = s.run()
    assert (result.reason, result.answer) == ("loop", "It is at 2: cdef")
    assert "Loop guard" in result.message
    assert "step 3 repeated step 1" in result.message
    # Two steps ran; the third, the second repeat, did not.
    assert [it["iteration"] for it in s.trajectory.iterations] == [1, 2]
    warned, stopped = guards(s)
    assert (warned["action"], warned["rule"], warned["iteration"], warned["repeats"]) == (
        "warned",
        "repeated_code",
        2,
        1,
    )
    assert warned["note"] in s.trajectory.iterations[1]["notes"]
    assert "already above, at step 1" in s.trajectory.iterations[1]["observation"]
    assert (stopped["action"], stopped["iteration"], stopped["repeats"]) == ("stopped", 3, 1)
    assert stopped["response"] == fence(LOOK + "  # once more")
    assert stopped["model_call"]["request_key"]
    # The model read the warning after step 2, and the reason it cannot run more code at the end.
    assert "Step 2 has the same code as step 1" in model.sent[2][-1]["content"]
    assert "cannot run more code: step 3 repeated step 1 again" in model.sent[3][-1]["content"]
    assert result.trajectory.final is not None
    assert result.trajectory.final["forced"] is not None


def test_the_same_output_from_other_code_counts_as_a_repeat_and_the_limit_stops_after_it() -> None:
    steps = [
        fence("print(len(P))"),
        fence("n = len(P)\nprint(n)"),
        fence("print(P.count('') - 1)"),
        "400",
    ]
    s = scripted_session(steps)
    result = s.run()
    assert result.reason == "loop"
    # Output repeats are only known once the code ran: all three steps stand.
    assert len(s.trajectory.iterations) == 3
    assert [(g["rule"], g["action"], g["repeats"]) for g in guards(s)] == [
        ("repeated_output", "warned", 1),
        ("repeated_output", "stopped", 1),
    ]
    assert guards(s)[1]["model_call"] is None  # it ran: its call is in its iteration record


def test_layout_and_comments_do_not_make_code_new() -> None:
    assert normalised("print( len(P) )  # again\n\n") == normalised("print(len(P))")
    assert normalised("x = 'a'") == normalised('x = "a"')
    assert normalised("print(len(P))") != normalised("print(len(P) + 1)")


@pytest.mark.parametrize(("limit", "ran"), [(0, 5), (1, 1), (3, 3)])
def test_loop_guard_sets_how_many_repeats_end_the_run(limit: int, ran: int) -> None:
    s = scripted_session([fence(LOOK)] * 5 + ["2"], loop_guard=limit, max_iterations=5)
    result = s.run()
    assert len(s.trajectory.iterations) == ran
    assert result.reason == ("max_iterations" if limit == 0 else "loop")
    assert len(guards(s)) == (0 if limit == 0 else limit)


def test_a_persons_edit_is_never_judged_a_repeat() -> None:
    s = scripted_session([fence(LOOK), fence("print('model')"), fence("FINAL('done')")])
    s.step()
    s.propose()
    record = s.execute(LOOK)  # a person runs step 1's code again, deliberately
    assert record["type"] == "iteration"
    assert record["edited_by_user"]
    assert guards(s) == []
    assert s.run().answer == "done"


def test_a_follow_up_question_may_run_its_exploration_again() -> None:
    s = scripted_session(
        [fence(LOOK), fence("FINAL(i)"), fence(LOOK), fence("FINAL(i + 1)")],
    )
    assert s.run().answer == "2"
    s.follow_up("And one further?")
    result = s.run()
    assert result.answer == "3"
    assert guards(s) == []


def test_a_rewound_repeat_no_longer_counts() -> None:
    s = scripted_session([fence(LOOK), fence(LOOK), fence(LOOK), "2"])
    s.step()
    s.step()
    assert [g["action"] for g in guards(s)] == ["warned"]
    s.rewind(2)
    s.execute("print('something new')")
    s.propose()
    # Step 3 repeats step 1: with the rewound repeat gone it is the first repeat, so it runs.
    record = s.execute()
    assert record["type"] == "iteration"
    assert record["iteration"] == 3
    assert [g["action"] for g in guards(s)][-1] == "warned"


# --- answers stated in prose ---------------------------------------------------------------------


def test_an_answer_stated_in_prose_gets_the_exact_final_line_once() -> None:
    model = Recorder(
        [
            fence(LOOK),
            "The answer is **cdef**.",
            "As I said, the answer is cdef.",
            fence("FINAL('cdef')"),
        ]
    )
    s = scripted_session(model)
    assert s.run().answer == "cdef"
    nudges = guards(s)
    assert [(g["rule"], g["action"], g["iteration"]) for g in nudges] == [
        ("prose_answer", "nudged", 2)
    ]
    told = model.sent[2][-1]["content"]
    assert "```repl\nFINAL('cdef')\n```" in told
    # Nudged once per question: the second prose answer gets only the plain no-code note.
    assert "FINAL('cdef')" not in model.sent[3][-1]["content"]
    assert "no ```repl code block" in model.sent[3][-1]["content"]


def test_code_that_only_prints_an_answer_is_nudged_too() -> None:
    model = Recorder([fence(LOOK), fence('print("Final answer: cdef")'), fence("FINAL('cdef')")])
    s = scripted_session(model)
    assert s.run().answer == "cdef"
    assert guards(s)[0]["rule"] == "prose_answer"
    assert "You printed an answer" in model.sent[2][-1]["content"]


def test_a_prose_answer_before_any_output_is_a_guess_and_not_nudged() -> None:
    s = scripted_session(["The answer is 42.", fence(LOOK), fence("FINAL(i)")])
    assert s.run().answer == "2"
    assert guards(s) == []


def test_prose_nudge_off() -> None:
    s = scripted_session([fence(LOOK), "The answer is cdef.", fence("FINAL(i)")], prose_nudge=False)
    s.run()
    assert guards(s) == []


@pytest.mark.parametrize(
    ("response", "blocks", "answer"),
    [
        ("Based on the output, the answer is 1,204.", [], "1,204"),
        ("Final answer: `TANGERINE-4491`", [], "TANGERINE-4491"),
        ("The secret access code for vault 7 is TANGERINE-4491.", [], "TANGERINE-4491"),
        ("", ['print("The answer is 7")'], "7"),
        ("Let me look at more of P first.", [], None),
        ("", ["print(P[:100])"], None),  # real output, not a stated answer
        ("", ['print("The answer is", n)'], None),
    ],
)
def test_what_counts_as_a_stated_answer(
    response: str, blocks: list[str], answer: str | None
) -> None:
    assert stated_answer(response, blocks) == answer


# --- a guarded recording replays, resumes and exports --------------------------------------------


def _guarded(tmp_path: Path) -> tuple[Session, str]:
    steps = [fence(LOOK), fence(LOOK), fence(LOOK), "It is at 2"]
    s = Session(
        "Where is cd?",
        "ab" + "cdef" * 10,
        config=RLM(model="root", autosave=True, trajectory_dir=str(tmp_path)),
        client=ScriptedClient(steps),
    )
    s.run()
    assert s.path is not None
    return s, "ab" + "cdef" * 10


def test_a_guarded_recording_replays_to_the_same_ending(tmp_path: Path) -> None:
    recorded, context = _guarded(tmp_path)
    replayed = replay_session(recorded.trajectory, None, context)
    result = replayed.run()
    assert (result.reason, result.answer) == ("loop", "It is at 2")
    assert [g["action"] for g in guards(replayed)] == ["warned", "stopped"]


def test_a_guarded_session_resumes_from_its_file(tmp_path: Path) -> None:
    recorded, context = _guarded(tmp_path)
    assert recorded.path is not None
    taken_up = resume(recorded.path, context, client=ScriptedClient([]), model="root")
    assert (taken_up.state, taken_up.reason, taken_up.answer) == ("done", "loop", "It is at 2")


def test_the_exported_notebook_shows_each_intervention(tmp_path: Path) -> None:
    recorded, _ = _guarded(tmp_path)
    written = export(recorded.trajectory, tmp_path / "guarded.ipynb", "ipynb")
    text = Path(written).read_text()
    assert "Loop guard: step 2 has the same code as step 1" in text
    assert "step 3 (not run) repeated step 1 again" in text


def test_the_model_repeating_a_persons_step_is_a_repeat() -> None:
    s = scripted_session([fence("print('model')"), "mine", fence(LOOK), fence(LOOK), "2"])
    s.step()
    s.propose()
    s.execute(LOOK)  # a person's step 2
    result = s.run()  # the model's step 3 repeats it, and step 4 again
    assert result.reason == "loop"
    assert [(g["iteration"], g["action"], g["repeats"]) for g in guards(s)] == [
        (3, "warned", 2),
        (4, "stopped", 2),
    ]


def test_a_recording_made_before_the_guards_replays_without_them() -> None:
    """Its settings lack loop_guard: the replay follows it to the limit it reached."""
    recorded = scripted_session([fence(LOOK)] * 4 + ["2"], loop_guard=0, max_iterations=4)
    recorded.run()
    old = recorded.trajectory.to_dict()
    for key in ("loop_guard", "prose_nudge", "protocol", "strategy"):
        del old["records"][0]["config"][key]
    from rlm_kernel import Trajectory

    result = replay_session(Trajectory.from_dict(old), None, "abcdefgh" * 50).run()
    assert (result.reason, len(result.trajectory.iterations)) == ("max_iterations", 4)
