"""neuromas: multi-agent LLM systems built like neural networks and trained like them.

The names below are imported on first use (PEP 562 `__getattr__`), so `import neuromas` (and
`neuromas --help`, `show`, `tasks`, a config error) loads no torch: `nm.Network` costs what
the network module costs, `nm.Trainer` brings torch, and a model loads only when a network
first generates.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "EvalResult": "neuromas.eval",
    "evaluate": "neuromas.eval",
    "Network": "neuromas.network",
    "NeuromasError": "neuromas.errors",
    "NodeMessage": "neuromas.trace",
    "Trace": "neuromas.trace",
    "RunConfig": "neuromas.config",
    "TrainConfig": "neuromas.config",
    "load_config": "neuromas.configfile",
    "Trainer": "neuromas.rl.trainer",
}
_SUBMODULES = ("baselines", "config", "grow", "tasks")

__all__ = [
    "EvalResult", "Network", "NeuromasError", "NodeMessage", "RunConfig", "Trace", "TrainConfig", "Trainer",
    "baselines", "config", "evaluate", "grow", "load_config", "tasks",
]

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from neuromas import baselines, config, grow, tasks
    from neuromas.config import RunConfig, TrainConfig
    from neuromas.configfile import load_config
    from neuromas.errors import NeuromasError
    from neuromas.eval import EvalResult, evaluate
    from neuromas.network import Network
    from neuromas.rl.trainer import Trainer
    from neuromas.trace import NodeMessage, Trace


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"neuromas.{name}")
    else:
        raise AttributeError(f"module 'neuromas' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
