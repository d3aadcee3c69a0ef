"""neuromas: multi-agent LLM systems built like neural networks and trained like them."""

from neuromas import tasks
from neuromas.config import RunConfig, load_config
from neuromas.errors import NeuromasError
from neuromas.eval import EvalResult, evaluate
from neuromas.network import Network
from neuromas.trace import NodeMessage, Trace

__all__ = [
    "EvalResult",
    "Network",
    "NeuromasError",
    "NodeMessage",
    "RunConfig",
    "Trace",
    "evaluate",
    "load_config",
    "tasks",
]
__version__ = "0.1.0"
