"""benchmarks/flops.py's FLOP count against hand-computed values for a tiny model (no real model), and
train_speed's profile table against torch's own."""

import torch
from benchmarks.flops import ModelShape, forward_flops, matmul_peak, mfu, rollout_flops, unique_tokens, update_flops

# 2 layers, hidden 4, MLP 8, 2 query heads sharing 1 KV head of dim 2, vocabulary 10
TINY = ModelShape(layers=2, hidden=4, intermediate=8, heads=2, kv_heads=1, head_dim=2, vocab=10)


def test_parameter_counts_by_hand():
    # per layer q 4x4, k 4x2, v 4x2, o 4x4, gate 4x8, up 4x8, down 8x4 = 16+8+8+16+32+32+32 = 144
    assert TINY.linear_params == 2 * 144
    # rank 1 on q (4 in + 4 out) and v (4 in + 2 out), in both layers
    assert TINY.lora_params(1, ["q_proj", "v_proj"]) == 2 * (8 + 6)
    assert TINY.attention_pair_flops == 4 * 2 * 2 * 2  # layers x heads x head_dim x (QK^T + AV)
    assert TINY.head_flops == 2 * 4 * 10


def test_shape_from_a_transformers_config_matches_its_linear_modules():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=4, intermediate_size=8, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=2, vocab_size=10)
    assert ModelShape.from_config(config) == TINY
    model = LlamaForCausalLM(config)
    decoder = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
    assert TINY.linear_params == decoder


def test_unique_tokens_counts_a_shared_prefix_once_per_adapter():
    sequences = [("A", [1, 2, 3]), ("A", [1, 2, 4]), ("B", [1, 2, 3])]
    # A: the trie 1-2-{3,4} (4 tokens; keys 1+2+3, then 3 for the 4); B alone: 3 tokens, keys 1+2+3
    assert unique_tokens(sequences) == (4 + 3, 9 + 6)
    assert unique_tokens([(None, [7, 8]), (None, [7, 8])]) == (2, 3)  # the same sequence twice: once


def test_forward_and_update_flops_by_hand():
    # prompt [5, 6], completion [7, 8]: 3 tokens run (the last completion token is never read),
    # attending to 1 + 2 + 3 keys, logits at the 2 completion positions
    f = forward_flops(TINY, [(None, [5, 6], [7, 8])])
    assert (f.linear, f.adapter, f.attention, f.head) == (2 * 288 * 3, 0, 32 * 6, 80 * 2)
    assert rollout_flops(TINY, [(None, [5, 6], [7, 8])]) == 1728 + 192 + 160
    # forward + backward: 2x linear and head (input gradients only), 3x attention
    assert update_flops(TINY, [(None, [5, 6], [7, 8])]) == 2 * 1728 + 3 * 192 + 2 * 160
    # through an adapter of 28 parameters: 2 x 28 x 3 forward, 3x that with its weight gradient
    lora = TINY.lora_params(1, ["q_proj", "v_proj"])
    assert forward_flops(TINY, [("A", [5, 6], [7, 8])], lora).adapter == 2 * 28 * 3
    assert update_flops(TINY, [("A", [5, 6], [7, 8])], lora) == 2 * 1728 + 3 * 168 + 3 * 192 + 2 * 160
    assert update_flops(TINY, [(None, [5, 6], [7, 8])], epochs=2, extra_forwards=1) == 2 * 4352 + 2080


def test_rows_sharing_a_prompt_count_it_once():
    # [5, 6] then 7 (one token: nothing fed after the prompt) and [5, 6] then 8, 9: 5, 6, 8 run
    f = forward_flops(TINY, [("A", [5, 6], [7]), ("A", [5, 6], [8, 9])])
    assert f.linear == 2 * 288 * 3 and f.attention == 32 * (1 + 2 + 3) and f.head == 80 * 3


def test_mfu_and_a_measured_peak():
    assert mfu(100.0, 2.0, 25.0) == 2.0 and mfu(1.0, 0.0, 1.0) == 0.0
    assert matmul_peak("float32", size=64, repeats=1) > 0


