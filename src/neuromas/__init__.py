"""neuromas: multi-agent LLM systems built like neural networks and trained like them."""

from neuromas import baselines, grow, tasks
from neuromas.config import RunConfig, TrainConfig
from neuromas.configfile import load_config
from neuromas.errors import NeuromasError
from neuromas.eval import EvalResult, evaluate
from neuromas.network import Network
from neuromas.rl.trainer import Trainer
from neuromas.trace import NodeMessage, Trace

__all__ = [
    "EvalResult",
    "Network",
    "NeuromasError",
    "NodeMessage",
    "RunConfig",
    "Trace",
    "TrainConfig",
    "Trainer",
    "baselines",
    "evaluate",
    "grow",
    "load_config",
    "tasks",
]
__version__ = "0.1.0"
