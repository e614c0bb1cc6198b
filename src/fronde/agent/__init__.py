"""Agents: a model that calls tools in a loop until it answers (`fronde agent`), on a local model dir or any
OpenAI-compatible endpoint. A top layer beside fronde.serve: it uses the engine, the tools and the chat parsing."""

from fronde.agent.backends import Backend, BackendTurn, EndpointBackend, LocalBackend, open_backend
from fronde.agent.loop import AgentEvent, AgentResult, run_agent

__all__ = ["AgentEvent", "AgentResult", "Backend", "BackendTurn", "EndpointBackend", "LocalBackend", "open_backend",
           "run_agent"]
