"""`vesalius serve`: checks that the server may listen where it is asked to, then runs it with uvicorn."""

from __future__ import annotations

from typing import Any

from vesalius.agent.config import Settings
from vesalius.agent.errors import AgentError
from vesalius.server.guards import is_loopback

GRACE_S = 30  # in-flight answers get this long to finish (and be stored) on shutdown


def serve(settings: Settings, workers: int = 1) -> None:
    if not is_loopback(settings.serve_host) and not settings.api_token:
        raise AgentError(
            f"refusing to listen on {settings.serve_host} without an API token",
            "Set VESALIUS_API_TOKEN (16 characters or more), or listen on 127.0.0.1",
        )
    import uvicorn

    from vesalius.server.app import create_app

    config: dict[str, Any] = {
        "host": settings.serve_host,
        "port": settings.serve_port,
        "timeout_graceful_shutdown": GRACE_S,
        "server_header": False,
        "log_level": "info",
        "access_log": True,  # method, path and status: ids, never a question or a file name
    }
    if workers > 1:
        # Workers import the app from the environment's settings, so they must agree: same data dir and token.
        uvicorn.run("vesalius.server.app:create_app", factory=True, workers=workers, **config)
    else:
        uvicorn.run(create_app(settings), **config)
