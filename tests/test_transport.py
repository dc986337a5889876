"""The lean HTTP transport under the SDK's sync client (``RLM.lean_http``), for http:// endpoints.

Each behaviour is checked with the lean transport and with the SDK's default one: the setting may
change how fast a request goes out, never what comes back or how a failure reads.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest
from conftest import fence, settings

import rlm_kernel
from rlm_kernel import RLM
from rlm_kernel._errors import ModelConnectionError, ModelResponseError
from rlm_kernel.models import _transport
from rlm_kernel.models.openai import OpenAIClient
from rlm_kernel.testing import ChatRequest, Fault, ScriptedServer

THREE_TURNS = [fence("x = 6 * 7"), fence("print(x)"), fence("FINAL(x)")]
HELLO = [{"role": "user", "content": "hello"}]

lean_or_not = pytest.mark.parametrize("lean_http", [True, False], ids=["lean", "sdk-transport"])


def client_for(server: ScriptedServer, **overrides: object) -> OpenAIClient:
    return OpenAIClient(RLM().with_overrides(settings(server, **overrides)))


def transport_name(client: OpenAIClient) -> str:
    return type(client._sync._client._transport).__name__


@lean_or_not
def test_root_calls_share_one_keep_alive_connection(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    server = serve({"root": THREE_TURNS})
    result = rlm_kernel.run("q", "ctx", **settings(server, lean_http=lean_http))
    assert (result.reason, result.answer) == ("final", "42")
    assert len(server.requests) == 3
    assert server.connections_accepted == 1


def test_the_setting_chooses_the_transport(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(["a"])
    assert transport_name(client_for(server)) == "LeanTransport"
    assert transport_name(client_for(server, lean_http=False)) == "HTTPTransport"


@lean_or_not
def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    server = serve(["first", "second"])
    client = client_for(server, lean_http=lean_http)  # max_retries=0: a failed reuse would show
    assert client.complete(HELLO, model="m").text == "first"
    server.close_idle()
    assert client.complete(HELLO, model="m").text == "second"
    assert server.connections_accepted == 2


@lean_or_not
def test_a_dropped_connection_is_a_connection_error_naming_the_endpoint(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    server = serve(["never"])
    server.inject(Fault.disconnect())
    client = client_for(server, lean_http=lean_http)
    with pytest.raises(ModelConnectionError) as caught:
        client.complete(HELLO, model="m")
    assert server.base_url in str(caught.value)


@lean_or_not
def test_a_dropped_connection_is_retried(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    server = serve(["after the retry"])
    server.inject(Fault.disconnect())
    client = client_for(server, lean_http=lean_http, max_retries=1)
    assert client.complete(HELLO, model="m").text == "after the retry"


@lean_or_not
def test_a_slow_answer_is_a_timeout_naming_the_setting(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    server = serve(["on time"])
    server.inject(Fault.timeout(3.0))  # the timed-out request's late answer is not from the script
    client = client_for(server, lean_http=lean_http, request_timeout=0.3)
    with pytest.raises(ModelConnectionError) as caught:
        client.complete(HELLO, model="m")
    assert "RLM.request_timeout" in str(caught.value)
    # The timed-out connection is not reused for the next request (its late answer would be read).
    assert client.complete(HELLO, model="m").text == "on time"


@lean_or_not
def test_malformed_json_is_a_response_error(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    server = serve(["x"])
    server.inject(Fault.malformed())
    with pytest.raises(ModelResponseError):
        client_for(server, lean_http=lean_http).complete(HELLO, model="m")


@lean_or_not
def test_streamed_answers_arrive_piece_by_piece(
    serve: Callable[..., ScriptedServer], lean_http: bool
) -> None:
    text = "A streamed answer, long enough to come in several pieces."
    server = serve([text])
    pieces: list[str] = []
    completion = client_for(server, lean_http=lean_http, stream=True).complete(
        HELLO, model="m", on_delta=pieces.append
    )
    assert completion.text == text
    assert len(pieces) > 1 and "".join(pieces) == text
    assert server.connections_accepted == 1


def test_a_chunked_request_body_is_sent_chunked(serve: Callable[..., ScriptedServer]) -> None:
    seen: list[ChatRequest] = []

    def answer(request: ChatRequest) -> str:
        seen.append(request)
        return "ok"

    server = serve(answer)
    transport = _transport.lean_transport(httpx2, httpx2.HTTPTransport())
    body = b'{"model": "m", "messages": [{"role": "user", "content": "in pieces"}]}'
    with httpx2.Client(transport=transport) as client:
        response = client.post(
            f"{server.base_url}/chat/completions",
            content=(body[i : i + 10] for i in range(0, len(body), 10)),  # no length: chunked
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "ok"
    assert seen[0].messages == [{"role": "user", "content": "in pieces"}]


def test_only_unproxied_plain_http_endpoints_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _transport.applies("http://127.0.0.1:8000/v1")
    assert not _transport.applies("https://api.openai.com/v1")
    assert not _transport.applies("")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert not _transport.applies("http://127.0.0.1:8000/v1")
