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
