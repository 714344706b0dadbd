"""Vesalius over HTTP: `vesalius serve` runs the API and the web page (`create_app`), driving the agent through its
public API like any other client."""

from vesalius.server.app import create_app

__all__ = ["create_app"]
