"""Per-node statistics from traces: what each node wrote, whether it was right, whether the
readout followed it, and (with the model) how much the answer needs it.

- `tokens`: mean message length in tokens.
- `own_acc`: how often the answer parsed out of the node's own message is the target
  (a hidden node that computes the sum shows it here, even when the readout ignores it).
- `agrees_with_readout`: how often the node's parsed answer equals the network's final
  prediction: which nodes the readout follows.
- `ablation_drop` (`node_ablation`): accuracy with the node's message blanked (its readers get
  "(empty)"), subtracted from the intact accuracy: the analogue of knocking out a neuron.
"""

from __future__ import annotations

from typing import Any

from neuromas.tasks.base import Example, Task


def node_statistics(traces: list[dict[str, Any]], task: Task | None = None,
                    examples: dict[str, Example] | None = None) -> dict[str, dict[str, float]]:
    """Statistics per node id over traces as read from a traces file (`read_traces`)."""
    if not traces:
        return {}
    stats: dict[str, dict[str, float]] = {}
    for node in traces[0]["messages"]:
        lengths, right, agree = [], 0, 0
        for trace in traces:
            message = trace["messages"].get(node)
            if message is None:
                continue
            lengths.append(message.get("completion_tokens") or len(message.get("token_ids") or []))
            if task is None:
                continue
            example = (examples or {}).get(trace["example_id"])
            own = _extract(task, message["text"], example)
            right += own is not None and trace.get("target") is not None and own == _normalize(task, trace["target"])
            agree += own is not None and own == trace.get("prediction")
        n = max(len(lengths), 1)
        stats[node] = {"tokens": sum(lengths) / n}
        if task is not None:
            stats[node] |= {"own_acc": right / n, "agrees_with_readout": agree / n}
    return stats


def blanked_accuracy(net, task: Task, examples: list[Example], blanks: dict[str, frozenset[str]],
                     batch_size: int = 32) -> dict[str, float]:
    """Greedy accuracy on `examples` with each named set of nodes blanked (their readers see an
    empty message; an empty set is the intact network). Why sets: in a network that splits the
    input, blanking every message the readout reads asks whether it answers from them at all or
    solves the task alone, which no single node's drop says."""
    def accuracy(blank: frozenset[str]) -> float:
        rewards = []
        for i in range(0, len(examples), batch_size):
            rewards += [t.reward or 0.0 for t in net(examples[i : i + batch_size], task=task, blank=blank)]
        return sum(rewards) / max(len(rewards), 1)

    was_training = net.training
    net.eval()
    try:
        return {name: accuracy(frozenset(blank)) for name, blank in blanks.items()}
    finally:
        net.train(was_training)


def node_ablation(net, task: Task, examples: list[Example], batch_size: int = 32) -> dict[str, float]:
    """Accuracy drop when each non-readout node's message is blanked (greedy, same examples)."""
    hidden = [node.id for node in net.topology.nodes if not node.is_readout]
    acc = blanked_accuracy(net, task, examples, {"": frozenset(), **{n: frozenset({n}) for n in hidden}}, batch_size)
    return {n: acc[""] - acc[n] for n in hidden}


def _extract(task: Task, text: str, example: Example | None) -> str | None:
    try:
        return task.extract(text, example)
    except Exception:  # noqa: BLE001 - statistics must not crash on odd text, like rewards
        return None


def _normalize(task: Task, target: Any) -> str | None:
    try:
        return task.normalize(target)
    except Exception:  # noqa: BLE001
        return None
