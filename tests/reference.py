"""The straightforward joint-REINFORCE step in fp32: the specification the Trainer must match.

Written the obvious way, with none of the Trainer's speed-ups: each node's adapter switched on
with PEFT's `set_adapter` (no mixed-adapter batches), one `model.generate` per node over all its
rows, then per node micro-batches of 16 rows through a full forward of prompt + completion with
full-vocabulary logits and `log_softmax` (no prompt or prefix sharing, no skipping of rows whose
advantage is 0). The loss is the paper's: for every pass, (R - b) / std times the log-prob of
every token every node wrote (the stop token of a finished message included), averaged over all
generated tokens of the step, b and std taken over the G passes of the same input.

`tests/test_trainer.py` checks that the Trainer's loss and gradients equal this one's on the same
rollouts; `benchmarks/train_speed.py` times a whole step of it against the Trainer's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuromas.prompts import node_prompt
from neuromas.tasks.base import Example, Task
from neuromas.topology import Topology


@dataclass
class Row:
    """One message of one pass: what the loss needs of it."""

    node: str  # node id, which is also its adapter's name
    sample: int  # index of its pass in the step (passes grouped by input, G each)
    prompt: list[int]
    completion: list[int]  # generated tokens, the stop token last when the message finished
    temperature: float


class ReferenceStep:
    """One joint RL step over a PEFT model holding one adapter per node, named by node id."""

    def __init__(self, model, tokenizer, topology: Topology, task: Task, group_size: int, lr: float = 2e-4,
                 micro_batch: int = 16, adapter_keys: dict[str, str] | None = None):
        """`adapter_keys`: node id -> the PEFT adapter name it has on `model`, when not its id."""
        self.model, self.tokenizer, self.topology, self.task = model, tokenizer, topology, task
        self.adapter_keys = adapter_keys or {}
        self.group_size, self.micro_batch = group_size, micro_batch
        self.lora_params = [p for n, p in model.named_parameters() if "lora_" in n]
        self.optimizer = torch.optim.AdamW(self.lora_params, lr=lr, weight_decay=0.0)
        eos = model.generation_config.eos_token_id
        self.stop_ids = {tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])}

    def use_adapter(self, node_id: str) -> None:
        self.model.set_adapter(self.adapter_keys.get(node_id, node_id))
        for p in self.lora_params:  # set_adapter freezes every other adapter; keep all trainable
            p.requires_grad_(True)

    def encode(self, chat: list[dict[str, str]]) -> list[int]:
        return list(self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False))

    def rollout(self, examples: list[Example]) -> tuple[list[Row], torch.Tensor]:
        """G sampled passes per input, layer by layer, one `generate` per node; (rows, rewards (B, G))."""
        passes = [example for example in examples for _ in range(self.group_size)]  # grouped by input
        texts: list[dict[str, str]] = [{} for _ in passes]  # per pass: node id -> message
        rows = []
        for layer in self.topology.layers:
            for node in layer:
                self.use_adapter(node.id)
                prompts = [
                    self.encode(node_prompt(node, self.topology, ex.input, {s: texts[p][s] for s in node.reads},
                                            self.task.answer_format))
                    for p, ex in enumerate(passes)
                ]
                batch = self.tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
                gen = node.generation
                out = self.model.generate(
                    **batch, do_sample=True, temperature=gen.temperature, top_p=1.0, top_k=0,
                    max_new_tokens=gen.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                )
                for p, new in enumerate(out[:, batch["input_ids"].shape[1] :].tolist()):
                    completion = []
                    for token in new:
                        completion.append(token)
                        if token in self.stop_ids:  # the stop token is the last action of the message
                            break
                    texts[p][node.id] = self.tokenizer.decode(completion, skip_special_tokens=True)
                    rows.append(Row(node.id, p, prompts[p], completion, gen.temperature))
        rewards = torch.tensor(self.task.reward([t[self.topology.readout] for t in texts], passes))
        return rows, rewards.view(len(examples), self.group_size)

    def backward(self, rows: list[Row], rewards: torch.Tensor) -> float:
        """Accumulate the step's loss gradient into every adapter; return the loss."""
        advantages = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True, unbiased=False) + 1e-6)
        advantages = advantages.flatten()
        total_tokens = sum(len(r.completion) for r in rows)
        loss_value = 0.0
        for node in self.topology.nodes:
            self.use_adapter(node.id)
            mine = [r for r in rows if r.node == node.id and r.completion]
            for i in range(0, len(mine), self.micro_batch):
                loss = self.loss(mine[i : i + self.micro_batch], advantages, total_tokens)
                loss.backward()
                loss_value += loss.item()
        return loss_value

    def step(self, rows: list[Row], rewards: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.backward(rows, rewards)
        torch.nn.utils.clip_grad_norm_(self.lora_params, 1.0)
        self.optimizer.step()
        return loss

    def loss(self, rows: list[Row], advantages: torch.Tensor, total_tokens: int) -> torch.Tensor:
        """Full forward over prompt + completion (right padded), full-vocabulary log_softmax."""
        width = max(len(r.prompt) + len(r.completion) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        completion_mask = torch.zeros((len(rows), width - 1))  # over predicted positions 1..width-1
        for i, r in enumerate(rows):
            n = len(r.prompt) + len(r.completion)
            ids[i, :n] = torch.tensor(r.prompt + r.completion)
            attention[i, :n] = 1
            completion_mask[i, len(r.prompt) - 1 : n - 1] = 1
        temperature = torch.tensor([r.temperature if r.temperature > 0 else 1.0 for r in rows]).view(-1, 1, 1)
        logits = self.model(input_ids=ids, attention_mask=attention).logits.float()  # (rows, width, vocab)
        logprobs = torch.log_softmax(logits[:, :-1] / temperature, dim=-1)
        token_logprobs = logprobs.gather(-1, ids[:, 1:, None]).squeeze(-1)
        row_advantages = advantages[[r.sample for r in rows]]
        # REINFORCE written as -A * pi / pi_sampled at pi = pi_sampled: the gradient is -A grad log pi,
        # and the value (the mean of -A over tokens) is the one the Trainer logs as loss/policy.
        ratio = torch.exp(token_logprobs - token_logprobs.detach())
        return -(row_advantages[:, None] * ratio * completion_mask).sum() / total_tokens
