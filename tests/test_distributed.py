"""Evaluation sharded over a real local Ray with 2 workers equals the single-process run."""

import pytest

from neuromas import baselines
from neuromas.build import load_task
from neuromas.configfile import parse_config
from neuromas.eval import evaluate
from neuromas.network import Network

ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_two_ray_workers_give_the_single_process_answers(local_ray, backend32):
    from neuromas.distributed import evaluate_on_ray

    config = parse_config({
        "model": {"dtype": "float32", "max_batch_rows": 16},
        "network": {"layers": [2, 1], "generation": {"max_new_tokens": 10}},
        "task": {"name": "arith", "operands": 2, "digits": 1, "test_size": 32},
        "eval": {"limit": 8, "batch_size": 4},
    })
    task = load_task(config)
    single = evaluate(Network.from_config(config, backend=backend32), task,
                      limit=8, batch_size=4, progress=False)
    results, info = evaluate_on_ray(config, "local", workers=2, methods=[None, "direct"])  # network, a baseline
    sharded = results[None]
    assert info == {"model_dtype": "float32", "workers": 2}
    assert [t.example_id for t in sharded.traces] == [t.example_id for t in single.traces]
    for ours, theirs in zip(sharded.traces, single.traces):
        assert {k: m.text for k, m in ours.messages.items()} == {k: m.text for k, m in theirs.messages.items()}
    assert (sharded.n, sharded.acc, sharded.tokens_per_q) == (single.n, single.acc, single.tokens_per_q)
    direct = evaluate(baselines.load("direct", backend32, max_new_tokens=10), task, limit=8, batch_size=4, progress=False)
    assert [t.answer for t in results["direct"].traces] == [t.answer for t in direct.traces]
