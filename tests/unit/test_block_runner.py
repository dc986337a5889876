"""``BlockRunner`` on its own: one step's blocks run in order in one namespace, and a submission
stands only once the model could have seen the output behind it (docs/architecture.md §4)."""

from __future__ import annotations

from typing import Any

import pytest

from rlm_kernel import RLM
from rlm_kernel._events import Emitter
from rlm_kernel._final import FinalSlot
from rlm_kernel._iteration import BlockRunner, Outcome
from rlm_kernel._namespace import Helpers
from rlm_kernel._prompts import NO_CODE_NOTE
from rlm_kernel._secrets import REDACTED, Redactor
from rlm_kernel._subcalls import Budget, SubcallCache, SubcallEngine
from rlm_kernel.executors import NamespaceExecutor
from rlm_kernel.models import ScriptedClient
from rlm_kernel.testing import SECRET

CONTEXT = "the context"


class Runner:
    """A BlockRunner over a fresh namespace, with the helpers bound as a session binds them."""

    def __init__(self, **overrides: Any) -> None:
        self.config = RLM().with_overrides({"model": "root", "autosave": False, **overrides})
        self.executor = NamespaceExecutor()
        slot = FinalSlot()
        redactor = Redactor([SECRET])
        engine = SubcallEngine(
            session_id="t",
            depth=0,
            config=self.config,
            client=ScriptedClient([]),
            budget=Budget(self.config),
            cache=SubcallCache("off", self.config.resolved_cache_dir()),
            emitter=Emitter(),
            redactor=redactor,
            child_runner=None,
        )
        self.helpers = Helpers(CONTEXT, engine, slot, {})
        self.helpers.bind(self.executor.namespace)
        self.runner = BlockRunner(self.executor, self.helpers, slot, self.config, redactor)

    @property
    def ns(self) -> Any:
        return self.executor.namespace

    def run(
        self,
        *blocks: str,
        iteration: int = 2,
        edited: bool = False,
        response: str = "",
    ) -> Outcome:
        return self.runner.run(
            blocks,
            label=f"t step {iteration}",
            iteration=iteration,
            response=response,
            edited=edited,
        )


def test_blocks_run_in_order_in_one_namespace() -> None:
    r = Runner()
    out = r.run("x = 2\nprint('a', x)", "y = x * 3\nprint('b', y)", "y + 1")
    assert [res.stdout for res in out.results] == ["a 2\n", "b 6\n", ""]
    assert out.results[2].value == "7"
    assert (r.ns["x"], r.ns["y"]) == (2, 6)
    assert out.notes == []
    assert out.submission is None


def test_an_error_skips_the_later_blocks_and_says_how_many() -> None:
    r = Runner()
    out = r.run("a = 1", "raise ValueError('bad')", "b = 2", "c = 3")
    assert len(out.results) == 2
    assert out.results[1].error_type == "ValueError"
    assert "b" not in r.ns
    assert out.notes == ["Block 2 raised an error, so the 2 block(s) after it did not run."]


def test_an_error_in_the_last_block_adds_no_note() -> None:
    out = Runner().run("a = 1", "1 / 0")
    assert out.results[-1].error_type == "ZeroDivisionError"
    assert out.notes == []


def test_a_submission_in_the_first_step_is_refused() -> None:
    r = Runner()
    out = r.run("FINAL('early')", iteration=1)
    assert out.submission is None
    assert "first step" in out.notes[0]
    # the refused submission does not carry over: the next step's is judged on its own
    assert r.run("x = 1", iteration=2).submission is None
    later = r.run("FINAL('later')", iteration=2).submission
    assert later is not None
    assert later.value == "later"


def test_the_first_step_is_accepted_when_early_finals_are_allowed() -> None:
    out = Runner(refuse_early_final=False).run("FINAL('early')", iteration=1)
    assert out.submission is not None
    assert (out.submission.value, out.submission.source) == ("early", "FINAL")
    assert out.notes == []


def test_a_persons_edit_is_never_refused() -> None:
    out = Runner().run("FINAL('mine')", iteration=1, edited=True)
    assert out.submission is not None
    assert out.submission.value == "mine"


def test_a_submission_after_unseen_output_of_the_same_step_is_refused() -> None:
    out = Runner().run("print('found 3')", "FINAL('3')")
    assert out.submission is None
    assert "block 2" in out.notes[0]
    assert "not accepted" in out.notes[0]


