"""Typed answers (``output=``, issue 16 item 1) end to end against the loopback ScriptedServer: the
model is told the shape, a submission is validated, a failure goes back with the validator's message
and is recorded, the repair limit ends the run as ``invalid_answer``, and a typed run replays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from pydantic import BaseModel
from typing_extensions import TypedDict

import rlm_kernel
from rlm_kernel import RLM, Session, Trajectory
from rlm_kernel._replay import replay_session
from rlm_kernel.testing import (
    Fault,
    HeadlessFrontend,
    Kernel,
    ScriptedServer,
    configure,
    fence,
    settings,
)
from rlm_kernel.testing import run_cli as cli
from rlm_kernel.testing._server import ChatRequest


class Incident(BaseModel):
    service: str
    cause: str
    minutes: int


class Person(TypedDict):
    name: str
    year: int


CONTEXT = "2024-03-01 checkout down 42 minutes: expired TLS certificate\n" * 20
LOOK = fence("print(P[:80])")


def typed_run(server: ScriptedServer, output: object, **overrides: Any) -> rlm_kernel.Result:
    return rlm_kernel.run("What broke?", CONTEXT, output=output, **settings(server, **overrides))


def test_the_model_is_told_the_shape_in_its_system_prompt(
    serve: Callable[..., ScriptedServer],
) -> None:
    answer = 'FINAL({"service": "checkout", "cause": "expired TLS certificate", "minutes": 42})'
    server = serve({"root": [LOOK, fence(answer)]})
    result = typed_run(server, Incident)
    system = server.requests[0].messages[0]["content"]
    assert "The final answer must be a value of type Incident, matching this JSON schema:" in system
    assert '"minutes":{"type":"integer"}' in system
    assert "SUBMIT(field=..., ...)" in system
    assert result.ok
    assert result.value == Incident(service="checkout", cause="expired TLS certificate", minutes=42)
    assert json.loads(result.answer or "") == result.value.model_dump()
    session_record = result.trajectory.session
    assert session_record["output"]["kind"] == "model"
    assert session_record["output"]["schema"] == Incident.model_json_schema()
    final = result.trajectory.records[-1]
    assert final["type"] == "final"
    assert final["value"] == {
        "service": "checkout",
        "cause": "expired TLS certificate",
        "minutes": 42,
    }


def test_a_failed_validation_goes_back_to_the_model_and_its_repair_is_accepted(
    serve: Callable[..., ScriptedServer],
) -> None:
    bad = 'SUBMIT(service="checkout", cause="expired TLS certificate", minutes="about 40")'
    good = 'SUBMIT(service="checkout", cause="expired TLS certificate", minutes=42)'
    server = serve({"root": [LOOK, fence(bad), fence(good)]})
    result = typed_run(server, Incident)
    assert result.ok
    assert result.value.minutes == 42
    # The third request carries the validator's message as the observation of step 2.
    told = server.requests[2].messages[-1]["content"]
    assert "Your answer does not match the expected shape (Incident)" in told
    assert (
        "minutes\n  Input should be a valid integer, unable to parse string as an integer" in told
    )
    assert "2 more attempts to submit a valid answer" in told
    steps = result.trajectory.iterations
    assert "invalid" not in steps[0]
    assert steps[1]["final"] is None
    assert steps[1]["invalid"]["source"] == "SUBMIT"
    assert "valid integer" in steps[1]["invalid"]["message"]
    assert "invalid" not in steps[2]
    assert steps[2]["final"] is not None


def test_the_repair_limit_ends_the_run_as_invalid_answer_with_the_last_candidate(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(
        {"root": [LOOK, fence("FINAL('checkout, cert')"), fence("FINAL('still prose')")]}
    )
    result = typed_run(server, Incident, output_repairs=1)
    assert result.reason == "invalid_answer"
    assert not result.ok
    assert result.value is None
    assert result.answer == "still prose"  # the last candidate, kept as text
    assert "did not match Incident" in result.message
    assert "RLM.output_repairs" in result.message
    assert len(server.requests) == 3  # no further call once the limit is reached
    told = server.requests[2].messages[-1]["content"]
    assert "1 more attempt to submit a valid answer" in told
    assert "The answer was text, and not JSON either" in told
    final = result.trajectory.records[-1]
    assert (final["reason"], final["answer"], final["value"]) == (
        "invalid_answer",
        "still prose",
        None,
    )
    assert [bool(it.get("invalid")) for it in result.trajectory.iterations] == [False, True, True]


@pytest.mark.parametrize(
    ("output", "submit", "value", "answer"),
    [
        (int, "FINAL(len(P) // len(P) * 42)", 42, "42"),
        (list[str], "FINAL_VAR('words')", ["checkout", "TLS"], '["checkout", "TLS"]'),
        (
            dict[str, float],
            'answer["content"] = {"checkout": 42}; answer["ready"] = True',
            {"checkout": 42.0},
            '{"checkout": 42.0}',
        ),
        (
            Person,
            "SUBMIT(name='Ada', year='1815')",
            {"name": "Ada", "year": 1815},
            '{"name": "Ada", "year": 1815}',
        ),
        (
            {
                "type": "object",
                "properties": {"minutes": {"type": "integer"}},
                "required": ["minutes"],
            },
            "FINAL('{\"minutes\": 42}')",
            {"minutes": 42},
            '{"minutes": 42}',
        ),
        (str, "FINAL('checkout')", "checkout", "checkout"),
    ],
    ids=["int", "list", "dict", "typeddict", "json-schema", "str"],
)
def test_each_kind_of_spec_through_run(
    serve: Callable[..., ScriptedServer], output: object, submit: str, value: Any, answer: str
) -> None:
    first = fence("words = ['checkout', 'TLS']\nprint(P[:40])")
    server = serve({"root": [first, fence(submit)]})
    result = typed_run(server, output)
    assert (result.reason, result.value, result.answer) == ("final", value, answer)


def test_an_answer_at_a_limit_is_typed_when_it_matches(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [LOOK, "[3, 4]"]})
    result = typed_run(server, list[int], max_iterations=1)
    assert result.reason == "max_iterations"
    assert (result.value, result.answer) == ([3, 4], "[3, 4]")
    asked = server.requests[-1].messages[-1]["content"]
    assert "Reply with only a JSON value of type list[int]" in asked
    # Baseline mode's one direct call is asked for the shape too.
    server = serve({"root": ['{"minutes": 42}']})
    result = typed_run(server, dict[str, int], mode="baseline")
    assert (result.reason, result.value) == ("baseline", {"minutes": 42})
    assert "JSON value of type dict[str, int]" in server.requests[0].messages[0]["content"]


def test_an_unusable_spec_is_a_config_error_before_any_call(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [LOOK]})
    with pytest.raises(rlm_kernel.ConfigError, match="is not a type or a JSON schema"):
        typed_run(server, "Incident")
    assert server.requests == []


def test_a_rewind_forgets_failures_of_the_steps_it_supersedes(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [LOOK, fence("FINAL('x')")]})
    session = Session(
        "q", CONTEXT, config=RLM().with_overrides(settings(server, output_repairs=0)), output=int
    )
    session.step()
    session.step()  # no repair allowed: the run ends
    assert session.reason == "invalid_answer"
    session.rewind(2)
    session.execute("FINAL('7')")  # a person's edit is validated too
    assert (session.reason, session.value, session.answer) == ("final", 7, "7")


def test_a_typed_run_replays_offline(serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    bad = 'FINAL({"service": "checkout", "cause": "cert"})'
    good = 'FINAL({"service": "checkout", "cause": "cert", "minutes": 42})'
    server = serve({"root": [LOOK, fence(bad), fence(good)]})
    recorded = typed_run(server, Incident)
    path = tmp_path / "typed.jsonl"
    recorded.trajectory.save(path)
    server.stop()
    recording = Trajectory.load(path)
    # Without the class: the recorded schema validates, the value is plain JSON data.
    plain = replay_session(recording, None, CONTEXT).run()
    assert (plain.reason, plain.answer) == ("final", recorded.answer)
    assert plain.value == {"service": "checkout", "cause": "cert", "minutes": 42}
    # The recorded schema judges by jsonschema, so its words differ from pydantic's; the step fails.
    assert (
        "'minutes' is a required property" in plain.trajectory.iterations[1]["invalid"]["message"]
    )
    # With it: the value is an instance again.
    again = replay_session(recording, None, CONTEXT, output=Incident).run()
    assert again.value == recorded.value
    assert again.trajectory.iterations[1]["invalid"] == recorded.trajectory.iterations[1]["invalid"]


def test_an_untyped_trajectory_loads_and_replays_as_before(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve({"root": [LOOK, fence("FINAL('checkout')")]})
    result = rlm_kernel.run("What broke?", CONTEXT, **settings(server))
    records = result.trajectory.records
    assert "output" not in records[0]
    assert all("invalid" not in r for r in records if r["type"] == "iteration")
    assert "value" not in records[-1]
    assert result.value is None
    path = tmp_path / "plain.json"
    result.trajectory.save(path)
    server.stop()
    again = replay_session(Trajectory.load(path), None, CONTEXT).run()
    assert (again.answer, again.value) == ("checkout", None)


def test_the_cli_validates_against_a_schema_file_and_prints_json(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    (isolated_env / "ctx.txt").write_text(CONTEXT)
    schema = {
        "type": "object",
        "properties": {"service": {"type": "string"}, "minutes": {"type": "integer"}},
        "required": ["service", "minutes"],
    }
    (isolated_env / "incident.json").write_text(json.dumps(schema))
    steps = [
        LOOK,
        fence("SUBMIT(service='checkout')"),
        fence("SUBMIT(service='checkout', minutes=42)"),
    ]
    server = serve({"root": steps})
    done = cli(
        "run", "What broke?", "ctx.txt", "--model", "root", "--base-url", server.base_url,
        "--output", "incident.json", "--export", "out.json", cwd=isolated_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"service": "checkout", "minutes": 42}
    assert "'minutes' is a required property" in server.requests[2].messages[-1]["content"]
    exported = Trajectory.load(isolated_env / "out.json")
    assert exported.session["output"]["schema"] == schema
    # The repair limit: no answer (exit 1), the reason said, the last candidate printed.
    server = serve({"root": [LOOK, fence("SUBMIT(service='checkout')")]})
    done = cli(
        "run", "What broke?", "ctx.txt", "--model", "root", "--base-url", server.base_url,
        "--output", "incident.json", "--set", "output_repairs=0", cwd=isolated_env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "invalid_answer" in done.stderr
    assert "did not match the JSON schema" in done.stderr
    assert done.stdout.strip() == "checkout"
    # A schema file that is not there, or not JSON, is a usage problem of its own (exit 3).
    (isolated_env / "bad.json").write_text("{not json")
    for name, said in (
        ("missing.json", "Cannot read the --output schema"),
        ("bad.json", "is not JSON"),
    ):
        done = cli(
            "run", "q", "ctx.txt", "--model", "root", "--base-url", server.base_url,
            "--output", name, cwd=isolated_env,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr
        assert said in done.stderr


def test_rlm_output_in_a_real_kernel_shows_the_object_and_keeps_it(
    kernel: Kernel, serve: Callable[..., ScriptedServer]
) -> None:
    model = (
        "from pydantic import BaseModel\n"
        "class Incident(BaseModel):\n    service: str\n    minutes: int\n"
        "ctx = " + repr(CONTEXT)
    )
    steps = [
        LOOK,
        fence("FINAL({'service': 'checkout'})"),
        fence("SUBMIT(service='checkout', minutes=42)"),
    ]
    server = serve({"root": steps})
    configure(kernel, server)
    assert not kernel.run(model).errors
    run = kernel.run('%rlm "What broke?" ctx --output Incident')
    assert not run.errors, run.errors
    assert "minutes\n  Field required" in run.text  # the repair: what the model was told
    assert '{"service": "checkout", "minutes": 42}' in run.text  # the answer block: its text
    plain = [
        m["content"]["data"].get("text/plain", "")
        for m in run.messages
        if m["msg_type"] == "display_data" and "text/html" not in m["content"]["data"]
    ]
    assert "Incident(service='checkout', minutes=42)" in plain  # and the object itself
    after = kernel.run(
        "import rlm_kernel\nv = rlm_kernel.current_session().value\nprint(type(v).__name__, v.minutes)"
    )
    assert after.stdout.strip() == "Incident 42"
    # A name the notebook lacks is a one-line usage error, with a suggestion.
    missing = kernel.run('%rlm "q" ctx --output Incidnet')
    assert "no class, type or schema named 'Incidnet'" in missing.stderr
    assert "Did you mean 'Incident'?" in missing.stderr


def test_exports_carry_the_spec_and_the_value(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    bad = 'FINAL({"service": "checkout", "cause": "cert"})'
    good = 'FINAL({"service": "checkout", "cause": "cert", "minutes": 42})'
    server = serve({"root": [LOOK, fence(bad), fence(good)]})
    result = typed_run(server, Incident)
    value = {"service": "checkout", "cause": "cert", "minutes": 42}
    notebook = json.loads(result.trajectory.export(tmp_path / "s.ipynb").read_text())
    meta = notebook["metadata"]["rlm"]
    assert (meta["output"]["name"], meta["value"]) == ("Incident", value)
    cells = {c["metadata"]["rlm"]["role"]: c for c in notebook["cells"]}
    answer = "".join(cells["answer"]["source"])
    assert "<pre>{\n  &quot;service&quot;: &quot;checkout&quot;," in answer
    step2 = "".join(
        "".join(c["source"])
        for c in notebook["cells"]
        if c["metadata"]["rlm"]
        == {
            "session": result.trajectory.session["session_id"],
            "iteration": 2,
            "role": "step-notes",
        }
    )
    assert "did not match" in step2
    assert "Field required" in step2
    sft = json.loads(result.trajectory.export(tmp_path / "s.sft.jsonl").read_text())
    assert (sft["metadata"]["output"]["kind"], sft["metadata"]["value"]) == ("model", value)
    assert json.loads(sft["metadata"]["answer"]) == value
    native = Trajectory.load(result.trajectory.export(tmp_path / "s.json"))
    assert native.final is not None
    assert native.final["value"] == value
    assert native.iterations[1]["invalid"]["source"] == "FINAL"
    meta, *entries = [
        json.loads(line)
        for line in result.trajectory.export(tmp_path / "s.rlm.jsonl").read_text().splitlines()
    ]
    assert meta["environment_kwargs"]["output"]["name"] == "Incident"
    assert "'minutes': 42" in entries[-1]["final_answer"]  # as submitted, the reference's way


def test_llm_query_output_uses_structured_output_and_returns_the_object(
    serve: Callable[..., ScriptedServer],
) -> None:
    code = (
        "from pydantic import BaseModel\n"
        "class Incident(BaseModel):\n    service: str\n    cause: str\n    minutes: int\n"
        "got = llm_query('Which incident is in: ' + P[:80], output=Incident)\n"
        "print(type(got).__name__, got.minutes)"
    )
    sub = ['{"service": "checkout", "cause": "expired TLS certificate", "minutes": 42}']
    server = serve({"root": [fence(code), fence("FINAL(got.service)")], "sub": sub})
    result = typed_run(server, str)
    assert result.trajectory.iterations[0]["output"] == "Incident 42"
    asked = next(r for r in server.requests if r.model == "sub")
    fmt = asked.params["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Incident"
    assert fmt["json_schema"]["schema"] == Incident.model_json_schema()
    assert "Reply with only a JSON value of type Incident" in asked.prompt
    call = result.trajectory.iterations[0]["subcalls"][0]
    assert call["output"] == "Incident"
    # A plain type is wrapped as {"value": ...} for the endpoint, and unwrapped again.
    code = "n = llm_query('How many minutes? ' + P[:80], output=int)\nprint(n + 1)"
    server = serve({"root": [fence(code), fence("FINAL(n)")], "sub": ['{"value": 42}']})
    result = typed_run(server, int)
    assert result.trajectory.iterations[0]["output"] == "43"
    asked = next(r for r in server.requests if r.model == "sub")
    wrapped = asked.params["response_format"]["json_schema"]["schema"]
    assert wrapped["properties"]["value"] == {"type": "integer"}


def test_llm_query_output_asks_once_more_with_the_validators_message(
    serve: Callable[..., ScriptedServer],
) -> None:
    code = "got = llm_query('List the services in: ' + P[:80], output=list[str])\nprint(got)"
    sub = ["checkout, probably", '{"value": ["checkout"]}']
    server = serve({"root": [fence(code), fence("FINAL(got)")], "sub": sub})
    result = typed_run(server, list[str])
    assert result.trajectory.iterations[0]["output"] == "['checkout']"
    second = [r for r in server.requests if r.model == "sub"][1]
    assert "Your previous reply was:\ncheckout, probably" in second.prompt
    assert "Input should be a valid list" in second.prompt
    assert len(result.trajectory.iterations[0]["subcalls"]) == 2
    # Twice wrong: an Error string the code can read, never an exception.
    code = "got = llm_query('Minutes? ' + P[:80], output=int)\nprint(got)"
    server = serve({"root": [fence(code), fence("FINAL(1)")], "sub": ["many", "lots"]})
    result = typed_run(server, int)
    printed = result.trajectory.iterations[0]["output"]
    assert printed.startswith("Error: the sub-model's answer did not match int, asked twice:")
    # A spec the code gets wrong is an Error string too.
    code = "got = llm_query('Minutes?', output='int')\nprint(got)"
    server = serve({"root": [fence(code), fence("FINAL(1)")]})
    result = typed_run(server, int)
    assert "is not a type or a JSON schema" in result.trajectory.iterations[0]["output"]


def test_typed_answers_in_the_monty_sandbox(serve: Callable[..., ScriptedServer]) -> None:
    code = "n = llm_query('Minutes? ' + P[:60], output={'type': 'integer'})\nprint(n + 1)"
    steps = [fence(code), fence("FINAL({'minutes': 'many'})"), fence("SUBMIT(minutes=n)")]
    server = serve({"root": steps, "sub": ['{"value": 42}']})
    result = typed_run(server, dict[str, int], executor="monty")
    assert result.trajectory.iterations[0]["output"] == "43"
    assert "valid integer" in result.trajectory.iterations[1]["invalid"]["message"]
    assert (result.reason, result.value) == ("final", {"minutes": 42})


def test_a_typed_sub_call_replays_offline(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    code = "got = llm_query('Services in: ' + P[:80], output=list[str])\nprint(got)"
    sub = ["checkout", '{"value": ["checkout"]}']  # the second ask, after the validator's message
    server = serve({"root": [fence(code), fence("FINAL(got)")], "sub": sub})
    recorded = typed_run(server, list[str])
    path = recorded.trajectory.save(tmp_path / "sub.json")
    server.stop()
    again = replay_session(Trajectory.load(path), None, CONTEXT).run()
    assert again.trajectory.iterations[0]["output"] == "['checkout']"
    assert (again.reason, again.value) == ("final", ["checkout"])


def test_resume_takes_a_typed_session_up_again(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve({"root": [LOOK, fence("FINAL('nope')")]})
    session = Session(
        "What broke?", CONTEXT, config=RLM().with_overrides(settings(server)), output=int
    )
    session.step()
    session.step()  # refused: the model is told, the session goes on
    assert session.trajectory.iterations[1]["invalid"]["value"] == "nope"
    path = session.path
    assert path is not None
    server.stop()
    live = serve({"root": [fence("FINAL(42)")]})
    resumed = rlm_kernel.resume(path, CONTEXT, config=RLM().with_overrides(settings(live)))
    assert resumed.output is not None
    assert resumed.output.name == "int"
    result = resumed.run()
    assert (result.reason, result.value, result.answer) == ("final", 42, "42")
    # The resumed session goes on from the recorded refusal: the model read it before step 3.
    assert "does not match the expected shape (int)" in live.requests[0].messages[-1]["content"]


def test_resume_with_the_class_gives_its_instance(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve({"root": [LOOK]})
    session = Session(
        "What broke?", CONTEXT, config=RLM().with_overrides(settings(server)), output=Incident
    )
    session.step()
    path = session.path
    assert path is not None
    server.stop()
    answer = 'SUBMIT(service="checkout", cause="expired TLS certificate", minutes=42)'
    live = serve({"root": [fence(answer)]})
    config = RLM().with_overrides(settings(live))
    result = rlm_kernel.resume(path, CONTEXT, config=config, output=Incident).run()
    assert result.value == Incident(service="checkout", cause="expired TLS certificate", minutes=42)
    # The session record is the one the file began with: the class matches the recorded schema.
    assert Trajectory.load(path).session["output"]["schema"] == Incident.model_json_schema()


def test_cells_mode_shows_a_typed_answer_as_json_and_as_its_object(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    steps = [LOOK, fence("FINAL({'minutes': 'many'})"), fence("FINAL({'minutes': 42})")]
    server = serve({"root": steps})
    setup = "\n".join(f"%config RLM.{k} = {v!r}" for k, v in settings(server).items())
    model = "from typing_extensions import TypedDict\nclass Minutes(TypedDict):\n    minutes: int"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(setup),
            nbformat.v4.new_code_cell(f"{model}\nctx = {CONTEXT[:200]!r}"),
            nbformat.v4.new_code_cell('%rlm "How long?" ctx --output Minutes'),
        ]
    )
    client = NotebookClient(
        nb, kernel_name="rlm", timeout=120, resources={"metadata": {"path": str(env)}}
    )
    HeadlessFrontend(client)
    with client.setup_kernel():
        index = 0
        while index < len(nb.cells):  # the cells the kernel inserts run too
            client.execute_cell(nb.cells[index], index)
            index += 1
    roles = [c.metadata.get("rlm", {}).get("role") for c in nb.cells]
    assert roles.count("step") == 3
    step2 = [c for c in nb.cells if c.metadata.get("rlm", {}).get("role") == "step"][1]
    shown = "\n".join(o.get("data", {}).get("text/html", "") for o in step2.outputs)
    assert "does not match the expected shape (Minutes)" in shown  # told the model, in its cell
    [answer] = [c for c in nb.cells if c.metadata.get("rlm", {}).get("role") == "answer"]
    assert '```json\n{"minutes": 42}\n```' in answer.source
    last = [c for c in nb.cells if c.metadata.get("rlm", {}).get("role") == "step"][2]
    plain = [o.get("data", {}).get("text/plain") for o in last.outputs]
    assert "{'minutes': 42}" in plain  # the object itself, in the step's cell


def test_an_endpoint_without_structured_output_is_asked_without_it(
    serve: Callable[..., ScriptedServer],
) -> None:
    def sub(request: ChatRequest) -> str | Fault:
        if "response_format" in request.params:  # a server that has no structured output
            return Fault.status_code(400)
        return '{"value": 42}'

    code = (
        "a = llm_query('Minutes? ' + P[:60], output=int)\n"
        "b = llm_query('Again? ' + P[:60], output=int)\nprint(a + b)"
    )
    server = serve({"root": [fence(code), fence("FINAL(a)")], "sub": sub})
    result = typed_run(server, int)
    assert result.trajectory.iterations[0]["output"] == "84"
    asked = [bool(r.params.get("response_format")) for r in server.requests if r.model == "sub"]
    assert asked == [True, False, False]  # refused once, then never sent again in the session


def test_arun_takes_output_too(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [LOOK, fence("FINAL('42')")]})

    async def main() -> rlm_kernel.Result:
        return await rlm_kernel.arun("q", CONTEXT, output=int, **settings(server))

    result = asyncio.run(main())
    assert (result.reason, result.value) == ("final", 42)
