"""Evaluation sharded across Ray workers (`neuromas eval CONFIG --ray local|ADDRESS`).

Each worker is a Ray actor that builds its own task and network (its own backend, its own copy
of the model, or its own client to a server) from the run's resolved config, then answers whole
evaluation batches. Batches, not single questions, are the unit of work so that each one is
computed exactly as the single-process `evaluate` computes it (same rows, same padding): under
greedy decoding the sharded run gives the single-process run's answers, which the tests check.

Ray is the only scale-out mechanism: no home-made process pools or RPC (DESIGN.md section 3).
`local` starts a Ray instance on this machine; any other value is a cluster address for
`ray.init` (e.g. `ray://head:10001`), whose workers must have neuromas installed.
"""

from __future__ import annotations

import time
from typing import Sequence

from neuromas import baselines
from neuromas.build import build_network, load_task, model_dtype
from neuromas.config import RunConfig
from neuromas.errors import NeuromasError, missing_extra
from neuromas.eval import EvalResult, summarize

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


def evaluate_on_ray(
    config: RunConfig, address: str = "local", workers: int = 2, cpus_per_worker: int = 1,
    methods: Sequence[str | None] = (NETWORK,),
) -> tuple[dict[str | None, EvalResult], dict]:
    """Greedy accuracy on the eval split of the configured network (method None) and of
    baseline `methods`, each computed by the same `workers` actors (the model is loaded once
    per worker), and what the workers report (`model_dtype`, `workers`)."""
    try:
        import ray
    except ImportError:
        raise missing_extra("--ray (Ray)", "ray") from None
    task = load_task(config)
    count = len(task.examples(config.eval.split)[: config.eval.limit])
    size = config.eval.batch_size
    batches = [list(range(i, min(i + size, count))) for i in range(0, count, size)]
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError) as error:
            raise NeuromasError(f"--ray {address}: cannot connect to a Ray cluster there ({error})") from None
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
