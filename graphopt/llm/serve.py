"""A small OpenAI-compatible HTTP server for the embedded model, on loopback only.

Any OpenAI client can use it, litellm included (``model="openai/smollm2"``,
``api_base="http://127.0.0.1:8000/v1"``). Run ``python -m graphopt.llm.serve --port 8000``; the
CLI's ``graphopt serve-local`` calls ``serve()``. Endpoints: ``GET /v1/models``,
``POST /v1/chat/completions`` (with ``"stream": true`` as server-sent events) and ``GET /health``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
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


def check_loopback(host: str) -> None:
    """Refuse any address but loopback: the server has no authentication."""
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError) as err:
        raise ValueError(f"serve-local host expects a loopback address, got {host!r}") from err
    if not address.is_loopback:
        raise ValueError(f"serve-local host expects a loopback address (127.0.0.1, localhost), "
                         f"got {host!r} ({address})")


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"

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
        try:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
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

    def __init__(self, address: tuple[str, int], client: Client) -> None:
        self.client = client
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The OpenAI ``api_base`` of this server, e.g. ``http://127.0.0.1:8000/v1``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def make_server(*, host: str = "127.0.0.1", port: int = 8000, model: str = DEFAULT_MODEL,
                client: Client | None = None, **settings: Any) -> LocalServer:
    """A bound, not yet serving, server (``port=0`` picks a free port)."""
    check_loopback(host)
    return LocalServer((host, port), client or get(model, **settings))


def serve(*, host: str = "127.0.0.1", port: int = 8000, model: str = DEFAULT_MODEL,
          **settings: Any) -> None:
    """Serve until interrupted; what ``graphopt serve-local`` runs."""
    server = make_server(host=host, port=port, model=model, **settings)
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
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, model=args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
