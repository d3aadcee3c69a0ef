"""The RL maths: a few pure tensor functions, tested against hand-computed values.

The paper trains every node with REINFORCE with a baseline: node n's update is
(R - b) * grad log pi_n(its message | its prompt), all nodes sharing one terminal reward R.
Our baseline b is the mean reward of the G passes of the same input (RLOO/GRPO style); the
departures from the paper are options, off by default unless stated:

- `std_normalize` divides by the group's reward std (GRPO); on by default because binary
  rewards give groups very different scales;
- `clip_eps` turns the loss into PPO's clipped surrogate, which only matters when a batch is
  reused for several update epochs (with one epoch the ratio is 1 and the gradient is REINFORCE's);
- `kl` to the base model (adapters disabled), with the k3 estimator, as a penalty;
- `branching` samples each input's passes as a tree and gives each layer's samples the baseline
  of their siblings (`tree_advantages`) instead of one baseline for the whole pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

Aggregation = Literal["token-mean", "sequence-mean"]


def group_advantages(rewards: torch.Tensor, std_normalize: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Advantage of each pass against its own group's mean. rewards: (B, G) -> (B, G).

    A group whose rewards all tie has zero advantage everywhere: it carries no learning signal
    (`tied_fraction` counts such groups).
    """
    baseline = rewards.mean(dim=1, keepdim=True)  # (B, 1)
    advantages = rewards - baseline
    if std_normalize:
        advantages = advantages / (rewards.std(dim=1, keepdim=True, unbiased=False) + eps)
    return advantages


def tree_advantages(rewards: torch.Tensor, branching: Sequence[int], std_normalize: bool = True) -> list[torch.Tensor]:
    """Advantages of a tree of samples (`Network.forward(branching=...)`), one (B, G) tensor per layer.

    A sample at layer l is worth the mean reward of the passes below it, and is compared with its
    siblings: the samples of the same layer drawn from the same upstream messages (`group_advantages`
    over those). So a readout sample is judged against other readout samples that read the very same
    messages, and a first-layer sample by the average of the readouts it led to: each node's credit is
    for what it wrote, not for the luck upstream of it, the way AT-GRPO groups by agent and turn.
    A layer with factor 1 has no siblings: its samples take the advantage of the sample above them.
    Independent passes are branching [G, 1, ..., 1], which gives every layer `group_advantages(rewards)`.
    Entry [l][b, s] is the advantage of layer l's sample in pass s of input b.
    """
    batch, group = rewards.shape
    above = torch.zeros(batch, 1)  # the input: nothing to compare it with
    layers, written = [], 1
    for factor in branching:
        span = group // (written * factor)  # passes below each sample of this layer
        if factor == 1:
            advantages = above
        else:
            values = rewards.view(batch * written * factor, span).mean(dim=1) if span > 1 else rewards
            advantages = group_advantages(values.reshape(batch * written, factor), std_normalize)
            advantages = advantages.reshape(batch, written * factor)
        written *= factor
        above = advantages
        layers.append(advantages.repeat_interleave(span, dim=1))
    return layers


def tied_fraction(rewards: torch.Tensor) -> float:
    """Share of groups (rows of (B, G)) whose G rewards are all equal."""
    return (rewards.max(dim=1).values == rewards.min(dim=1).values).float().mean().item()


def per_token_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float | None = None,
) -> torch.Tensor:
    """Policy-gradient loss of every generated token, (N, T).

    logprobs, old_logprobs: (N, T) per generated token; advantages: (N,) one per sequence (its
    pass's advantage, broadcast over its tokens). Without clipping this is -A * ratio, whose
    gradient at ratio 1 is -A * grad log pi: REINFORCE. With `clip_eps`, PPO's pessimistic
    clipped surrogate.
    """
    ratio = torch.exp(logprobs - old_logprobs)  # (N, T)
    advantage = advantages.unsqueeze(1)  # (N, 1)
    per_token = -advantage * ratio
    if clip_eps is not None:
        per_token = torch.maximum(per_token, -advantage * ratio.clamp(1 - clip_eps, 1 + clip_eps))
    return per_token


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    clip_eps: float | None = None,
) -> torch.Tensor:
    """The policy loss of some rows: their per-token losses weighted by `weights` and summed.

    weights: (N, T), the rows' part of `loss_weights(mask of the whole batch)`, so that the
    losses of micro-batches add up to the loss of the batch (and padding weighs 0).
    """
    return aggregate(per_token_policy_loss(logprobs, old_logprobs, advantages, clip_eps), weights)


def kl_loss(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The k3 KL estimate of some rows, weighted like `policy_loss` (its mean over the batch's tokens)."""
    return aggregate(kl_penalty(logprobs, ref_logprobs), weights)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || ref): exp(ref - pi) - (ref - pi) - 1 >= 0. (N, T) -> (N, T)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def aggregate(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights): with `loss_weights`, the masked mean the aggregation asks for."""
    return (values * weights).sum()


def loss_weights(mask: torch.Tensor, aggregation: Aggregation = "token-mean") -> torch.Tensor:
    """(N, T) weights that make `aggregate` a masked mean of (N, T) values: over all tokens
    (`token-mean`: long messages weigh more), or within each sequence and then over sequences
    (`sequence-mean`: every message weighs the same).

    Computed once for a whole batch, they let micro-batches add up to the batch's mean exactly.
    """
    mask = mask.float()
    if aggregation == "token-mean":
        return mask / mask.sum().clamp(min=1)
    return mask / mask.sum(dim=1, keepdim=True).clamp(min=1) / mask.shape[0]
