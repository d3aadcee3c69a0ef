"""Frozen-backbone baselines, evaluated exactly like networks (same inputs, backend and metrics).

    method = nm.baselines.load("self-consistency", k=3)          # embedded model, hf backend
    result = nm.evaluate(method, task, limit=64)                 # accuracy, CI, calls and tokens per question

A spec string names a method and its parameters as YAML values: `"moa:widths=[2,2,1]"`,
`"debate:agents=3,rounds=2"`. Unknown names fail with the list of valid ones.
"""

from __future__ import annotations

from typing import Any

import yaml

from neuromas.backends.base import Backend
from neuromas.baselines.agentnet import AgentNet
from neuromas.baselines.base import Method
from neuromas.baselines.goa import GraphOfAgents
from neuromas.baselines.gptswarm import GPTSwarm
from neuromas.baselines.multiagent import Debate, MixtureOfAgents, RoleWorkflow
from neuromas.baselines.prompting import ChainOfThought, Direct, SelfCheck, SelfConsistency, SelfRefine
from neuromas.config import ModelConfig
from neuromas.errors import NeuromasError

METHODS: dict[str, type[Method]] = {
    m.name: m for m in [Direct, ChainOfThought, SelfConsistency, SelfRefine, SelfCheck, MixtureOfAgents, Debate, RoleWorkflow,
                        GPTSwarm, GraphOfAgents, AgentNet]
}

__all__ = ["METHODS", "Method", "load", "names", "parse_spec"]


def names() -> list[str]:
    return list(METHODS)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """"name:key=value,key=value" -> (name, params); values are YAML (numbers, lists)."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    # split on commas outside brackets, so widths=[2,2,1] stays whole
    depth, part, parts = 0, "", []
    for ch in rest:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    for item in filter(str.strip, parts):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise NeuromasError(f"baseline {spec!r}: write parameters as name:key=value,key=value")
        params[key.strip()] = yaml.safe_load(value)
    return name.strip(), params


def load(spec: str, backend: Backend | None = None, model: ModelConfig | None = None, **params: Any) -> Method:
    """A baseline by name or spec string, on `backend` (or a backend built from `model`)."""
    name, parsed = parse_spec(spec)
    if name not in METHODS:
        raise NeuromasError(f"unknown baseline {name!r}; valid: {', '.join(METHODS)}")
    try:
        return METHODS[name](backend, model, **{**parsed, **params})
    except TypeError as error:
        raise NeuromasError(f"baseline {spec!r}: {error}".replace("__init__() ", "")) from None
