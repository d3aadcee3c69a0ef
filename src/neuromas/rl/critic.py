"""CoLLM-CC's centralised critic (arXiv:2601.21972): `train.algorithm: collm-cc`.

CoLLM-CC trains each agent as an actor with the advantage of one critic shared by all agents,
instead of a group baseline. Followed: the CoMLRL library's multi-agent actor-critic
(OpenMLRL/CoMLRL `comlrl/trainers/actor_critic/maac.py`: `_build_critic_input`,
`_collect_rollouts`, the value target = the return; `ac_base.py`: `_prepare_advantages`, the
advantage = return - the value before the update, normalised over the batch by its mean and
std; `docs/.../multi-agent-actor-critic.md`: the critic's squared TD error as its loss).

On one shared base model: the actors are the nodes' own LoRA adapters (unchanged); the critic
is the same base model with one more adapter of its own (`critic`, the nodes' rank and
targets) and a linear value head on the final hidden state of the last token (CoMLRL's
`CausalLMWithValueHead` with no hidden layer). It is trained by its own AdamW optimizer on the
squared error of its value against the pass's reward; the actors' policy loss is unchanged
(`grpo.policy_loss`), only its advantages change.

What the critic sees: CoMLRL's V critic conditions on the joint prompts of the agents acting at
a turn. A network's layer is such a turn: its nodes act together, and their prompts hold the
task input and the messages of the layers before (plus each node's structural header, the
same for every pass). So the critic's input for layer l of a pass is the input and every
message of layers 1..l-1, each tagged with its node id, and the advantage of every message of
layer l is R - V(input, messages before layer l). With a terminal reward and discount 1 this is
MAAC's multi-turn return minus the value; a layer's value never sees the layer's own messages,
so it stays a baseline (no bias). Layer 1's input is the same for the G passes of an input and
is run once. The header is left out of the critic's input because it is constant across passes
and would only lengthen it.
"""

from __future__ import annotations

import re

import torch

from neuromas.trace import Trace

_LAYER = re.compile(r"^L(\d+)N\d+$")
MAX_TOKENS = 1024  # a critic input's last tokens kept (the value reads the last one)


def layer_of(node_id: str) -> int:
    match = _LAYER.match(node_id)
    return int(match.group(1)) if match else 1


def critic_inputs(trace: Trace) -> dict[int, str]:
    """Layer -> the text the critic values for that layer of one pass (see the module doc)."""
    text, by_layer = f"Task: {trace.input.strip()}\n", {}
    messages = sorted(trace.messages.items(), key=lambda item: (layer_of(item[0]), item[0]))
    for layer in sorted({layer_of(node) for node, _ in messages}):
        by_layer[layer] = text
        for node, message in messages:
            if layer_of(node) == layer:
                text += f"\n[{node}] {message.text.strip()}"
    return by_layer


class CentralCritic:
    """The critic's adapter, value head and optimizer, and the advantages it gives a step."""

    ADAPTER = "critic"

    def __init__(self, net, lr: float, micro_batch_rows: int = 4):
        self.backend = net.base_backend.with_adapters([self.ADAPTER], net.config.adapters, net.seed)
        hidden = self.backend.model.get_base_model().config.hidden_size
        self.head = torch.nn.Linear(hidden, 1).to(self.backend.device)
        torch.nn.init.zeros_(self.head.weight)  # V = 0 at the start: the first advantages are the rewards
        torch.nn.init.zeros_(self.head.bias)
        self.params = [*self.backend.adapter_parameters(self.ADAPTER), *self.head.parameters()]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr)
        self.micro_batch_rows = micro_batch_rows

    def values(self, texts: list[str]) -> torch.Tensor:
        """V of each text, (n,), differentiable into the critic's adapter and head."""
        tokenizer = self.backend.tokenizer
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"][-MAX_TOKENS:] for t in texts]
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):  # left padding: every text ends in the last column
            input_ids[row, width - len(x):] = torch.tensor(x)
            mask[row, width - len(x):] = 1
        device = self.backend.device
        out = self.backend.model(
            input_ids=input_ids.to(device), attention_mask=mask.to(device),
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(device), output_hidden_states=True,
            logits_to_keep=1, use_cache=False, **self.backend.adapter_kwargs([self.ADAPTER] * len(ids)),
        )
        return self.head(out.hidden_states[-1][:, -1, :].float()).squeeze(-1)

    def step(self, traces: list[Trace], rewards: torch.Tensor, normalize: bool = True,
             max_grad_norm: float | None = 1.0) -> tuple[dict[tuple[int, int], float], dict[str, float]]:
        """Advantages of a step's messages, then one update of the critic on the same passes.

        Returns ((pass, layer) -> advantage, metrics). The advantages use the values before the
        update (CoMLRL's `old_value`); `normalize` subtracts their batch mean and divides by their
        std. The value loss is the mean over (pass, layer) of (V - R)^2.
        """
        items = [(p, layer, text) for p, trace in enumerate(traces) for layer, text in critic_inputs(trace).items()]
        unique = list(dict.fromkeys(text for _, _, text in items))
        where = {text: i for i, text in enumerate(unique)}
        targets = torch.tensor([float(rewards[p]) for p, _, _ in items])  # (N,)
        index = torch.tensor([where[text] for _, _, text in items])  # (N,)
        old = torch.zeros(len(unique))
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = 0.0
        for start in range(0, len(unique), self.micro_batch_rows):  # each unique text once, gradients summed
            chunk = list(range(start, min(start + self.micro_batch_rows, len(unique))))
            values = self.values([unique[i] for i in chunk])  # (c,)
            old[chunk] = values.detach().float().cpu()
            rows = [n for n in range(len(items)) if start <= index[n] < start + len(chunk)]
            if not rows:
                continue
            predicted = values[index[rows] - start].cpu()
            loss = ((predicted - targets[rows]) ** 2).sum() / len(items)
            loss.backward()
            loss_total += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_grad_norm or float("inf"))
        if torch.isfinite(grad_norm):
            self.optimizer.step()
        advantages = targets - old[index]  # (N,)
        raw_mean = advantages.mean().item()
        if normalize and len(items) > 1:
            advantages = (advantages - advantages.mean()) / advantages.std(unbiased=False).clamp(min=1e-6)
        per_message = {(p, layer): advantages[n].item() for n, (p, layer, _) in enumerate(items)}
        metrics = {"critic/value_loss": loss_total, "critic/value_mean": old.mean().item(),
                   "critic/advantage_mean": raw_mean, "critic/grad_norm": grad_norm.item()}
        return per_message, metrics

    def state_dict(self) -> dict:
        return {"adapter": [p.detach().clone() for p in self.backend.adapter_parameters(self.ADAPTER)],
                "head": self.head.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for param, saved in zip(self.backend.adapter_parameters(self.ADAPTER), state["adapter"]):
                param.copy_(saved)
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
