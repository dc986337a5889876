"""The scripted server, exercised through the real openai SDK over real loopback HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import openai
import pytest

from rlm_kernel.testing import ChatRequest, Fault, Reply, ScriptedServer

if TYPE_CHECKING:
    from collections.abc import Iterator

USER = [{"role": "user", "content": "hi"}]


@contextmanager
def serve(script: Any, **kwargs: Any) -> Iterator[tuple[ScriptedServer, openai.OpenAI]]:
    client_options = {"max_retries": 0, **kwargs.pop("client", {})}
    with (
        ScriptedServer(script, **kwargs) as server,
        openai.OpenAI(base_url=server.base_url, api_key="test-key", **client_options) as client,
    ):
        yield server, client


def address(server: ScriptedServer) -> tuple[str, int]:
    """(host, port) of the server, for raw HTTP clients."""
    host, _, port = server.base_url.split("//")[1].split("/")[0].partition(":")
    return host, int(port)


def ask(client: openai.OpenAI, model: str = "m", content: str = "hi", **kwargs: Any) -> Any:
    messages: Any = [{"role": "user", "content": content}]
    return client.chat.completions.create(model=model, messages=messages, **kwargs)


def test_list_script_is_consumed_in_order() -> None:
    with serve(["one", "two", Reply("three")]) as (server, client):
        assert [ask(client).choices[0].message.content for _ in range(3)] == ["one", "two", "three"]
        assert len(server.requests) == 3


def test_exhausted_list_answers_500_saying_it_ran_out() -> None:
    with serve(["only"]) as (_, client):
        ask(client)
        with pytest.raises(openai.InternalServerError, match="ran out after 1 responses") as info:
            ask(client, model="gpt-x")
        assert "'gpt-x'" in str(info.value)


def test_dict_script_routes_by_model_with_star_fallback() -> None:
    script = {"big": ["big answer"], "small": lambda r: "small answer", "*": ["fallback"]}
    with serve(script) as (_, client):
        assert ask(client, model="small").choices[0].message.content == "small answer"
        assert ask(client, model="big").choices[0].message.content == "big answer"
        assert ask(client, model="other").choices[0].message.content == "fallback"
        assert ask(client, model="small").choices[0].message.content == "small answer"
        assert {m.id for m in client.models.list()} == {"big", "small"}


def test_unknown_model_without_star_is_a_404_in_openai_error_shape() -> None:
    with serve({"known": ["x"]}) as (_, client):
        with pytest.raises(openai.NotFoundError) as info:
            ask(client, model="unknown")
        assert info.value.code == "model_not_found"
        assert "unknown" in info.value.message


def test_models_endpoint_for_a_plain_script() -> None:
    with serve(["x"]) as (_, client):
        assert [m.id for m in client.models.list()] == ["scripted"]


def test_callable_sees_the_messages() -> None:
    seen: list[ChatRequest] = []

    def responder(request: ChatRequest) -> str:
        seen.append(request)
        return f"echo: {request.prompt}"

    messages: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}],
        },
    ]
    with serve(responder) as (_, client):
        out = client.chat.completions.create(model="m", messages=messages, temperature=0.5)
    assert out.choices[0].message.content == "echo: second"
    (request,) = seen
    assert request.messages == messages
    assert request.prompt_chars == len("be brief") + len("first") + len("ok") + len("second")
    assert request.params == {"temperature": 0.5}
    assert request.stream is False


def test_a_raising_responder_becomes_a_readable_500() -> None:
    def responder(request: ChatRequest) -> str:
        raise KeyError("boom")

    with serve(responder) as (_, client), pytest.raises(openai.InternalServerError, match="boom"):
        ask(client)


def test_streaming_without_usage() -> None:
    text = "The quick brown fox jumps over the lazy dog, " * 3
    with serve([text]) as (server, client):
        chunks = list(ask(client, stream=True))
    assert len(chunks) > 4  # role chunk, several content pieces, finish chunk
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert server.requests[0].stream is True


def test_streaming_with_usage_sends_a_final_usage_chunk() -> None:
    with serve([Reply("streamed text here", completion_tokens=7, cost=0.25)]) as (_, client):
        stream = ask(client, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "streamed text here"
    )
    *_, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 7
    assert (last.usage.model_extra or {})["cost"] == 0.25
    assert all(c.usage is None for c in chunks[:-1])


def test_latency_is_applied_and_can_be_per_model() -> None:
    with serve(lambda r: "x", latency={"slow": 0.3, "*": 0.0}) as (server, client):
        start = time.perf_counter()
        ask(client, model="slow")
        assert time.perf_counter() - start >= 0.3
        start = time.perf_counter()
        ask(client, model="fast")
        assert time.perf_counter() - start < 0.25
        server.latency = 0.2
        start = time.perf_counter()
        ask(client, model="fast")
        assert time.perf_counter() - start >= 0.2


def test_timings_record_the_latency_the_server_applied() -> None:
    with serve(lambda r: "x", latency={"slow": 0.1, "*": 0.0}) as (server, client):
        start = time.perf_counter()
        ask(client, model="slow")
        ask(client, model="fast")
        elapsed = time.perf_counter() - start
    slow, fast = server.timings
    assert (slow.model, slow.latency, fast.model, fast.latency) == ("slow", 0.1, "fast", 0.0)
    # Counted from the moment the request was in, so the wait covers parsing and rendering.
    assert slow.applied >= 0.1
    assert start < slow.received < slow.answered <= fast.received < fast.answered
    assert slow.applied + fast.applied < elapsed


def test_concurrent_requests_are_served_concurrently() -> None:
    with (
        serve(lambda r: f"answer {r.prompt}", latency=0.2) as (server, client),
        ThreadPoolExecutor(max_workers=64) as pool,
    ):
        ask(client)  # warm up the client so the timing measures the server only
        start = time.perf_counter()
        answers = list(pool.map(lambda i: ask(client, content=str(i)), range(64)))
        elapsed = time.perf_counter() - start
    # One at a time would take 64 × 0.2 = 12.8 s; the bound leaves room for a loaded machine.
    assert elapsed < 2.0
    assert [a.choices[0].message.content for a in answers] == [f"answer {i}" for i in range(64)]
    assert len(server.requests) == 65


def test_injected_429_raises_rate_limit_error_with_retry_after() -> None:
    with serve(lambda r: "fine") as (server, client):
        server.inject(Fault.status_code(429, retry_after=0))
        with pytest.raises(openai.RateLimitError) as info:
            ask(client)
        assert info.value.response.headers["retry-after"] == "0"
        assert info.value.body == {
            "message": "scripted server: injected HTTP 429",
            "type": "rate_limit_error",
            "code": "injected_fault",
        }
        assert ask(client).choices[0].message.content == "fine"  # the fault was used up


def test_sdk_retry_gets_past_a_single_injected_429() -> None:
    with serve(["after retry"], client={"max_retries": 1}) as (server, client):
        server.inject(Fault.status_code(429, retry_after=0.01), times=1)
        assert ask(client).choices[0].message.content == "after retry"
        assert len(server.requests) == 2  # the fault did not consume the scripted answer


def test_injected_500_raises_internal_server_error() -> None:
    with serve(["x"]) as (server, client):
        server.inject(Fault.status_code(500))
        with pytest.raises(openai.InternalServerError):
            ask(client)


def test_malformed_json_surfaces_as_a_json_decode_error() -> None:
    # The SDK does not wrap a body that claims to be JSON but is not: json.JSONDecodeError escapes.
    with serve(["x"]) as (server, client):
        server.inject(Fault.malformed(), times=2)
        with pytest.raises(json.JSONDecodeError):
            ask(client)
        with pytest.raises(json.JSONDecodeError):
            list(ask(client, stream=True))


def test_empty_choices() -> None:
    with serve(["x"]) as (server, client):
        server.inject(Fault.empty_choices())
        completion = ask(client)
        assert completion.choices == []
        assert completion.usage is not None


def test_timeout_fault_makes_the_client_time_out() -> None:
    with serve(["x"], client={"timeout": 0.2}) as (server, client):
        server.inject(Fault.timeout(5.0))
        start = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            ask(client)
        assert time.perf_counter() - start < 2.0
        assert ask(client).choices[0].message.content == "x"  # the hung request took no script item


def test_disconnect_fault_raises_connection_error() -> None:
    with serve(["x"]) as (server, client):
        server.inject(Fault.disconnect())
        with pytest.raises(openai.APIConnectionError):
            ask(client)
        assert ask(client).choices[0].message.content == "x"


def test_faults_in_a_list_script_are_answered_in_turn() -> None:
    with serve([Fault.status_code(503), "ok"]) as (_, client):
        with pytest.raises(openai.InternalServerError):
            ask(client)
        assert ask(client).choices[0].message.content == "ok"


def test_injected_faults_match_model_and_are_fifo() -> None:
    with serve({"*": lambda r: "ok"}) as (server, client):
        server.inject(Fault.status_code(500), model="a")
        server.inject(Fault.status_code(429), times=2)
        with pytest.raises(openai.RateLimitError):
            ask(client, model="b")  # the model-a fault is skipped, not consumed
        with pytest.raises(openai.InternalServerError):
            ask(client, model="a")
        with pytest.raises(openai.RateLimitError):
            ask(client, model="a")
        assert ask(client, model="a").choices[0].message.content == "ok"
        server.inject(Fault.status_code(500), times=5)
        server.reset()
        assert server.requests == []
        assert ask(client).choices[0].message.content == "ok"


def test_usage_is_estimated_or_reported_as_given() -> None:
    script = [Reply("x" * 9), Reply("", prompt_tokens=100, completion_tokens=3, cached_tokens=40)]
    script.append(Reply("priced", cost=0.0012, finish_reason="length"))
    with serve(script) as (_, client):
        estimated = ask(client, content="y" * 10).usage
        assert estimated is not None
        assert (estimated.prompt_tokens, estimated.completion_tokens) == (
            3,
            3,
        )  # ceil(10/4), ceil(9/4)
        assert estimated.total_tokens == 6
        assert estimated.prompt_tokens_details is not None
        assert estimated.prompt_tokens_details.cached_tokens == 0
        assert "cost" not in (estimated.model_extra or {})

        given = ask(client).usage
        assert given is not None
        assert (given.prompt_tokens, given.completion_tokens, given.total_tokens) == (100, 3, 103)
        assert given.prompt_tokens_details is not None
        assert given.prompt_tokens_details.cached_tokens == 40

        priced = ask(client, content="")
        assert priced.choices[0].finish_reason == "length"
        assert priced.usage is not None
        assert priced.usage.prompt_tokens == 1  # never below one, even for an empty prompt
        assert (priced.usage.model_extra or {})["cost"] == 0.0012


def test_requests_record_headers_and_params() -> None:
    with serve(["x"]) as (server, client):
        ask(client, model="m1", max_tokens=5, extra_headers={"X-Trace": "t1"})
    (request,) = server.requests
    assert request.model == "m1"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.headers["x-trace"] == "t1"
    assert request.params == {"max_tokens": 5}
    assert request.messages == USER


def test_keep_alive_reuses_one_connection() -> None:
    with ScriptedServer(lambda r: "x") as server:
        host, port = address(server)
        conn = http.client.HTTPConnection(host, port)
        body = json.dumps({"model": "m", "messages": USER})
        conn.request("POST", "/v1/chat/completions", body)
        conn.getresponse().read()
        sock = conn.sock
        for _ in range(20):
            conn.request("POST", "/v1/chat/completions", body)
            response = conn.getresponse()
            assert json.loads(response.read())["choices"][0]["message"]["content"] == "x"
        assert conn.sock is sock
        conn.close()


def test_chunked_bodies_http_1_0_and_connection_close() -> None:
    with ScriptedServer(lambda r: f"got {r.prompt}") as server:
        host, port = address(server)
        body = json.dumps({"model": "m", "messages": USER}).encode()
        conn = http.client.HTTPConnection(host, port)
        pieces = iter([body[:10], body[10:]])
        conn.request("POST", "/v1/chat/completions", pieces, encode_chunked=True)
        response = conn.getresponse()
        assert json.loads(response.read())["choices"][0]["message"]["content"] == "got hi"
        conn.request("POST", "/v1/chat/completions", body, {"Connection": "close"})
        response = conn.getresponse()
        assert response.getheader("Connection") == "close"
        response.read()
        assert response.will_close
        conn.close()
        with socket.create_connection((host, port)) as raw:
            raw.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := raw.recv(4096):  # HTTP/1.0 without keep-alive: closed after the answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["object"] == "list"


def test_a_malformed_request_is_a_400_and_an_unknown_route_a_404() -> None:
    with ScriptedServer(lambda r: "x") as server:
        host, port = address(server)
        with socket.create_connection((host, port)) as raw:
            raw.sendall(b"NONSENSE\r\n\r\n")
            assert raw.recv(4096).startswith(b"HTTP/1.1 400 Bad Request\r\n")
        conn = http.client.HTTPConnection(host, port)
        conn.request("DELETE", "/v1/chat/completions")
        response = conn.getresponse()
        assert response.status == 404
        assert "no route for DELETE" in json.loads(response.read())["error"]["message"]
        conn.close()


def test_stop_is_idempotent_and_closes_pooled_connections() -> None:
    server = ScriptedServer(["x", "y"]).start()
    client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
    assert ask(client).choices[0].message.content == "x"
    server.stop()
    server.stop()
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    with pytest.raises(RuntimeError):
        _ = server.base_url
    client.close()


def test_fault_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
