"""Training rollouts sampled on 2 local Ray workers are the single-process rollouts, bit for bit,
before and after an update; a worker refuses to sample with adapters of another version."""

import json
from pathlib import Path

import pytest

from neuromas.backends.base import GenerationRequest
from neuromas.backends.hf import HFBackend
from neuromas.config import ModelConfig, TrainConfig
from neuromas.errors import NeuromasError
from neuromas.network import Network
from neuromas.rl.trainer import Trainer
from neuromas.tasks.base import Example, Task

NETWORK = {"layers": [2, 1], "generation": {"max_new_tokens": 8, "temperature": 1.0}, "adapters": {"rank": 2}}
TRAIN = TrainConfig(steps=2, batch_size=2, group_size=2, lr=1e-2)


class Letters(Task):
    """Reward: the share of the letter e in the readout's answer (dense, so groups rarely tie)."""

    name = "letters"
    answer_format = "Write one sentence."

    def examples(self, split):
        return [Example(f"{split}{i}", f"Say something about the number {i}.", "e") for i in range(4)]

    def extract(self, completion, example=None):
        return completion

    def reward(self, completions, examples):
        return [c.count("e") / max(len(c), 1) for c in completions]


@pytest.mark.slow
def test_neuromas_train_with_ray_trains_from_the_workers_rollouts(tmp_path):
    """The whole path `neuromas train|run --ray local` takes (run_train): refusals checked, Ray
    started, a worker sampling every step's rollouts, the run directory written. Before the
    module's worker pool starts: this test's Ray instance takes the machine's CPUs and is shut down."""
    ray = pytest.importorskip("ray")
    from neuromas.configfile import load_config
    from neuromas.runner import run_train

    config = load_config(Path(__file__).parents[1] / "configs" / "quickstart.yaml", [
        "train.steps=1", "train.batch_size=1", "train.group_size=2", "network.generation.max_new_tokens=4",
        "eval.limit=2", "train.rollout_workers=1", "model.dtype=float32"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    try:
        results = run_train(config, run_dir, progress=False, ray="local")
    finally:
        ray.shutdown()
    assert results["after"].n == 2
    summary = json.loads((run_dir / "results.json").read_text())
    assert summary["train"]["steps"] == 1 and summary["train"]["rollout_workers"] == 1


@pytest.fixture(scope="module")
def workers():
    ray = pytest.importorskip("ray")
    from neuromas.distributed import RolloutWorkers

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    pool = RolloutWorkers(ModelConfig(dtype="float32"), "local", workers=2, cpus_per_worker=1)
    yield pool
    pool.close()
    ray.shutdown()


def messages(traces):
    """Everything the update reads of a rollout, per pass and node."""
    return [(t.example_id, t.sample, t.reward,
             {node: (m.text, m.token_ids, m.logprobs, m.prompt_ids, m.finished) for node, m in t.messages.items()})
            for t in traces]


@pytest.fixture
def one_thread():
    """The workers' thread count here too: a CPU kernel may round differently on more threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_two_workers_sample_the_single_process_rollouts_before_and_after_an_update(workers, backend32, one_thread):
    # micro-batches of 2 rows: 4 of them in layer 1, 2 in the readout's layer, shared out over both workers
    small = HFBackend(backend32.model, backend32.tokenizer, max_batch_rows=2)
    here = Trainer(Network(NETWORK, backend=small, seed=3), Letters(), TRAIN, progress=False)
    there = Trainer(Network(NETWORK, backend=small, seed=3), Letters(), TRAIN, progress=False, rollout_workers=workers)
    assert messages(there.rollout(0)) == messages(here.rollout(0))
    stale = there.rollout(1)  # step 1's seed, with the adapters before the update

    assert here.train_step()["loss/policy"] == there.train_step()["loss/policy"]  # the update stays in the driver
    moved = [name for name, p in here.net.named_parameters() if "lora_B" in name and p.abs().sum() > 0]
    assert {name.split(".")[-2] for name in moved} == {"L1N1", "L1N2", "L2N1"}  # every adapter was updated

    after = there.rollout(1)
    assert workers.version == 1
    assert messages(after) == messages(here.rollout(1))  # the workers sample with the updated adapters
    assert messages(after) != messages(stale)
    # a tree rollout (train.branching) goes the same way: the forward stays in the driver
    examples = here.batch_examples(0)
    tree = {"num_samples": 2, "task": Letters(), "seed": 9, "branching": [1, 2]}
    assert messages(there.net(examples, backend=workers.backend(there.net, version=1), **tree)) == messages(
        here.net(examples, **tree))

    request = GenerationRequest([{"role": "user", "content": "Hi"}], "L1N1", 4, 1.0)
    with pytest.raises(NeuromasError, match="holds the adapters of version 1 and was asked to sample with version 0"):
        workers.backend(there.net, version=0).generate([request], seed=0)


def test_rollout_workers_need_ray_workers():
    with pytest.raises(NeuromasError, match="train.rollout_workers 2 samples on Ray workers"):
        Trainer(Network([1]), Letters(), TrainConfig(rollout_workers=2), progress=False)
    with pytest.raises(ValueError, match="rollout_backend vllm samples here"):
        TrainConfig(rollout_workers=2, rollout_backend="vllm")


def test_the_benchmark_says_where_the_ray_arm_parts_from_the_process_arm():
    """benchmarks/rollout_workers.py: "yes" when every step agrees; else the first step that differs,
    and, where the thread counts differ, why they may (no model, no Ray)."""
    from argparse import Namespace

    from benchmarks.rollout_workers import same_text

    assert same_text([], Namespace(threads=2)) == "yes"
    differ = [("loss", 1), ("reward_mean", 2), ("tokens", 3)]
    assert same_text(differ, Namespace(threads=1)) == "no, loss first differs at step 1"
    two = same_text(differ[1:], Namespace(threads=2))
    assert two.startswith("no, reward mean first differs at step 2 (each worker computes on 1 thread, the process on 2")
