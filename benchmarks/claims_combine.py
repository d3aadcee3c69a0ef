"""Can the untrained readout combine correct parts? The ceiling a division of labour starts from.

On four one-digit sums with input slices, the first layer of a trained `[2, 1]` gets both partial
sums right on about half the questions, yet a readout that sees only the messages answers their
sum almost never (claims.md, "What the nodes learned"). This probe takes the first layer out of
the question: the readout is handed the two *correct* partial sums as messages, written the way
the nodes write them ("3+1 = 4"), and answers greedily with the base model (no adapter). Views:

    msgs        the readout of `net21-msgs` (input_to_all: false): the messages and the answer
                format, nothing else: what the network's readout starts from
    msgs+task   the same with one data-free sentence saying what the task asks (a sum)
    input+msgs  the readout of `net21-slices`: the whole question and the messages
    input       the whole question alone to a single node (the untrained single agent)
    question    the combining step asked as a plain question to a single node: "What is 4+9?"

If `question` is far above `msgs`, the skill is in the model and only reading it out of messages
is missing; RL then has to find it from the rare rewards `msgs` gives.

    python -m benchmarks.claims_combine            # 128 test questions of arith 4 x 1 digit
    python -m benchmarks.claims_combine --smoke    # 4 questions, writes nothing

Results: `benchmarks/results/claims_combine.{json,md}`.
"""

from __future__ import annotations

import argparse

from benchmarks.common import table, write_results

VIEWS = ("msgs", "msgs+task", "input+msgs", "input", "question")
TASK_SENTENCE = "The task: the sum of all the numbers in its parts."


def view_topologies() -> dict:
    """The networks whose nodes' prompts the views use: the `net21-msgs` and `net21-slices` arms'
    `[2, 1]` and the single node."""
    from neuromas.config import NetworkConfig
    from neuromas.topology import Topology

    return {"msgs": Topology.from_config(NetworkConfig(layers=[2, 1], input_slices=True, input_to_all=False)),
            "slices": Topology.from_config(NetworkConfig(layers=[2, 1], input_slices=True)),
            "single": Topology.from_config(NetworkConfig(layers=[1]))}


def view_prompts(view: str, examples: list, task, topologies: dict) -> list[list[dict[str, str]]]:
    """One chat per example: `view` of the two correct partial sums (`topologies`: the networks
    whose nodes' prompts are built, by name)."""
    from neuromas.prompts import node_prompt

    chats = []
    for example in examples:
        parts, sums = task.split_input(example, 2), task.part_targets(example, 2)
        if view in ("question", "input"):
            single = topologies["single"]
            text = f"What is {sums[0]}+{sums[1]}?" if view == "question" else example.input
            chats.append(node_prompt(single.nodes[0], single, text, {}, task.answer_format))
            continue
        network = topologies["slices" if view == "input+msgs" else "msgs"]
        readout = next(node for node in network.nodes if node.is_readout)
        # "What is 3+1?" -> "3+1 = 4", the form the first-layer nodes write
        messages = {node: f"{part.removeprefix('What is ').rstrip('?')} = {value}"
                    for node, part, value in zip(readout.reads, parts, sums, strict=True)}
        answer_format = f"{TASK_SENTENCE}\n{task.answer_format}" if view == "msgs+task" else task.answer_format
        chats.append(node_prompt(readout, network, example.input, messages, answer_format))
    return chats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=128, help="test questions")
    parser.add_argument("--smoke", action="store_true", help="4 questions, writes nothing")
    args = parser.parse_args()
    limit = 4 if args.smoke else args.limit

    from neuromas.backends.base import GenerationRequest
    from neuromas.backends.hf import HFBackend
    from neuromas.config import ModelConfig
    from neuromas.eval import wilson_interval
    from neuromas.tasks import registry

    task = registry.load("arith", operands=4, digits=1)
    examples = task.examples("test")[:limit]
    topologies = view_topologies()
    backend = HFBackend.from_config(ModelConfig())
    metrics, rows = {}, []
    for view in VIEWS:
        chats = view_prompts(view, examples, task, topologies)
        replies = backend.generate([GenerationRequest(chat, None, 24, 0.0) for chat in chats])
        correct = sum(task.reward([reply.text for reply in replies], examples))
        low, high = wilson_interval(correct, len(examples))
        metrics[view] = {"acc": correct / len(examples), "ci_low": low, "ci_high": high, "n": len(examples),
                         "example": {"prompt": chats[0][-1]["content"], "reply": replies[0].text}}
        rows.append([view, f"{100 * correct / len(examples):.1f}", f"[{100 * low:.1f}, {100 * high:.1f}]",
                     repr(replies[0].text)])
        print(f"{view}: {100 * correct / len(examples):.1f}%", flush=True)
    markdown = ("The untrained readout (SmolLM2-135M-Instruct, greedy, no adapter) handed the two correct partial "
                f"sums of {len(examples)} four-number test questions (arith 4 x 1 digit). `msgs`: the view of the "
                f"`net21-msgs` readout; `msgs+task`: plus \"{TASK_SENTENCE}\"; `input+msgs`: the `net21-slices` "
                "readout, which also sees the question; `input`: the question alone (the untrained single agent); "
                "`question`: the readout's addition asked as a plain question.\n\n" + table(["view", "acc %", "95% CI", "first reply"], rows) + "\n")
    write_results("claims_combine", {"task": "arith", "operands": 4, "digits": 1, "limit": len(examples),
                                     "views": list(VIEWS), "max_new_tokens": 24}, metrics, markdown,
                  write=not args.smoke)


if __name__ == "__main__":
    main()
