"""The default backend: transformers (+ PEFT adapters), on CPU or GPU.

We write the sampling loop ourselves (about 80 lines) instead of calling `model.generate`,
because a network layer is a batch that `generate` cannot express in one call:

- every row has its own token budget, temperature and top-p (layers may override them, and a
  batch may mix layers of several networks);
- every row may use a different node adapter (PEFT's mixed-adapter `adapter_names`);
- training needs the log-prob of each sampled token, which `generate` only gives by keeping
  full-vocabulary scores for every step (~12 MB per step at 64 rows), while here it is one
  gather per step;
- rows that finish early leave the batch (their KV cache is dropped), so one long message does
  not make the whole batch pay for its length;
- the KV cache is written in place into buffers allocated once per batch (`kvcache.py`), not
  grown by concatenation, which copied the whole cache at every step.

The loop is checked against `model.generate` under greedy decoding in the tests.
"""

from __future__ import annotations

import inspect
import weakref
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from neuromas.backends import lora
from neuromas.backends.base import Generation, GenerationRequest
from neuromas.backends.kvcache import InPlaceCache
from neuromas.config import AdapterConfig, ModelConfig
from neuromas.models import load_model
from neuromas.seeds import derive_seed

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch
_PRUNE_FRACTION = 0.25  # drop finished rows once this share of the batch is done
_MIN_SHARED_TOKENS = 8  # below this a shared prefix saves less than its extra forward pass costs


