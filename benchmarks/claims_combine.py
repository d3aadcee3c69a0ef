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

Those rewards are measured too (`sampled`): on the training mix of `arith-4x1-mix` (2-4 numbers),
G samples per question at the recipe's temperature, the readout views again handed the correct
parts: the reward a readout warm-up on correct parts would learn from, and how many groups tie.

    python -m benchmarks.claims_combine            # 128 test questions of arith 4 x 1 digit
    python -m benchmarks.claims_combine --smoke    # 4 questions (and 4 sampled), writes nothing

Results: `benchmarks/results/claims_combine.{json,md}`.
"""

from __future__ import annotations

import argparse

from benchmarks.common import CONFIGS, table, write_results

VIEWS = ("msgs", "msgs+task", "input+msgs", "input", "question")
SAMPLED_VIEWS = ("msgs", "input+msgs")  # the readouts of the two arms that split the input
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


def sampled_rewards(view: str, examples: list, task, topologies: dict, backend, group: int,
                    temperature: float) -> dict:
    """Mean reward of `group` samples per question of `view`, the share of questions whose samples
    all tie (no signal for a group baseline), and the mean reward by the question's count of numbers."""
    from neuromas.backends.base import GenerationRequest

    chats = view_prompts(view, examples, task, topologies)
    replies = backend.generate([GenerationRequest(chat, None, 24, temperature) for chat in chats for _ in range(group)],
                               seed=0)
    rewards = task.reward([reply.text for reply in replies], [e for e in examples for _ in range(group)])
    groups = [rewards[i * group:(i + 1) * group] for i in range(len(examples))]
    by_count: dict[int, list[float]] = {}
    for example, rewards_of in zip(examples, groups):
        by_count.setdefault(len(example.meta["operands"]), []).append(sum(rewards_of) / group)
    return {"reward": sum(rewards) / len(rewards), "tied": sum(max(g) == min(g) for g in groups) / len(groups),
            "by_count": {str(k): sum(v) / len(v) for k, v in sorted(by_count.items())}, "questions": len(examples),
            "group": group, "temperature": temperature}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=128, help="test questions")
    parser.add_argument("--train-limit", type=int, default=48, help="training-mix questions for the sampled rewards")
    parser.add_argument("--group", type=int, default=8, help="samples per question (the recipe's G)")
    parser.add_argument("--smoke", action="store_true", help="4 questions, writes nothing")
    args = parser.parse_args()
    limit = 4 if args.smoke else args.limit
    train_limit = 4 if args.smoke else args.train_limit

    from neuromas.backends.base import GenerationRequest
    from neuromas.backends.hf import HFBackend
    from neuromas.build import load_task
    from neuromas.config import ModelConfig
    from neuromas.configfile import load_config
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
    # the recipe of configs/claims/arith-4x1-mix.yaml: its training mix and sampling temperature
    recipe = load_config(CONFIGS / "claims" / "arith-4x1-mix.yaml")
    mix = load_task(recipe)
    train = mix.examples("train")[:train_limit]
    sampled = {view: sampled_rewards(view, train, mix, topologies, backend, args.group,
                                     recipe.network.generation.temperature) for view in SAMPLED_VIEWS}
    sampled_rows = [[view, f"{s['reward']:.3f}", f"{100 * s['tied']:.0f}",
                     ", ".join(f"{k}: {v:.3f}" for k, v in s["by_count"].items())] for view, s in sampled.items()]
    for row in sampled_rows:
        print(f"sampled {row[0]}: reward {row[1]}, {row[2]}% of groups tied", flush=True)
    markdown = ("The untrained readout (SmolLM2-135M-Instruct, greedy, no adapter) handed the two correct partial "
                f"sums of {len(examples)} four-number test questions (arith 4 x 1 digit). `msgs`: the view of the "
                f"`net21-msgs` readout; `msgs+task`: plus \"{TASK_SENTENCE}\"; `input+msgs`: the `net21-slices` "
                "readout, which also sees the question; `input`: the question alone (the untrained single agent); "
                "`question`: the readout's addition asked as a plain question.\n\n" + table(["view", "acc %", "95% CI", "first reply"], rows)
                + f"\n\nSampled, as RL sees it: {train_limit} questions of the `arith-4x1-mix` training mix (2-4 numbers) x "
                f"G {args.group} at temperature {recipe.network.generation.temperature}, the readout handed the correct "
                "parts; `tied`: questions whose samples all got one reward (no signal for a group baseline).\n\n"
                + table(["view", "reward", "tied %", "reward by count of numbers"], sampled_rows) + "\n")
    write_results("claims_combine", {"task": "arith", "operands": 4, "digits": 1, "limit": len(examples),
                                     "views": list(VIEWS), "max_new_tokens": 24, "train_limit": train_limit,
                                     "group": args.group}, {**metrics, "sampled": sampled}, markdown,
                  write=not args.smoke)


if __name__ == "__main__":
    main()
