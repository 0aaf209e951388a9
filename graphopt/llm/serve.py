"""A small OpenAI-compatible HTTP server for the embedded model, on loopback only.

Any OpenAI client can use it, litellm included (``model="openai/smollm2"``,
``api_base="http://127.0.0.1:8000/v1"``). Run ``graphopt serve-local --port 8000`` (or
``python -m graphopt.llm.serve``); both call ``serve()``. Endpoints: ``GET /v1/models``,
``POST /v1/chat/completions`` (with ``"stream": true`` as server-sent events) and ``GET /health``.

Each connection gets its own thread, with a listen backlog of ``BACKLOG`` so bursts of clients
queue instead of being reset; a request body over ``max_body`` bytes gets 413 unread, and a
client that stops sending (a ``Content-Length`` longer than what it sends) gets 408 after
``read_timeout`` seconds instead of holding its thread forever. IPv4 and IPv6 loopback work;
any other address is refused unless ``allow_remote=True`` (the server has no authentication).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from graphopt.errors import GraphoptError
from graphopt.llm.client import Client
from graphopt.llm.config import DEFAULT_MODEL
from graphopt.llm.registry import get

# Request fields passed to the model; the rest of an OpenAI request is accepted and ignored.
_PARAMS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop",
           "response_format", "n")

BACKLOG = 128
MAX_BODY = 1 << 20  # bytes: a chat request is text; megabytes are a mistake or an attack
READ_TIMEOUT = 30.0  # seconds a connection may stay silent while its request is read


def resolve(host: str) -> tuple[socket.AddressFamily, str]:
    """The address family and numeric address ``host`` binds to (``::1`` as IPv6)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as err:
        raise ValueError(f"serve-local host {host!r} does not resolve: {err}") from err
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


def check_loopback(host: str, *, allow_remote: bool = False) -> None:
    """Refuse any address but loopback unless ``allow_remote``: the server has no authentication."""
    try:
        address = ipaddress.ip_address(resolve(host)[1].split("%")[0])
    except ValueError as err:
        raise ValueError(f"serve-local host expects a loopback address, got {host!r}") from err
    if not address.is_loopback and not allow_remote:
        raise ValueError(f"serve-local host expects a loopback address (127.0.0.1, ::1, localhost), "
                         f"got {host!r} ({address}); pass --allow-remote to serve other machines "
                         f"(there is no authentication)")


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # StreamRequestHandler.setup applies ``timeout`` to the socket: every read is bounded.
        self.timeout = self.server.read_timeout
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log on stderr
        return

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:
        path = self.path.rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [
                {"id": self.server.client.model, "object": "model", "created": 0,
                 "owned_by": "graphopt"}]})
        elif path == "/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._error(404, f"no route {self.path!r}", "not_found")

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path!r}", "not_found")
            return
        body = self._read_body()
        if body is None:
            return
        try:
            request = json.loads(body or b"{}")
            messages = request["messages"]
            params = {name: request[name] for name in _PARAMS if request.get(name) is not None}
        except (ValueError, KeyError, TypeError) as err:
            self._error(400, f"chat request expects JSON with 'messages': {err}", "invalid_request_error")
            return
        try:
            if request.get("stream"):
                self._stream(messages, params)
            else:
                self._complete(messages, params)
        except (ValueError, TypeError) as err:
            self._error(400, str(err), "invalid_request_error")
        except GraphoptError as err:
            self._error(500, str(err), "server_error")

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 411, 413 or 408 and closing the connection."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._error(411, "chat request expects a Content-Length, not a chunked body", "invalid_request_error")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(400, f"Content-Length expects a non-negative integer, got "
                             f"{self.headers.get('Content-Length')!r}", "invalid_request_error")
            return None
        if length > self.server.max_body:
            self.close_connection = True  # the body is never read: the connection cannot be reused
            self._error(413, f"request body of {length} bytes exceeds the limit of "
                             f"{self.server.max_body} bytes", "invalid_request_error")
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            body = None
        if body is None or len(body) < length:
            self.close_connection = True
            self._error(408, f"request body: expected {length} bytes (Content-Length), the client sent "
                             f"{0 if body is None else len(body)} before going silent or closing",
                        "invalid_request_error")
            return None
        return body

    def _complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> None:
        reply = self.server.client.complete(messages, **params)
        self._send_json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": reply.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": reply.finish_reason or "stop"}],
            "usage": {"prompt_tokens": reply.usage.prompt_tokens,
                      "completion_tokens": reply.usage.completion_tokens,
                      "total_tokens": reply.usage.total_tokens},
        })

    def _pieces(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Iterator[str]:
        stream = getattr(self.server.client.backend, "stream", None)
        if stream is None:
            yield self.server.client.complete(messages, **params).text
        else:
            yield from stream(messages, **params)

    def _stream(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> None:
        pieces = self._pieces(messages, params)
        first = next(pieces, "")  # fail before the 200 is sent, if the request is bad
        ident, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), self.server.client.model
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(delta: dict[str, Any], finish: str | None) -> None:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode("utf-8"))
            self.wfile.flush()

        event({"role": "assistant", "content": first}, None)
        for piece in pieces:
            event({"content": piece}, None)
        event({}, "stop")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class LocalServer(ThreadingHTTPServer):
    """A threading HTTP server answering OpenAI chat requests with one graphopt client."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], client: Client, *, max_body: int = MAX_BODY,
                 read_timeout: float = READ_TIMEOUT) -> None:
        self.client = client
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.address_family, host = resolve(address[0])
        super().__init__((host, address[1]), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up or stalls is its own problem, not a traceback on our stderr.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """The OpenAI ``api_base`` of this server, e.g. ``http://127.0.0.1:8000/v1``."""
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/v1"


def make_server(*, host: str = "127.0.0.1", port: int = 8000, model: str = DEFAULT_MODEL,
                client: Client | None = None, allow_remote: bool = False, max_body: int = MAX_BODY,
                read_timeout: float = READ_TIMEOUT, **settings: Any) -> LocalServer:
    """A bound, not yet serving, server (``port=0`` picks a free port)."""
    check_loopback(host, allow_remote=allow_remote)
    if max_body < 1 or read_timeout <= 0:
        raise ValueError(f"serve-local expects max_body >= 1 and read_timeout > 0, got {max_body!r} "
                         f"and {read_timeout!r}")
    return LocalServer((host, port), client or get(model, **settings), max_body=max_body,
                       read_timeout=read_timeout)


def serve(*, host: str = "127.0.0.1", port: int = 8000, model: str = DEFAULT_MODEL,
          allow_remote: bool = False, max_body: int = MAX_BODY, read_timeout: float = READ_TIMEOUT,
          **settings: Any) -> None:
    """Serve until interrupted; what ``graphopt serve-local`` runs."""
    server = make_server(host=host, port=port, model=model, allow_remote=allow_remote,
                         max_body=max_body, read_timeout=read_timeout, **settings)
    print(f"graphopt: serving {server.client.model} at {server.url} (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graphopt-serve-local",
                                     description="OpenAI-compatible server for the embedded model.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback address (no authentication!)")
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, model=args.model, allow_remote=args.allow_remote)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