def test_a_submission_after_silent_blocks_stands() -> None:
    out = Runner().run("n = 3", "FINAL(n)")
    assert out.submission is not None
    assert out.submission.value == "3"


def test_the_first_submission_of_a_step_is_the_one_that_counts() -> None:
    out = Runner().run("FINAL('first')", "FINAL('second')")
    assert out.submission is not None
    assert out.submission.value == "first"


def test_the_answer_dict_submits_and_a_refused_one_is_reset() -> None:
    r = Runner()
    out = r.run("answer['content'] = 'via answer'\nanswer['ready'] = True")
    assert out.submission is not None
    assert (out.submission.value, out.submission.source) == ("via answer", "answer")

    refused = r.run("answer.update(content='too early', ready=True)", iteration=1)
    assert refused.submission is None
    assert r.ns["answer"] == {"content": "", "ready": False}


def test_overwritten_helpers_are_put_back_with_one_note() -> None:
    r = Runner()
    final = r.ns["FINAL"]
    out = r.run("def FINAL(x):\n    return x\nP = 'mine'")
    assert r.ns["FINAL"] is final
    assert r.ns["P"] == CONTEXT
    assert len(out.notes) == 1
    named, rest = out.notes[0].split(" are reserved helper name(s)")
    assert set(named.split(", ")) == {"FINAL", "P"}
    assert "put back" in rest


@pytest.mark.parametrize(
    ("response", "value"),
    [("The length is known.\nFINAL(400)", "400"), ('FINAL("four hundred")', "four hundred")],
)
def test_a_prose_final_in_a_response_without_code_submits(response: str, value: str) -> None:
    out = Runner().run(response=response)
    assert out.submission is not None
    assert (out.submission.value, out.submission.source) == (value, "prose")
    assert out.results == []


def test_a_prose_final_var_submits_the_variable_or_says_it_is_missing() -> None:
    r = Runner()
    r.ns["total"] = 41 + 1
    out = r.run(response="FINAL_VAR(total)")
    assert out.submission is not None
    assert (out.submission.value, out.submission.source) == ("42", "prose")

    missing = r.run(response="FINAL_VAR(nothing)")
    assert missing.submission is None
    assert "'nothing' not found" in missing.notes[0]


def test_a_response_without_code_or_final_is_told_so() -> None:
    out = Runner().run(response="I think it is 400.")
    assert out.submission is None
    assert out.notes == [NO_CODE_NOTE]


def test_a_prose_final_in_the_first_step_is_refused() -> None:
    out = Runner().run(response="FINAL(400)", iteration=1)
    assert out.submission is None
    assert "first step" in out.notes[0]


def test_secrets_are_scrubbed_from_output_errors_values_and_answers() -> None:
    r = Runner()
    r.ns["key"] = SECRET
    out = r.run("print(key)", "key", "raise RuntimeError(key)")
    assert out.results[0].stdout == f"{REDACTED}\n"
    assert out.results[1].value == repr(REDACTED)
    assert out.results[2].error is not None
    assert SECRET not in out.results[2].error
    assert REDACTED in out.results[2].error

    answered = r.run("FINAL('the key is ' + key)")
    assert answered.submission is not None
    assert answered.submission.value == f"the key is {REDACTED}"


# A real interrupt: SIGINT delivered to the process, as the kernel's interrupt and Ctrl-C do.
SIGINT_SELF = "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)"


def test_an_interrupt_stops_the_step_at_its_block() -> None:
    r = Runner()
    out = r.run("a = 1", SIGINT_SELF, "b = 2")
    assert out.interrupted
    assert len(out.results) == 2
    assert "b" not in r.ns
    assert out.notes == []


def test_a_keyboard_interrupt_the_code_raises_is_its_error_not_an_interrupt() -> None:
    r = Runner()
    out = r.run("a = 1", "raise KeyboardInterrupt('mine')", "b = 2")
    assert not out.interrupted
    assert out.results[1].error_type == "KeyboardInterrupt"
    assert "raise KeyboardInterrupt('mine')" in (out.results[1].error or "")
    assert out.notes == ["Block 2 raised an error, so the 1 block(s) after it did not run."]
