import http.client
import json
import threading
from typing import Any, Iterator

import pytest

from graphopt.llm import Client
from graphopt.llm.serve import LocalServer, check_loopback, make_server


@pytest.fixture
def server(client: Client) -> Iterator[LocalServer]:
    server = make_server(port=0, client=client)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server: LocalServer, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request(method, path, body=None if body is None else json.dumps(body),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def test_chat_completion_has_openai_shape(server: LocalServer) -> None:
    status, data = request(server, "POST", "/v1/chat/completions",
                           {"model": "anything", "messages": [{"role": "user", "content": "hi"}],
                            "max_tokens": 4, "api_key": "ignored"})
    body = json.loads(data)
    assert status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "HI"}
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
    assert body["model"] == "scripted/model"


def test_streamed_completion_is_server_sent_events(server: LocalServer) -> None:
    status, data = request(server, "POST", "/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "hi"}], "stream": True})
    events = [line[len("data: "):] for line in data.decode().splitlines() if line.startswith("data: ")]
    assert status == 200 and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "HI"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_models_and_health(server: LocalServer) -> None:
    status, data = request(server, "GET", "/v1/models")
    assert status == 200 and json.loads(data)["data"][0]["id"] == "scripted/model"
    assert request(server, "GET", "/health") == (200, b'{"status": "ok"}')


def test_bad_request_gets_400(server: LocalServer) -> None:
    status, data = request(server, "POST", "/v1/chat/completions", {"prompt": "no messages"})
    assert status == 400 and "'messages'" in json.loads(data)["error"]["message"]
    assert request(server, "GET", "/nowhere")[0] == 404


@pytest.mark.parametrize("host", ["0.0.0.0", "8.8.8.8"])
def test_only_loopback_is_served(host: str) -> None:
    with pytest.raises(ValueError, match="expects a loopback address"):
        check_loopback(host)


def test_litellm_http_client_talks_to_it_over_ipv4_and_ipv6(client: Client) -> None:
    from graphopt.llm.litellm_env import load_litellm

    litellm = load_litellm()
    for host in ("127.0.0.1", "::1"):
        try:
            server = make_server(host=host, port=0, client=client)
        except OSError:  # no IPv6 loopback on this machine
            continue
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            response = litellm.completion(model="openai/anything", api_base=server.url, api_key="sk-local",
                                          messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            assert response.choices[0].message.content == "HI"
        finally:
            server.shutdown()
            server.server_close()
