import os

import pytest
import torch

from neuromas.backends.hf import HFBackend
from neuromas.config import ModelConfig

# Test modules that start a local Ray cluster: under pytest-xdist they share one worker, so two
# clusters never compete for the two cores.
RAY_MODULES = {"test_distributed.py", "test_rollout_workers.py"}


def pytest_configure(config):
    """Under pytest-xdist (the default: `-n 2` in pyproject.toml), the cores are shared out: each
    worker and every process it starts (a `neuromas` command, a server) gets cores / workers
    threads, since two torch processes with two threads each on two cores thrash."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        threads = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))
        os.environ["OMP_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


def pytest_collection_modifyitems(config, items):
    """One xdist group per test module (`--dist loadgroup`): a module's fixtures are built once,
    by the one worker that runs it; the Ray modules form one group."""
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("ray" if name in RAY_MODULES else name))


@pytest.fixture(scope="session")
def backend32() -> HFBackend:
    """The real embedded model in float32, loaded once for the whole session.

    float32 because batched and unbatched greedy decoding only agree exactly when padding cannot
    change a rounding: in bf16 a different batch shape flips a near-tie now and then.
    """
    return HFBackend.from_config(ModelConfig(dtype="float32", max_batch_rows=16))



@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """A real llama.cpp server (`python -m llama_cpp.server`) on the embedded GGUF; its /v1 URL.

    Started once per session on a free localhost port and ended by its PID.
    """
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by the README's test command")
    from neuromas.localserver import llama_cpp_server

    with llama_cpp_server(log=tmp_path_factory.mktemp("llama") / "server.log") as url:
        yield url
