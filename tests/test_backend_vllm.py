"""The vllm backend without vLLM or a GPU: its settings, adapter bookkeeping and errors."""

import importlib.util

import pytest

from neuromas.backends.base import GenerationRequest
from neuromas.backends.vllm import AdapterRegistry, VLLMBackend, sampling_settings
from neuromas.config import ModelConfig, TrainConfig
from neuromas.errors import NeuromasError
from neuromas.network import Network


def test_sampling_settings_carry_each_request_own_budget_temperature_and_seed():
    request = GenerationRequest([{"role": "user", "content": "hi"}], "L1N1", 24, 0.7, 0.9)
    assert sampling_settings(request, 5) == {"n": 1, "max_tokens": 24, "temperature": 0.7, "top_p": 0.9,
                                            "seed": 5, "logprobs": 0, "include_stop_str_in_output": True}


def test_every_sync_gives_adapters_new_ids_so_vllm_cannot_serve_stale_weights(tmp_path):
    for name in ["L1N1", "L2N1"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text("{}")
    registry = AdapterRegistry()
    registry.load(tmp_path)
    first = dict(registry.ids)
    registry.load(tmp_path)
    assert set(first) == {"L1N1", "L2N1"} and registry.paths["L1N1"] == str(tmp_path / "L1N1")
    assert not set(first.values()) & set(registry.ids.values())  # fresh ids, never reused
    assert registry.request(None) is None
    with pytest.raises(NeuromasError, match="adapter L3N1 was never loaded"):
        registry.request("L3N1")


def test_a_folder_without_adapters_is_one_line(tmp_path):
    with pytest.raises(NeuromasError, match="no PEFT adapters here"):
        AdapterRegistry().load(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_backend_and_vllm_rollouts_fail_with_one_line():
    with pytest.raises(NeuromasError, match=r"vllm .*needs the optional extra \[vllm\]"):
        VLLMBackend.from_config(ModelConfig(name="Qwen/Qwen3-0.6B", backend="vllm"))
    with pytest.raises(NeuromasError, match=r"vllm .*needs the optional extra \[vllm\]"):
        Network([1], model=ModelConfig(name="Qwen/Qwen3-0.6B", backend="vllm"))(["1+1?"])
    from neuromas import tasks
    from neuromas.rl.trainer import Trainer

    with pytest.raises(NeuromasError, match=r"vllm .*needs the optional extra \[vllm\]"):  # before any model is loaded
        Trainer(Network([1]), tasks.load("arith", operands=2, digits=2), TrainConfig(steps=1, rollout_backend="vllm"))
