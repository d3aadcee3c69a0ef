import pytest

from neuromas.backends.hf import HFBackend
from neuromas.config import ModelConfig


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