class HFBackend:
    """Generates node messages with one shared transformers model.

    A backend from `from_config` runs the base model; `with_adapters` gives a backend that also
    runs a network's LoRA adapters, added to the same model (lora.py: the model is never copied,
    and networks never see each other's adapters).
    """

    def __init__(self, model, tokenizer, max_batch_rows: int = 64, chat_template_kwargs: dict | None = None,
                 adapter_keys: dict[str, str] | None = None):
        self.model = model  # the base model, or the PeftModel over it when this backend runs adapters
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.chat_template_kwargs = chat_template_kwargs or {}
        self.adapter_keys = adapter_keys or {}  # adapter name (L1N1) -> its PEFT name on the shared model
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        # transformers 5.x renamed the cache argument; support both spellings.
        forward = getattr(model, "get_base_model", lambda: model)().forward
        self._cache_arg = "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
        self.stop_ids = torch.tensor(sorted({tokenizer.eos_token_id, *[e for e in eos if e is not None]}))

    @classmethod
    def from_config(cls, config: ModelConfig) -> HFBackend:
        model, tokenizer = load_model(config.name, config.gguf_file, config.dtype, config.device)
        return cls(model, tokenizer, config.max_batch_rows, config.chat_template_kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False, **self.chat_template_kwargs
        )
        return list(ids)

    def generate(self, requests: list[GenerationRequest], seed: int = 0) -> list[Generation]:
        if self.adapter_keys:
            lora.remove_released(self.model)
        results: list[Generation | None] = [None] * len(requests)
        for rows, prompts, batch_seed in self.micro_batches(requests, seed):
            for i, output in zip(rows, self.generate_batch(prompts, [requests[i] for i in rows], batch_seed)):
                results[i] = output
        return results

    def micro_batches(self, requests: list[GenerationRequest], seed: int) -> list[tuple[list[int], list[list[int]], int]]:
        """How `generate` splits a call: (rows, their prompt ids, the micro-batch's seed) per micro-batch.

        Length-sorted micro-batches of `max_batch_rows` waste the least compute on padding. Each
        one samples from a generator of its own, so it is computed the same wherever it runs:
        Ray rollout workers (distributed.py) run these very micro-batches and give this process's
        rollouts bit for bit. The first keeps the call's seed (a call of one micro-batch samples
        what it always did); micro-batch k > 0 draws from `derive_seed(seed, "micro-batch", k)`.
        """
        prompts = [self.encode(r.messages) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))
        chunks = [order[start : start + self.max_batch_rows] for start in range(0, len(order), self.max_batch_rows)]
        return [(rows, [prompts[i] for i in rows], seed if k == 0 else derive_seed(seed, "micro-batch", k))
                for k, rows in enumerate(chunks)]

    def generate_batch(self, prompts: list[list[int]], requests: list[GenerationRequest], seed: int) -> list[Generation]:
        """One micro-batch of `micro_batches`: prompt ids and their requests, sampled from `seed`."""
        return self._generate_batch(prompts, requests, torch.Generator(device=self.device).manual_seed(seed))

    def _adapter_kwargs(self, requests: list[GenerationRequest]) -> dict:
        return self.adapter_kwargs([r.adapter for r in requests])

    def adapter_kwargs(self, adapters: list[str | None]) -> dict:
        """PEFT's mixed-batch argument: each row's adapter by its PEFT name (`__base__`: none)."""
        if not self.adapter_keys:
            return {}
        return {"adapter_names": [self.adapter_keys[a] if a else BASE_ADAPTER for a in adapters]}

    # adapters: owned by the backend, named as the network names them ------------------------
    def with_adapters(self, names: list[str], config: AdapterConfig, seed: int = 0) -> HFBackend:
        """A backend running fresh LoRA adapters `names` (equal to the base model until trained)
        besides the base model, on this backend's base model (not a copy). The adapters are
        deleted from the model at its next use after the returned backend is garbage collected."""
        base = self.model.get_base_model() if self.adapter_keys else self.model
        peft, keys = lora.add_adapters(base, names, config, seed)
        backend = HFBackend(peft, self.tokenizer, self.max_batch_rows, self.chat_template_kwargs, keys)
        weakref.finalize(backend, lora.release_adapters, peft, list(keys.values())).atexit = False
        return backend

    def adapter_parameters(self, name: str) -> list[torch.nn.Parameter]:
        return lora.parameters(self.model, self.adapter_keys[name])

    def named_adapter_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        """This backend's adapters' parameters, PEFT's names with each adapter's own name in them."""
        return lora.named_parameters(self.model, self.adapter_keys)

    def save_adapters(self, directory: Path) -> None:
        """Every adapter in PEFT's format: `<directory>/<name>/adapter_model.safetensors` and its config."""
        lora.save(self.model, self.adapter_keys, directory)

    def load_adapter(self, name: str, file: Path) -> list[str]:
        """Load adapter `name`'s saved weights; return saved LoRA keys it has no place for (a mismatch)."""
        return lora.load(self.model, self.adapter_keys[name], file)

    def adapter_state(self, name: str) -> dict[str, torch.Tensor]:
        """Adapter `name`'s LoRA tensors (CPU copies) to send elsewhere: Ray rollout workers."""
        return lora.adapter_state(self.model, self.adapter_keys[name])

    def load_adapter_state(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        """Give adapter `name` the tensors `adapter_state` returned (in any process)."""
        lora.load_adapter_state(self.model, self.adapter_keys[name], tensors)

    def copy_adapter(self, name: str, source: HFBackend, source_name: str) -> None:
        """Give adapter `name` the weights of `source`'s adapter `source_name`."""
        lora.copy(source.model, source.adapter_keys[source_name], self.model, self.adapter_keys[name])

    @torch.inference_mode()
    def _generate_batch(
        self, prompts: list[list[int]], requests: list[GenerationRequest], generator: torch.Generator
    ) -> list[Generation]:
        device, rows = self.device, len(prompts)
        budget = torch.tensor([r.max_new_tokens for r in requests], device=device)
        temperature = torch.tensor([r.temperature for r in requests], device=device, dtype=torch.float32)
        top_p = torch.tensor([r.top_p for r in requests], device=device, dtype=torch.float32)
        stop_ids = self.stop_ids.to(device)

        tokens_out: list[list[int]] = [[] for _ in range(rows)]
        logprobs_out: list[list[float]] = [[] for _ in range(rows)]
        finished_out = [False] * rows
        active = torch.arange(rows, device=device)  # original row of each row still in the batch
        adapter_kwargs = self._adapter_kwargs(requests)
        # Rows that share the start of a prompt (a node's G samples of one input: the same prompt
        # in the first layer, the same header and input before different messages later; a node's
        # questions in an evaluation: the same header) prefill the shared prefix once; its KV
        # cache is copied to every row, which then prefills only its own suffix. Rows of
        # different adapters never share (`_prefix_groups`).
        group_of, prefix_len = _prefix_groups(prompts, [r.adapter for r in requests])
        share = len(prefix_len) < rows and min(prefix_len) > 0
        columns = (max(prefix_len) + max(len(p) - prefix_len[g] for p, g in zip(prompts, group_of)) if share
                   else max(len(p) for p in prompts))  # the prompt part of the KV cache, padding included
        cache = InPlaceCache(self.model.config, capacity=columns + int(budget.max()))
        if share:
            prefix_mask, prefix_width, expand = _prefill_prefixes(self, prompts, [r.adapter for r in requests], group_of,
                                                                  prefix_len, cache)
            input_ids, suffix_mask, width = _left_padded(self, [p[prefix_len[g]:] for p, g in zip(prompts, group_of)])
            input_ids = input_ids.to(device)
            attention_mask = torch.cat([prefix_mask[expand], suffix_mask.to(device)], dim=1)
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            new_positions = position_ids[:, prefix_width:]
        else:
            input_ids, attention_mask, width = _left_padded(self, prompts)
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            position_ids = new_positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        # Only the last position's logits are needed. An index *tensor* makes transformers gather
        # that position into a contiguous tensor; `logits_to_keep=1` slices a strided view, which
        # torch's CPU bf16 linear turns into a batch x hidden x vocab copy of the LM head
        # (3.4 GB at 64 rows) -- measured, see the commit that introduced this line.
        last = torch.tensor([width - 1], device=device)
        logits = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=new_positions,
            use_cache=True, logits_to_keep=last, **{self._cache_arg: cache}, **adapter_kwargs,
        ).logits[:, -1].float()
        alive = torch.ones(rows, dtype=torch.bool, device=device)  # per batch row: still writing
        step = 0
        while True:
            tokens, logprobs = sample_tokens(logits, temperature[active], top_p[active], generator)
            stopped = torch.isin(tokens, stop_ids) & alive
            rows_now = zip(active.tolist(), tokens.tolist(), logprobs.tolist(), alive.tolist(), stopped.tolist())
            for row, token, logprob, is_alive, stop in rows_now:
                if is_alive:  # the stop token is part of the action: stopping is learned too
                    tokens_out[row].append(token)
                    logprobs_out[row].append(logprob)
                    finished_out[row] = stop
            step += 1
            alive &= ~stopped & (step < budget[active])
            if not bool(alive.any()):
                break
            # Finished rows ride along (their tokens ignored) until enough pile up to be worth
            # dropping: selecting rows copies the whole KV cache.
            if (~alive).float().mean() >= _PRUNE_FRACTION:
                keep = alive.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                active, tokens, alive = active[keep], tokens[keep], alive[keep]
                attention_mask, position_ids = attention_mask[keep], position_ids[keep]
                if adapter_kwargs:
                    adapter_kwargs = {"adapter_names": [adapter_kwargs["adapter_names"][i] for i in keep.tolist()]}
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], dim=1)
            position_ids = position_ids[:, -1:] + 1
            logits = self.model(
                input_ids=tokens[:, None], attention_mask=attention_mask, position_ids=position_ids,
                use_cache=True, **{self._cache_arg: cache}, **adapter_kwargs,
            ).logits[:, -1].float()

        return [
            Generation(
                text=self.tokenizer.decode(tokens_out[row][: len(tokens_out[row]) - finished_out[row]],
                                           skip_special_tokens=True),
                token_ids=tokens_out[row],
                logprobs=logprobs_out[row],
                prompt_ids=prompts[row],
                finished=finished_out[row],
            )
            for row in range(rows)
        ]


