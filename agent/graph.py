"""The agent as a LangGraph StateGraph: ingest -> route -> (tools | retrieve, side by side) -> (reason) -> compose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Checkpointer

from vesalius.agent.deps import Deps
from vesalius.agent.nodes.compose import compose
from vesalius.agent.nodes.ingest import ingest
from vesalius.agent.nodes.reason import reason
from vesalius.agent.nodes.retrieve import after_retrieve, retrieve
from vesalius.agent.nodes.route import after_route, route
from vesalius.agent.nodes.tools import run_tools
from vesalius.agent.state import AgentState


def _bind(fn: Callable[[AgentState, Deps], Any], deps: Deps) -> Callable[[AgentState], Any]:
    def node(state: AgentState) -> Any:
        return fn(state, deps)

    node.__name__ = fn.__name__
    return node


def build_graph(deps: Deps, checkpointer: Checkpointer = None):
    g = StateGraph(AgentState)
    g.add_node("ingest", _bind(ingest, deps))
    g.add_node("route", _bind(route, deps))
    g.add_node("tools", _bind(run_tools, deps))
    g.add_node("retrieve", _bind(retrieve, deps))
    g.add_node("reason", _bind(reason, deps))
    g.add_node("compose", _bind(compose, deps))
    g.add_edge(START, "ingest")
    g.add_edge("ingest", "route")
    # The tools read pixels and the retrieval reads the question: neither waits for the other. Both branches lead
    # on to the same step, which runs once when both are done.
    g.add_conditional_edges("route", after_route, ["tools", "retrieve"])
    g.add_conditional_edges("tools", _bind(after_retrieve, deps), ["reason", "compose"])
    g.add_conditional_edges("retrieve", _bind(after_retrieve, deps), ["reason", "compose"])
    g.add_edge("reason", "compose")
    g.add_edge("compose", END)
    return g.compile(checkpointer=checkpointer)
