"""Ray workers: evaluation sharded across them (`neuromas eval CONFIG --ray local|ADDRESS`) and
training rollouts sampled on them (`train.rollout_workers: N` with `neuromas train --ray ...`).

Evaluation. Each worker is a Ray actor that builds its own task and network (its own backend,
its own copy of the model, or its own client to a server) from the run's resolved config, then
answers whole evaluation batches. Batches, not single questions, are the unit of work so that
each one is computed exactly as the single-process `evaluate` computes it (same rows, same
padding): under greedy decoding the sharded run gives the single-process run's answers, which
the tests check.

Training rollouts (`RolloutWorkers`). The network's forward, its prompts, tree rollouts and a
growth's fade-in all stay in the driver, which hands each layer's generation to the workers
instead of its own backend: the unit of work is one micro-batch of that layer exactly as
`HFBackend.micro_batches` splits it in one process (same rows, same padding, a seed of its own),
so the rollouts are the single-process rollouts bit for bit, with any number of workers (tested),
where a worker runs as many torch threads as the driver (in float32 here, 1 and 2 threads gave
the same tokens with log-probs apart in the last bits). Parallelism is therefore the number
of micro-batches per layer: rows per layer over `model.max_batch_rows`. Each worker holds the
base model; before every rollout the driver sends the adapters (their LoRA tensors, put into
Ray's object store once and read by every worker) with a version, the number of steps done, and
every micro-batch names the version it must be sampled with: a worker holding another refuses
it, so a stale adapter never samples. The update (log-probs, loss, backward, optimizer) stays in
the driver.

Ray is the only scale-out mechanism: no home-made process pools or RPC (DESIGN.md section 3).
`local` starts a Ray instance on this machine; any other value is a cluster address for
`ray.init` (e.g. `ray://head:10001`), whose workers must have neuromas installed.
"""

from __future__ import annotations

import time
from typing import Sequence

from neuromas import baselines
from neuromas.backends import from_config
from neuromas.backends.base import Generation, GenerationRequest
from neuromas.build import build_network, load_task, model_dtype
from neuromas.config import AdapterConfig, ModelConfig, RunConfig
from neuromas.errors import NeuromasError, missing_extra
from neuromas.eval import EvalResult, summarize
from neuromas.network import Network

NETWORK = None  # the method key of the network itself


class _EvalWorker:
    """Holds one network (one copy of the model) and the task; answers batches of example
    indices with the network or with a baseline built on the same model."""

    def __init__(self, config: dict, threads: int):
        import torch

        torch.set_num_threads(threads)  # one worker per core shares the machine without oversubscription
        self.run_config = RunConfig.model_validate(config)
        self.task, self.net = load_task(self.run_config), build_network(self.run_config).eval()
        self.examples = self.task.examples(self.run_config.eval.split)
        self.solvers = {NETWORK: self.net}
        self.fit_seconds: dict[str | None, float] = {}

    def _solver(self, method: str | None):
        if method not in self.solvers:  # a baseline on the same model (neuromas baselines --ray)
            solver = baselines.load(method, backend=self.net.backend, seed=self.run_config.seed,
                                    max_new_tokens=self.run_config.network.generation.max_new_tokens)
            if hasattr(solver, "optimize"):  # GPTSwarm: every worker learns the same edges (seeded)
                start = time.perf_counter()
                solver.optimize(self.task)
                self.fit_seconds[method] = time.perf_counter() - start
            self.solvers[method] = solver
        return self.solvers[method]

    def run(self, indices: list[int], method: str | None = NETWORK):
        return self._solver(method)([self.examples[i] for i in indices], task=self.task)

    def describe(self, method: str | None = NETWORK) -> dict:
        return {"calls_per_pass": self._solver(method).calls_per_pass, "model_dtype": model_dtype(self.net),
                "fit_seconds": self.fit_seconds.get(method, 0.0)}


def connect(address: str):
    """The `ray` module, connected: a local Ray instance (`local`) or the cluster at `address`
    (a Ray already initialised in this process, e.g. by a test, is used as it is)."""
    try:
        import ray
    except ImportError:
        raise missing_extra("--ray (Ray)", "ray") from None
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError) as error:
            raise NeuromasError(f"--ray {address}: cannot connect to a Ray cluster there ({error})") from None
    return ray


def evaluate_on_ray(
    config: RunConfig, address: str = "local", workers: int = 2, cpus_per_worker: int = 1,
    methods: Sequence[str | None] = (NETWORK,),
) -> tuple[dict[str | None, EvalResult], dict]:
    """Greedy accuracy on the eval split of the configured network (method None) and of
    baseline `methods`, each computed by the same `workers` actors (the model is loaded once
    per worker), and what the workers report (`model_dtype`, `workers`)."""
    ray = connect(address)
    task = load_task(config)
    count = len(task.examples(config.eval.split)[: config.eval.limit])
    size = config.eval.batch_size
    batches = [list(range(i, min(i + size, count))) for i in range(0, count, size)]
    actor = ray.remote(num_cpus=cpus_per_worker)(_EvalWorker)
    pool = [actor.remote(config.model_dump(mode="json"), cpus_per_worker) for _ in range(min(workers, len(batches)) or 1)]
    results = {}
    try:
        for method in methods:
            # Built (and GPTSwarm's edges learnt, on every worker at once): time the evaluation only.
            info = max(ray.get([worker.describe.remote(method) for worker in pool]), key=lambda i: i["fit_seconds"])
            start = time.perf_counter()
            # Batch b goes to worker b mod W; ray.get keeps the order, so traces come back in question order.
            pending = [pool[b % len(pool)].run.remote(batch, method) for b, batch in enumerate(batches)]
            traces = [trace for result in ray.get(pending) for trace in result]
            results[method] = summarize(task.name, config.eval.split, traces, info["calls_per_pass"],
                                        time.perf_counter() - start)
            results[method].fit_seconds = info["fit_seconds"]
    finally:
        for worker in pool:
            ray.kill(worker)
    return results, {"model_dtype": info["model_dtype"], "workers": len(pool)}


