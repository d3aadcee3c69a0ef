"""A run's parts built from its config: the task, the network (from `init_from`'s adapters), the dtype.

Shared by everything that runs a config (runner.py, distributed.py's Ray workers, compare.py,
report.py, serve.py), so it sits below all of them.
"""

from __future__ import annotations

from pathlib import Path

from neuromas import tasks
from neuromas.checkpoint import init_from
from neuromas.config import RunConfig
from neuromas.network import Network
from neuromas.tasks.base import Task


def load_task(config: RunConfig) -> Task:
    return tasks.load(config.task.name, **config.task.params)


def build_network(config: RunConfig) -> Network:
    """The configured network, starting from `init_from`'s saved adapters when it is set."""
    net = Network.from_config(config)
    if config.init_from is not None:
        init_from(net, Path(config.init_from))
    return net


def model_dtype(net: Network) -> str | None:
    """The dtype `model.dtype: auto` chose (None for a server backend, whose weights are its own)."""
    if not net.backend_loaded:  # e.g. a Ray run: the workers hold the model (they report its dtype)
        return None
    model = getattr(net.backend, "model", None)
    if not hasattr(model, "parameters"):
        return None
    return str(next(model.parameters()).dtype).removeprefix("torch.")
