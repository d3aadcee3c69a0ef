"""The RL maths against values computed by hand."""

import math

import pytest
import torch

from neuromas.rl.grpo import (
    aggregate,
    group_advantages,
    kl_loss,
    kl_penalty,
    loss_weights,
    policy_loss,
    tied_fraction,
    tree_advantages,
)


def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    plain = group_advantages(rewards, std_normalize=False)
    assert plain.tolist() == [[0.5, -0.5, -0.5, 0.5], [0.0] * 4, [-0.25, -0.25, -0.25, 0.75]]
    normalized = group_advantages(rewards, std_normalize=True, eps=0.0 + 1e-12)
    # row 0: std 0.5 -> +-1; row 2: std sqrt(3)/4 -> -0.25/0.433 = -0.57735, 0.75/0.433 = 1.73205
    assert normalized[0].tolist() == pytest.approx([1, -1, -1, 1])
    assert normalized[1].tolist() == pytest.approx([0, 0, 0, 0])  # a tied group has no signal
    assert normalized[2].tolist() == pytest.approx([-1 / math.sqrt(3)] * 3 + [math.sqrt(3)], rel=1e-5)
    assert tied_fraction(rewards) == pytest.approx(1 / 3)


def test_policy_loss_is_reinforce_at_ratio_one():
    logprobs = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    advantages = torch.tensor([2.0, -1.0])
    loss = policy_loss(logprobs, logprobs.detach(), advantages, loss_weights(mask))
    # token-mean over 3 real tokens of -A * 1: (-2 - 2 + 1) / 3 = -1
    assert loss.item() == pytest.approx(-1.0)
    loss.backward()
    # d loss / d logp = -A / 3 on real tokens, 0 on padding
    assert torch.allclose(logprobs.grad, torch.tensor([[-2 / 3, -2 / 3, 0.0], [1 / 3, 0.0, 0.0]]))


def test_sequence_mean_weighs_every_message_equally():
    values = torch.tensor([[1.0, 3.0, 0.0], [10.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert aggregate(values, loss_weights(mask, "token-mean")).item() == pytest.approx(14 / 3)
    assert aggregate(values, loss_weights(mask, "sequence-mean")).item() == pytest.approx((2 + 10) / 2)


@pytest.mark.parametrize("aggregation", ["token-mean", "sequence-mean"])
def test_micro_batches_add_up_to_the_batch_loss(aggregation):
    """The trainer's micro-batches take their rows' slice of the batch's weights."""
    generator = torch.Generator().manual_seed(0)
    logprobs = -torch.rand(5, 4, generator=generator)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.float)
    advantages, weights = torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5]), loss_weights(mask, aggregation)
    whole = policy_loss(logprobs, logprobs, advantages, weights)
    parts = [[0, 3], [1], [4, 2]]  # any order, any slicing of the rows
    summed = sum(policy_loss(logprobs[i], logprobs[i], advantages[i], weights[i]) for i in parts)
    assert summed.item() == pytest.approx(whole.item())
    ref = logprobs - 0.1
    assert sum(kl_loss(logprobs[i], ref[i], weights[i]) for i in parts).item() == pytest.approx(
        kl_loss(logprobs, ref, weights).item())
    if aggregation == "token-mean":  # the mean of -A over the 13 real tokens, by hand
        assert whole.item() == pytest.approx(-(3 * 1.0 + 1 * -2.0 + 4 * 0.5 + 2 * 0.0 + 3 * 1.5) / 13)


def test_ppo_clipping_by_hand():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    mask = torch.ones(1, 2)
    # positive advantage: min(r*A, clip(r)*A) -> 1.2 and 0.5 -> loss -(1.2 + 0.5)/2
    assert policy_loss(new, old, torch.tensor([1.0]), loss_weights(mask), clip_eps=0.2).item() == pytest.approx(-0.85)
    # negative advantage: min(-1.5, -1.2) = -1.5 and min(-0.5, -0.8) = -0.8 -> loss (1.5 + 0.8) / 2
    assert policy_loss(new, old, torch.tensor([-1.0]), loss_weights(mask), clip_eps=0.2).item() == pytest.approx(1.15)


def test_k3_kl_by_hand():
    logprobs = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.0, -1.0]])
    # delta = ref - logp = [0, 1]: exp(0) - 0 - 1 = 0; exp(1) - 1 - 1 = e - 2
    assert torch.allclose(kl_penalty(logprobs, ref), torch.tensor([[0.0, math.e - 2]]))


def test_learning_rate_schedules():
    from neuromas.config import TrainConfig
    from neuromas.rl.trainer import learning_rate

    warm = TrainConfig(steps=10, lr=1.0, warmup_steps=3, lr_schedule="linear")
    assert [round(learning_rate(warm, s), 4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, round(1 - 1 / 7, 4)]
    assert learning_rate(warm, 9) == pytest.approx(1 / 7)
    cosine = TrainConfig(steps=4, lr=2.0, lr_schedule="cosine")
    assert [learning_rate(cosine, s) for s in range(4)] == pytest.approx([2.0, 1 + 2 ** -0.5, 1.0, 1 - 2 ** -0.5])
    assert learning_rate(TrainConfig(steps=4, lr=0.5), 3) == 0.5


def test_tree_advantages_by_hand():
    # one input, branching [2, 2]: first-layer samples A (passes 0, 1) and B (passes 2, 3)
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    first, readout = tree_advantages(rewards, [2, 2], std_normalize=False)
    # A is worth 0.5, B 0: against their mean 0.25, +0.25 and -0.25, for every pass below each
    assert first.tolist() == [[0.25, 0.25, -0.25, -0.25]]
    # readouts of A: 1 and 0 against 0.5; readouts of B tie: no signal, whatever A's got
    assert readout.tolist() == [[0.5, -0.5, 0.0, 0.0]]
    # normalised within each sibling group: A's readouts +-1, B's tie at 0
    assert tree_advantages(rewards, [2, 2])[1][0].tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0], rel=1e-4)  # eps 1e-6


def test_independent_passes_are_a_flat_tree():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    flat = group_advantages(rewards)
    for layers in tree_advantages(rewards, [6, 1, 1]):
        assert torch.equal(layers, flat)  # every node of a pass gets the pass's advantage, bit for bit
    # a first layer sampled once per input has no sibling to compare with: no signal for it
    first, readout = tree_advantages(rewards, [1, 6], std_normalize=False)
    assert first.abs().sum() == 0 and torch.equal(readout, group_advantages(rewards, std_normalize=False))
