"""neuromas: multi-agent LLM systems built like neural networks and trained like them."""

from neuromas import tasks
from neuromas.errors import NeuromasError

__all__ = ["NeuromasError", "tasks"]
__version__ = "0.1.0"