# training rollouts ----------------------------------------------------------------------------
class _RolloutWorker:
    """Holds the base model and a copy of a network's adapters; samples the micro-batches the
    driver sends, with the adapters of the version it last received."""

    def __init__(self, model: dict, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.base = from_config(ModelConfig.model_validate(model))
        self.backend = None  # the base backend with the network's adapters, from the first `load`
        self.holds: tuple | None = None  # (adapter names, adapter config) that backend runs
        self.version: int | None = None

    def load(self, version: int, adapter_config: dict, tensors: dict[str, dict]) -> int:
        """Take the adapters of `version`: adapter name -> its LoRA tensors (`adapter_state`)."""
        holds = (tuple(tensors), AdapterConfig.model_validate(adapter_config))
        if holds != self.holds:  # the first load, or a growth changed the adapters: fresh ones on the one model
            self.version, self.backend = None, None  # the old adapters leave the model with their backend (lora.py)
            self.backend = self.base.with_adapters(list(tensors), holds[1])
            self.holds = holds
        for name, state in tensors.items():
            self.backend.load_adapter_state(name, state)
        self.version = version
        return version

    def generate(self, version: int, prompts: list[list[int]], requests: list[GenerationRequest],
                 seed: int) -> list[Generation]:
        if version != self.version:
            raise NeuromasError(f"a rollout worker holds the adapters of version {self.version} and was asked to "
                                f"sample with version {version}: a stale adapter never samples")
        return self.backend.generate_batch(prompts, requests, seed)


class RolloutWorkers:
    """`workers` Ray actors that sample a trainer's rollouts (`Trainer(..., rollout_workers=...)`),
    each with its own copy of the base model `model`, `cpus_per_worker` CPUs and as many threads.
    `dtype`: the driver's model dtype (`build.model_dtype`), so that a worker on another
    machine computes what the driver would even under `model.dtype: auto`.
    """

    def __init__(self, model: ModelConfig, address: str = "local", workers: int = 2, cpus_per_worker: int = 1,
                 dtype: str | None = None):
        self.ray = connect(address)
        model = model.model_copy(update={"dtype": dtype}) if dtype else model
        actor = self.ray.remote(num_cpus=cpus_per_worker)(_RolloutWorker)
        self.pool = [actor.remote(model.model_dump(mode="json"), cpus_per_worker) for _ in range(workers)]
        self.version: int | None = None  # of the adapters every worker holds

    def sync(self, net: Network, version: int) -> None:
        """Send every worker the network's adapters as they are now, as `version`."""
        backend = net.backend
        tensors = {name: backend.adapter_state(name) for name in dict.fromkeys(net.adapters.values())}
        shared = self.ray.put(tensors)  # one copy in the object store, whatever the number of workers
        adapters = net.config.adapters.model_dump(mode="json")
        self._get([worker.load.remote(version, adapters, shared) for worker in self.pool])
        self.version = version

    def backend(self, net: Network, version: int) -> _RayRolloutBackend:
        """A backend for `Network.forward(backend=...)` that samples on the workers with `version`."""
        return _RayRolloutBackend(self, net.backend, version)

    def close(self) -> None:
        for worker in self.pool:
            self.ray.kill(worker)
        self.pool = []

    def _get(self, pending: list):
        """`ray.get`, a worker's NeuromasError raised as itself (one line in the CLI)."""
        try:
            return self.ray.get(pending)
        except self.ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, NeuromasError):
                raise error.cause from None
            raise


class _RayRolloutBackend:
    """Plans a layer's micro-batches here (the driver's tokenizer and `model.max_batch_rows`,
    as `HFBackend.generate` does) and samples them on the workers, micro-batch k on worker k mod W."""

    def __init__(self, workers: RolloutWorkers, local, version: int):
        self.workers, self.local, self.version = workers, local, version

    def generate(self, requests: list[GenerationRequest], seed: int = 0) -> list[Generation]:
        batches = self.local.micro_batches(requests, seed)
        pool = self.workers.pool
        pending = [pool[k % len(pool)].generate.remote(self.version, prompts, [requests[i] for i in rows], batch_seed)
                   for k, (rows, prompts, batch_seed) in enumerate(batches)]
        results: list[Generation | None] = [None] * len(requests)
        for (rows, _, _), outputs in zip(batches, self.workers._get(pending)):
            for i, output in zip(rows, outputs):
                results[i] = output
        return results
