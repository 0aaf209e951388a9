"""``graphopt serve-local``: the embedded model behind an OpenAI-compatible HTTP server."""

from __future__ import annotations

import typer

from graphopt.llm.config import DEFAULT_MODEL
from graphopt.llm.serve import MAX_BODY, READ_TIMEOUT, serve


def serve_local(host: str = typer.Option("127.0.0.1", help="address to bind: loopback (127.0.0.1, ::1) "
                                                            "unless --allow-remote"),
                port: int = typer.Option(8000, min=0, max=65535, help="port (0 picks a free one)"),
                model: str = typer.Option(DEFAULT_MODEL, help="model to serve"),
                allow_remote: bool = typer.Option(False, "--allow-remote",
                                                  help="bind a non-loopback address (no authentication)"),
                max_body: int = typer.Option(MAX_BODY, min=1, help="largest request body in bytes (413 beyond)"),
                read_timeout: float = typer.Option(READ_TIMEOUT, min=0.001,
                                                   help="seconds a client may stall mid-request (408 after)")
                ) -> None:
    """Serve a model at http://HOST:PORT/v1 for any OpenAI client (litellm: model="openai/NAME")."""
    serve(host=host, port=port, model=model, allow_remote=allow_remote, max_body=max_body,
          read_timeout=read_timeout)