def token_logprobs(
    backend: HFBackend,
    prompts: list[list[int]],
    completions: list[list[int]],
    adapters: list[str | None],
    temperatures: list[float],
    share_prompts: bool = True,
    share_prefixes: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of given completions under the current adapters, differentiably.

    Returns (logprobs, mask), both (n, T) with T the longest completion; mask is 1 on real
    tokens. Only the T completion positions' logits are computed, never the prompt's
    full-vocabulary logits. Temperatures match sampling: the policy is softmax(logits / T)
    (T = 0 counts as 1).

    Rows that share an adapter and their prompt (a first-layer node's G samples of one input)
    run that prompt once. Its KV cache, still attached to the graph, is copied to each row,
    and the row's completion runs on top of it, so every row's gradient flows back through the
    one prompt forward. With `share_prefixes`, rows that share the start of their prompt (a later
    node's samples of one input: the same header and input, different messages) share that
    prefix the same way: half the prompt tokens on BBH Navigate, an update 1.37x faster in float32
    and 1.16x in bf16 (benchmarks/prefix_sharing.py). The copy's backward accumulates with
    `index_put_`, whose CPU kernel adds in thread order unless torch's deterministic kernels are
    on; the trainer turns them on for its update (`update_kernels`), or two runs of one
    config part in the last bits of their gradients. Every mode equals running every row in full
    (a test checks values and gradients); `share_prompts=False` does that.
    """
    scale = torch.tensor([t if t > 0 else 1.0 for t in temperatures], device=backend.device).view(-1, 1, 1)
    group_of, prefix_len = _prefix_groups(prompts, adapters, whole=not share_prefixes) if share_prompts else ([], [])
    if share_prompts and len(prefix_len) < len(prompts) and min(prefix_len) > 0:
        logits, targets, mask = _prefix_shared_logits(backend, prompts, completions, adapters, group_of, prefix_len)
    else:
        logits, targets, mask = _full_logits(backend, prompts, completions, adapters)
    logits = logits.float() / scale
    # log_softmax at the targets without a second (n, T, V) tensor: gather - logsumexp
    logprobs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(dim=-1)
    return logprobs * mask, mask


def _prefix_groups(prompts: list[list[int]], adapters: list[str | None], whole: bool = False) -> tuple[list[int], list[int]]:
    """(each row's group, each group's shared prefix length) for rows that can share a prefix.

    Rows sorted by (adapter, prompt) join the group before them when they have its adapter and
    joining saves prompt tokens: a group of k rows sharing p tokens prefills (k - 1) p fewer, so
    a row sharing s < p tokens with it joins when k s >= (k - 1) p (`whole`: only an equal
    prompt joins). Sorted, a row shares the most with the row just before it, so one pass finds
    the groups. This is why it is not "at least half the prompt": with a one-line header
    (`network.header: short`), questions share the chat template and header but not half their
    prompt, and every row of an evaluation prefilled in full. A group's prefix is its rows'
    longest common prefix, less at least one token, so every row keeps a suffix whose last
    position predicts its first completion token.
    """
    order = sorted(range(len(prompts)), key=lambda i: (adapters[i] or "", prompts[i]))
    group_of, prefix_len, size = [0] * len(prompts), [], 0
    head = None
    for i in order:
        prompt = prompts[i]
        if head is not None and adapters[i] == adapters[head]:
            shared = min(_common_prefix(prompts[head], prompt, prefix_len[-1]), len(prompt) - 1)
            if whole:
                joins = prompt == prompts[head]
            else:  # joining saves prompt tokens
                joins = shared >= _MIN_SHARED_TOKENS and size * shared >= (size - 1) * prefix_len[-1]
            if joins:
                prefix_len[-1] = shared
                group_of[i], size = len(prefix_len) - 1, size + 1
                continue
        head, size = i, 1
        prefix_len.append(len(prompt) - 1)
        group_of[i] = len(prefix_len) - 1
    return group_of, prefix_len


def _common_prefix(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


def _left_padded(backend: HFBackend, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(ids, attention mask, width): prompts left-padded so they all end at column `width`."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), backend.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) : width] = torch.tensor(prompt)
        mask[row, width - len(prompt) : width] = 1
    return ids, mask, width


def _right_padded(backend: HFBackend, completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(max(len(c) for c in completions), 1)
    ids = torch.full((len(completions), length), backend.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(completions), length), dtype=torch.long)
    for row, completion in enumerate(completions):
        ids[row, : len(completion)] = torch.tensor(completion, dtype=torch.long)
        mask[row, : len(completion)] = 1
    return ids, mask


def _adapter_names(backend: HFBackend, adapters: list[str | None]) -> dict:
    return backend.adapter_kwargs(adapters)


def _full_logits(backend, prompts, completions, adapters):
    """Every row's prompt + completion in one forward; logits at the completion positions."""
    device = backend.device
    ids, mask, width = _left_padded(backend, prompts)
    targets, target_mask = _right_padded(backend, completions)
    input_ids = torch.cat([ids, targets], dim=1).to(device)
    attention_mask = torch.cat([mask, target_mask], dim=1).to(device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    # An index tensor, not an int: see `_generate_batch` on strided LM-head copies.
    keep = torch.arange(width - 1, width + targets.shape[1] - 1, device=device)
    logits = backend.model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        logits_to_keep=keep, use_cache=False, **_adapter_names(backend, adapters),
    ).logits  # (n, T, V)
    return logits, targets.to(device), target_mask.to(device).float()


def _prefill_prefixes(backend, prompts, adapters, group_of, prefix_len, cache):
    """Run each group's prefix once into `cache`, then copy it to every row of the group.

    Returns (prefix attention mask, prefix width, row -> group index). The copy is indexing, so
    under autograd every row's gradient flows back into its group's one prefix forward.
    """
    device = backend.device
    heads: dict[int, int] = {}
    for row, group in enumerate(group_of):
        heads.setdefault(group, row)
    ids, prefix_mask, width = _left_padded(backend, [prompts[heads[g]][: prefix_len[g]] for g in range(len(heads))])
    ids, prefix_mask = ids.to(device), prefix_mask.to(device)
    backend.model(
        input_ids=ids, attention_mask=prefix_mask, position_ids=(prefix_mask.cumsum(-1) - 1).clamp(min=0),
        logits_to_keep=torch.tensor([width - 1], device=device), use_cache=True,
        **{backend._cache_arg: cache}, **_adapter_names(backend, [adapters[heads[g]] for g in range(len(heads))]),
    )
    expand = torch.tensor(group_of, device=device)
    cache.batch_select_indices(expand)
    return prefix_mask, width, expand


def _prefix_shared_logits(backend, prompts, completions, adapters, group_of, prefix_len):
    """Each group's prefix once (its cache kept in the graph), then every row's suffix and completion on it."""
    device = backend.device
    cache = DynamicCache(config=backend.model.config)
    prefix_mask, width, expand = _prefill_prefixes(backend, prompts, adapters, group_of, prefix_len, cache)
    suffix, suffix_mask, suffix_width = _left_padded(backend, [p[prefix_len[g]:] for p, g in zip(prompts, group_of)])
    targets, target_mask = _right_padded(backend, completions)
    suffix, suffix_mask, targets, target_mask = (t.to(device) for t in (suffix, suffix_mask, targets, target_mask))
    # Each row reads: [prefix, left-padded][suffix, left-padded][completion but its last token]
    new_mask = torch.cat([suffix_mask, target_mask[:, :-1]], dim=1)
    attention_mask = torch.cat([prefix_mask[expand], new_mask], dim=1)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, width:]
    keep = torch.arange(suffix_width - 1, suffix_width - 1 + targets.shape[1], device=device)
    logits = backend.model(
        input_ids=torch.cat([suffix, targets[:, :-1]], dim=1), attention_mask=attention_mask, position_ids=position_ids,
        logits_to_keep=keep, use_cache=True, **{backend._cache_arg: cache}, **_adapter_names(backend, adapters),
    ).logits  # (n, T, V)
    return logits, targets, target_mask.float()


def sample_tokens(
    logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row; return (tokens, their log-probs).

    logits (n, V) float32; temperature, top_p (n,). Rows with temperature 0 are greedy.
    The log-prob is under the temperature-scaled distribution *before* top-p truncation: that is
    the policy a trainer recomputes (logits / T), so ratios and KL compare like with like.
    Greedy rows report the log-prob at temperature 1.
    """
    greedy = temperature == 0
    scaled = logits / torch.where(greedy, 1.0, temperature).unsqueeze(1)
    logp = F.log_softmax(scaled, dim=-1)  # (n, V)
    tokens = logp.argmax(dim=-1)
    if not bool(greedy.all()):
        probs = logp.exp()
        if bool((top_p < 1).any()):
            probs = _top_p_filter(probs, top_p)
        # Inverse-CDF sampling: one uniform per row and a binary search in the cumulative
        # distribution. On CPU, torch.multinomial (27 ms) and the exponential race (49 ms, one
        # random number per vocabulary entry) cost more per step at 64 rows x 49k than this does.
        cdf = probs.cumsum(dim=-1)
        u = torch.rand((probs.shape[0], 1), generator=generator, device=probs.device) * cdf[:, -1:]
        sampled = torch.searchsorted(cdf, u).squeeze(1).clamp(max=probs.shape[1] - 1)
        tokens = torch.where(greedy, tokens, sampled)
    return tokens, logp.gather(1, tokens.unsqueeze(1)).squeeze(1)


def _top_p_filter(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero out the tail beyond each row's nucleus mass (the most likely token always stays)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p.unsqueeze(1), 0.0)
    return torch.zeros_like(probs).scatter(1, order, sorted_probs)
