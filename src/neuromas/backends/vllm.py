"""The `vllm` backend (GPU only): a layer's batch through vLLM, one LoRA adapter per node.

vLLM serves many LoRA adapters over one base model in a single batch (multi-LoRA), which is
exactly a network layer: every request names its node's adapter. Two uses:

- `model.backend: vllm`: inference (evaluation, serving) of an untrained network, or of a
  trained one after `load_adapters(run_dir/final/adapters)`.
- `train.rollout_backend: vllm`: the trainer samples rollouts with vLLM and computes the loss
  with transformers + PEFT as usual. After every optimizer step it saves the adapters and calls
  `load_adapters` on the new copy; vLLM caches adapters by integer id, so each sync gets fresh
  ids and the next rollouts sample from the updated adapters (the silent bug of rollouts from
  stale weights is what the version counter prevents).

Everything here that needs neither vLLM nor a GPU (sampling settings, adapter bookkeeping, the
errors) is plain Python and tested on CPU; the engine itself is only built in `from_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from neuromas.backends.base import Generation, GenerationRequest
from neuromas.config import ModelConfig
from neuromas.errors import NeuromasError, missing_extra
from neuromas.seeds import derive_seed


def sampling_settings(request: GenerationRequest, seed: int) -> dict:
    """vLLM `SamplingParams` arguments for one request: its budget, temperature and top-p, a
    per-request seed, and the log-prob of each sampled token (`logprobs=0`).

    `include_stop_str_in_output` keeps the stop token in `token_ids` (vLLM drops it by default),
    because the trainer learns stopping from it as hf.py's messages do; the text still skips it
    as a special token."""
    return {"n": 1, "max_tokens": request.max_new_tokens, "temperature": request.temperature,
            "top_p": request.top_p, "seed": seed, "logprobs": 0, "include_stop_str_in_output": True}


@dataclass
class AdapterRegistry:
    """Which saved adapter folder each adapter name runs from, under which vLLM integer id.

    Ids are never reused: a sync gives every adapter a new id, because vLLM keeps a loaded
    adapter by id and would go on sampling from the old weights under an old one.
    """

    paths: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    next_id: int = 1

    def load(self, directory: str | Path) -> None:
        directory = Path(directory)
        found = sorted(p for p in directory.iterdir() if (p / "adapter_config.json").is_file()) if directory.is_dir() else []
        if not found:
            raise NeuromasError(f"{directory}: no PEFT adapters here (expected <name>/adapter_config.json)")
        for folder in found:
            self.paths[folder.name] = str(folder)
            self.ids[folder.name] = self.next_id
            self.next_id += 1

    def request(self, name: str | None):
        """The vLLM `LoRARequest` for an adapter name (None: the base model)."""
        if name is None:
            return None
        if name not in self.paths:
            raise NeuromasError(f"vllm backend: adapter {name} was never loaded; call load_adapters on its folder")
        from vllm.lora.request import LoRARequest

        return LoRARequest(name, self.ids[name], self.paths[name])


class VLLMBackend:
    """Generates a layer's messages with one vLLM engine and a LoRA per node."""

    def __init__(self, llm, tokenizer, chat_template_kwargs: dict | None = None):
        self.llm, self.tokenizer = llm, tokenizer
        self.chat_template_kwargs = chat_template_kwargs or {}
        self.adapters = AdapterRegistry()

    @classmethod
    def from_config(cls, config: ModelConfig, max_lora_rank: int = 64, max_loras: int = 16) -> VLLMBackend:
        try:
            import torch
            from vllm import LLM
        except ImportError:
            raise missing_extra("model.backend vllm (vLLM, GPU only; or use backend hf or openai)", "vllm") from None
        if not torch.cuda.is_available():
            raise NeuromasError("model.backend vllm needs a CUDA GPU and none is visible; use backend hf or openai")
        if config.name is None or config.name.endswith(".gguf"):
            raise NeuromasError("model.backend vllm needs a transformers model (hub id or directory) in model.name, "
                                "not the embedded GGUF")
        dtype = "auto" if config.dtype == "auto" else config.dtype
        llm = LLM(model=config.name, dtype=dtype, enable_lora=True, max_lora_rank=max_lora_rank,
                  max_loras=max_loras, seed=0)
        return cls(llm, llm.get_tokenizer(), config.chat_template_kwargs)

    def load_adapters(self, directory: str | Path) -> None:
        """Run adapters from `directory/<name>/` (PEFT format, as `Network.save` writes them)."""
        self.adapters.load(directory)

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                       return_dict=False, **self.chat_template_kwargs))

    def generate(self, requests: list[GenerationRequest], seed: int = 0) -> list[Generation]:
        from vllm import SamplingParams

        prompts = [self.encode(r.messages) for r in requests]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompts],
            [SamplingParams(**sampling_settings(r, derive_seed(seed, "request", i) % 2**31)) for i, r in enumerate(requests)],
            lora_request=[self.adapters.request(r.adapter) for r in requests],
            use_tqdm=False,
        )
        results = []
        for ids, output in zip(prompts, outputs):
            out = output.outputs[0]
            tokens = list(out.token_ids)  # as hf.py: a finished message ends with its stop token
            logprobs = [step[token].logprob for step, token in zip(out.logprobs or [], tokens)]
            results.append(Generation(out.text, tokens, logprobs, ids, out.finish_reason != "length"))
        return results