def test_a_training_steps_flops_count_its_distinct_messages_and_the_rows_it_updated():
    """`CountingTrainer.step_flops` (benchmarks/train_speed.py) on a hand-made step, no model: a
    message two passes share counts once; the update counts only the rows with advantage != 0."""
    from types import SimpleNamespace

    import torch
    from benchmarks.train_speed import CountingTrainer

    from neuromas.config import NetworkConfig, TrainConfig
    from neuromas.rl.trainer import Rows, Trainer
    from neuromas.trace import NodeMessage

    shared = NodeMessage("L1N1", "", "", [7, 8], [0.0, 0.0], [5, 6])
    readouts = [NodeMessage("L2N1", "", "", [9], [0.0], [5, 6, 3]), NodeMessage("L2N1", "", "", [4], [0.0], [5, 6, 2])]
    traces = [SimpleNamespace(messages={"L1N1": shared, "L2N1": r}) for r in readouts]
    rows = Rows([[5, 6], [5, 6, 3], [5, 6, 2]], [[7, 8], [9], [4]], ["L1N1", "L2N1", "L2N1"], [1.0] * 3,
                torch.tensor([0.5, 0.0, -0.5]))
    config = TrainConfig()
    step = SimpleNamespace(net=SimpleNamespace(config=NetworkConfig(layers=[1, 1]), adapters={"L1N1": "L1N1", "L2N1": "L2N1"}),
                           traces=traces, rows=rows, config=config,
                           _needed=lambda r: Trainer._needed(SimpleNamespace(config=config), r))
    lora = TINY.lora_params(8, ["q_proj", "k_proj", "v_proj", "o_proj"])
    rollout, update = CountingTrainer.step_flops(step, TINY)
    messages = [("L1N1", [5, 6], [7, 8]), ("L2N1", [5, 6, 3], [9]), ("L2N1", [5, 6, 2], [4])]
    assert rollout == rollout_flops(TINY, messages, lora)
    assert update == update_flops(TINY, [messages[0], messages[2]], lora)  # the row with advantage 0 never ran


def test_profile_self_times_agree_with_torchs_own_table():
    """train_speed sums the profiler's raw events itself (key_averages runs out of memory on a
    full step); on a small profile its self times and calls equal torch's."""
    from benchmarks.train_speed import operator_table, self_times
    from torch.profiler import ProfilerActivity, profile

    a = torch.randn(128, 128)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            torch.nn.functional.linear(a, a).relu().sum()
    ours = self_times(prof.profiler.kineto_results.events())
    theirs = {e.key: e for e in prof.key_averages()}
    assert set(ours) == set(theirs)
    for name, (self_ns, calls) in ours.items():
        assert calls == theirs[name].count
        assert abs(self_ns / 1e3 - theirs[name].self_cpu_time_total) <= 1 + 1e-3 * self_ns / 1e3
    table = operator_table(ours, rows=2)
    assert table.count("\n| aten::") == 2 and "s of self CPU time" in table


def test_the_phase_summary_splits_wall_time_into_matmuls_attention_other_and_outside():
    """profile_step's summary: a phase's wall time is matmuls + attention + other operators + time
    outside any operator (Python), each with its share; nested aten::matmul is not a matmul twice."""
    from benchmarks.train_speed import phase_summary

    operators = {"aten::mm": [3_000_000_000, 10], "aten::matmul": [100_000_000, 10],
                 "aten::_scaled_dot_product_flash_attention_for_cpu": [1_000_000_000, 2], "aten::mul": [400_000_000, 7]}
    summary = phase_summary({"update": {"wall_s": 5.0, "operators": operators}})
    row = next(line for line in summary.splitlines() if line.startswith("| update"))
    assert row == "| update | 5.00 | 3.00 (60%) | 1.00 (20%) | 0.50 (10%) | 0.50 (10%) | 29 |"
