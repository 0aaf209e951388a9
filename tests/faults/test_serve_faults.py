"""The local OpenAI-compatible server under hostile or heavy clients, on loopback only."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest

from graphopt.llm.scripted import scripted_client
from graphopt.llm.serve import BACKLOG, LocalServer, check_loopback, make_server

CLIENTS = 50


def slow_echo(messages, params):
    time.sleep(0.05)  # long enough for the clients to overlap
    return str(messages[-1]["content"]).upper()


def start(host: str = "127.0.0.1", **options) -> LocalServer:
    server = make_server(host=host, port=0, client=scripted_client(slow_echo), **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def server() -> Iterator[LocalServer]:
    server = start(read_timeout=0.5, max_body=1 << 20)
    yield server
    server.shutdown()
    server.server_close()


def chat(server: LocalServer, text: str) -> tuple[int, dict]:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("POST", "/v1/chat/completions",
                           body=json.dumps({"messages": [{"role": "user", "content": text}]}),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def raw(server: LocalServer, head: bytes, body: bytes = b"", *, timeout: float = 5.0) -> bytes:
    """Send ``head`` and ``body`` as they are, then read the response until the server closes."""
    with socket.create_connection(server.server_address[:2], timeout=timeout) as sock:
        sock.sendall(head + body)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_50_of_50_concurrent_clients_succeed(server):
    barrier = threading.Barrier(CLIENTS)
    outcomes: list[object] = [None] * CLIENTS

    def client(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = chat(server, f"client {i}")
        except OSError as err:  # a reset connection is what this test guards against
            outcomes[i] = err

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    answered = [o for o in outcomes if isinstance(o, tuple) and o[0] == 200]
    assert len(answered) == CLIENTS, [o for o in outcomes if o not in answered]
    assert sorted(o[1]["choices"][0]["message"]["content"] for o in answered) == \
        sorted(f"CLIENT {i}" for i in range(CLIENTS))
    assert server.request_queue_size == BACKLOG >= CLIENTS


def test_a_lying_content_length_gets_408_instead_of_holding_a_thread(server):
    started = time.monotonic()
    reply = raw(server, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
                b'{"messages": [')
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"expected 1000 bytes" in reply
    assert time.monotonic() - started < 4.5
    assert chat(server, "still serving")[0] == 200


def test_a_20_mb_body_gets_413_unread(server):
    size = 20 * 1024 * 1024
    reply = raw(server, f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
                .encode(), b"{")
    assert reply.startswith(b"HTTP/1.1 413")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["message"] == \
        f"request body of {size} bytes exceeds the limit of {1 << 20} bytes"


def test_a_chunked_body_gets_411(server):
    reply = raw(server, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"2\r\n{}\r\n0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 411")


def test_a_negative_content_length_gets_400(server):
    reply = raw(server, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")


def test_a_silent_connection_is_closed_after_the_read_timeout(server):
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/comp")  # and then nothing
        assert sock.recv(1024) == b""  # closed by the server, not left open forever


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_ipv6_loopback_is_served():
    server = start("::1")
    try:
        assert server.url.startswith("http://[::1]:")
        status, body = chat(server, "over ipv6")
        assert status == 200 and body["choices"][0]["message"]["content"] == "OVER IPV6"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "8.8.8.8", "10.1.2.3"])
def test_non_loopback_needs_allow_remote(host):
    with pytest.raises(ValueError, match="pass --allow-remote"):
        check_loopback(host)
    check_loopback(host, allow_remote=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_names_are_accepted(host):
    check_loopback(host)


def test_graphopt_serve_local_serves_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "graphopt", "serve-local", "--port", "0",
                                "--model", "local/smollm2"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("graphopt: serving local/smollm2 at http://127.0.0.1:"), \
            line + process.stderr.read()
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/health")
        assert connection.getresponse().read() == b'{"status": "ok"}'
        connection.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_local_refuses_a_remote_host_in_one_line():
    from typer.testing import CliRunner

    from graphopt.cli.app import app

    done = CliRunner().invoke(app, ["serve-local", "--host", "0.0.0.0", "--port", "0"])
    assert done.exit_code == 2
    assert done.stderr.strip().splitlines() == [
        "error: serve-local host expects a loopback address (127.0.0.1, ::1, localhost), got '0.0.0.0' "
        "(0.0.0.0); pass --allow-remote to serve other machines (there is no authentication)"]
