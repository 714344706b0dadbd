"""The `vesalius` command: the agent's commands, and those that drive the agent from outside (`vesalius eval`,
`vesalius serve`)."""

import click

from vesalius.agent.cli import main
from vesalius.eval.cli import eval_group


@main.command()
@click.option("--host", help="address to listen on (default VESALIUS_SERVE_HOST, else 127.0.0.1)")
@click.option("--port", type=int, help="port (default VESALIUS_SERVE_PORT, else 8000)")
@click.option("--workers", default=1, show_default=True, help="worker processes (they share the data folder)")
def serve(host, port, workers) -> None:
    """Serve the HTTP API and the web page: open http://127.0.0.1:8000 in a browser."""
    from vesalius.agent.config import load_settings
    from vesalius.server.run import serve as run

    run(load_settings(serve_host=host, serve_port=port), workers)


main.add_command(eval_group)

__all__ = ["main"]
