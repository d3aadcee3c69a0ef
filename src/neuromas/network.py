"""The network: layers of role-free nodes over one shared model, run like `nn.Sequential`.

`forward` is a loop over layers. Inside a layer every node x every input x every sample is one
batch handed to the backend, so a layer costs one batched generation however wide it is, and a
network of D layers costs D batched generations per forward pass.

    net = Network([2, 1])                         # embedded model, dense layers
    traces = net(["What is 12+7+30+5?"], num_samples=4)
    net.eval(); greedy = net(examples, task=task)  # greedy decoding, rewards filled in
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from pydantic import ValidationError

from neuromas.adapters import adapter_name
from neuromas.backends import from_config
from neuromas.backends.base import Backend, GenerationRequest
from neuromas.checkpoint import load_network, save_network
from neuromas.config import ModelConfig, NetworkConfig, RunConfig, format_validation_error
from neuromas.configfile import load_config
from neuromas.errors import NeuromasError
from neuromas.fadein import Growth
from neuromas.prompts import node_prompt, prompt_text
from neuromas.seeds import derive_seed
from neuromas.tasks.base import Example, Task
from neuromas.topology import Node, Topology
from neuromas.trace import NodeMessage, Trace

if TYPE_CHECKING:
    import torch

DEFAULT_ANSWER_FORMAT = "End your message with 'Answer: <answer>'."


class Network:
    """A feed-forward network of LLM nodes. `train()` samples; `eval()` decodes greedily."""

    def __init__(
        self,
        layers: Sequence[int] | NetworkConfig | dict,
        model: str | ModelConfig | None = None,
        backend: Backend | None = None,
        seed: int = 0,
    ):
        if isinstance(layers, NetworkConfig):
            self.config = layers
        else:
            data = layers if isinstance(layers, dict) else {"layers": list(layers)}
            try:
                self.config = NetworkConfig.model_validate(data)
            except ValidationError as error:
                raise NeuromasError(format_validation_error(error, "network")) from None
        self.topology = Topology.from_config(self.config)
        self.model_config = model if isinstance(model, ModelConfig) else ModelConfig(name=model)
        self._backend = backend
        self.seed = seed
        self.training = True
        self._sampled_calls = 0  # seedless sampled forward calls so far (interactive use only)
        self.adapters: dict[str, str] = {}  # node id -> adapter name, once adapters are attached
        self.base_backend: Backend | None = backend  # the backend without adapters (growth builds on it)
        self.growth: Growth | None = None  # set by grow.widen/deepen while new nodes fade in

    @classmethod
    def from_config(cls, config: str | Path | RunConfig, backend: Backend | None = None) -> Network:
        if not isinstance(config, RunConfig):
            config = load_config(config)
        return cls(config.network, model=config.model, backend=backend, seed=config.seed)

    @property
    def backend(self) -> Backend:
        """Created on first use, so building and printing a network never loads a model."""
        if self._backend is None:
            self._backend = from_config(self.model_config)
        return self._backend

    @property
    def backend_loaded(self) -> bool:
        return self._backend is not None

    # parameters ---------------------------------------------------------------------------
    def attach_adapters(self) -> Network:
        """Give every node its trainable LoRA adapter (`network.adapters`); idempotent.

        The backend owns the adapters (`AdapterBackend.with_adapters`): the network names them
        and the backend it gets back runs them (hf: on the one base model, backends/lora.py).
        """
        if self.adapters:
            return self
        backend = self.backend
        if not hasattr(backend, "with_adapters"):
            raise NeuromasError("training needs the hf backend (transformers + PEFT); set model.backend: hf")
        names = {node.id: adapter_name(node, self.config.adapters.sharing) for node in self.topology.nodes}
        self._backend = backend.with_adapters(list(dict.fromkeys(names.values())), self.config.adapters, self.seed)
        self.base_backend = backend
        self.adapters = names
        return self

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        """Trainable parameters (the adapters'), with PEFT's names holding the adapter's name
        (`...self_attn.q_proj.lora_A.L1N1.weight`); none when a server holds the adapters."""
        if not self.adapters or not hasattr(self.backend, "named_adapter_parameters"):
            return iter(())
        return self.backend.named_adapter_parameters()

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self.named_parameters()]

    def save(self, path: str | Path) -> None:
        """Adapters (PEFT format, one folder per adapter) and the network + model config."""
        save_network(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, backend: Backend | None = None) -> Network:
        """A network saved by `save`, or the final network of a run directory."""
        return load_network(cls, Path(path), backend)

    # torch-style mode switches ------------------------------------------------------------
    def train(self, mode: bool = True) -> Network:
        self.training = mode
        return self

    def eval(self) -> Network:
        return self.train(False)

    def named_nodes(self) -> Iterator[tuple[str, Node]]:
        for node in self.topology.nodes:
            yield node.id, node

    @property
    def calls_per_pass(self) -> int:
        """LLM calls one forward pass makes: one per node."""
        return len(self.topology.nodes)

    def __call__(self, *args, **kwargs) -> list[Trace]:
        return self.forward(*args, **kwargs)

    def forward(
        self,
        inputs: Sequence[str | Example],
        num_samples: int = 1,
        task: Task | None = None,
        seed: int | None = None,
        backend: Backend | None = None,
        blank: frozenset[str] = frozenset(),
        branching: Sequence[int] | None = None,
    ) -> list[Trace]:
        """Run every layer in order on every input, `num_samples` passes each.

        Returns one Trace per (input, sample), grouped by input: the G samples of input i are
        traces[i*G:(i+1)*G]. With a task, the readout sees its answer format and, for inputs
        that are Examples with targets, each trace carries its prediction and reward. In eval
        mode decoding is greedy, so one pass per input is computed and copied G times.
        `backend` generates instead of the network's own (the trainer's vLLM rollouts).
        Nodes in `blank` still run, but their readers see an empty message (node ablation).
        `seed` fixes every sample of the call (`seeds.derive_seed`); without one, a call in train
        mode draws from the network's seed and a count of such calls (greedy calls need none).
        `branching` (train mode; one factor per layer, product `num_samples`) samples an input's
        passes as a tree: layer l writes prod(branching[:l+1]) samples per input, each shared by
        the passes below it, so a node's samples share what reached them from upstream and can be
        compared with each other (`grpo.tree_advantages`). Shared messages are the same object in
        every trace that holds them. None: every pass samples every layer anew. While a grown
        network fades in (grow.py), all passes under one first-layer sample run the same form.
        """
        examples = [x if isinstance(x, Example) else Example(id=str(i), input=x, target=None) for i, x in enumerate(inputs)]
        answer_format = task.answer_format if task is not None else DEFAULT_ANSWER_FORMAT
        if seed is None:  # a user's call: each sampled call draws anew (the trainer passes its seed)
            seed = derive_seed(self.seed, "forward", self._sampled_calls)
            self._sampled_calls += self.training
        draws = 1 if not self.training else num_samples
        spans = sample_spans(branching, draws, len(self.topology.layers)) if branching and self.training else None
        passes = [(example, s) for example in examples for s in range(draws)]
        messages: list[dict[str, NodeMessage]] = [{} for _ in passes]
        # While a growth fades in, a pass runs the grown form or the parent's; a tree draws the form
        # once per first-layer sample, so each shared message belongs to passes of one form.
        unit = spans[0] if spans else 1
        forms = self.growth.draw(len(passes) // unit, seed, self.training) if self.growth else [True] * (len(passes) // unit)
        grown_form = [form for form in forms for _ in range(unit)]

        for l, layer in enumerate(self.topology.layers):
            requests, owners = [], []
            span = spans[l] if spans else 1  # passes that share each sample of this layer
            for node in layer:
                for p, (example, s) in enumerate(passes):
                    if s % span:  # written by the first pass of its span
                        continue
                    form = self._form(node, grown_form[p])
                    if form is None:  # a new node, in a pass that runs the parent
                        continue
                    view, topology, grown_id = form
                    incoming = {source: "" if grown_id(source) in blank else messages[p][grown_id(source)].text
                                for source in view.reads}
                    chat = node_prompt(view, topology, self._seen(example, view, topology, task), incoming, answer_format,
                                       self.config.header)
                    gen = view.generation
                    requests.append(GenerationRequest(
                        chat, self.adapters.get(node.id), gen.max_new_tokens, gen.temperature if self.training else 0.0, gen.top_p
                    ))
                    owners.append((p, node.id, prompt_text(chat)))
            if not requests:
                continue
            generations = (backend or self.backend).generate(requests, seed=derive_seed(seed, "layer", l))
            for (p, id, prompt), gen in zip(owners, generations):
                message = NodeMessage(
                    id, prompt, gen.text, gen.token_ids, gen.logprobs, gen.prompt_ids, gen.finished,
                    gen.completion_tokens, gen.prompt_tokens,
                )
                for q in range(p, p + span):
                    messages[q][id] = message

        traces = [
            Trace(example.id, example.input, s, messages[p], messages[p][self.topology.readout].text, target=example.target)
            for p, (example, s) in enumerate(passes)
        ]
        if task is not None:
            score(task, traces, [example for example, _ in passes])
        if draws < num_samples:  # greedy: every sample of an input is the same pass
            traces = [_resample(t, s) for t in traces for s in range(num_samples)]
        return traces

    def _form(self, node: Node, grown: bool):
        """How `node` runs in one pass: (node as its prompt sees it, its topology, id mapping).

        A pass of a grown network that runs the parent shows each old node the parent's
        structure under the parent's names (grow.py's fade-in); new nodes do not run (None).
        """
        if self.growth is None or grown:
            return node, self.topology, _same
        old_id = self.growth.old_ids.get(node.id)
        if old_id is None:
            return None
        return self.growth.parent_topology.node(old_id), self.growth.parent_topology, self.growth.new_ids.__getitem__

    @staticmethod
    def _seen(example: Example, node: Node, topology: Topology, task: Task | None) -> str:
        """What a node sees of the task: the whole input, its part with `input_slices`, or the
        question alone with `input_to_all: question` (with slices, in a layer of width w > 1, the
        question of its part of w)."""
        if node.input_part is None and not node.question_only:
            return example.input
        if task is None:
            setting = "input_to_all: question" if node.question_only else "input_slices"
            raise NeuromasError(f"network.{setting} needs the task to cut inputs: pass task= to the network")
        if node.question_only:
            if node.input_part is None:
                return task.question(example)
            return task.question(example, topology.widths[node.layer], node.input_part)
        return task.split_input(example, topology.widths[0])[node.input_part]

    def __repr__(self) -> str:
        name = self.model_config.name or "SmolLM2-135M-Instruct (embedded)"
        lines = [f"Network(widths={self.topology.widths}, model={name}, calls={self.calls_per_pass})"]
        for l, layer in enumerate(self.topology.layers):
            gen = layer[0].generation
            lines.append(
                f"  (layer {l + 1}): {len(layer)} node{'s' if len(layer) > 1 else ''}, "
                f"max_new_tokens={gen.max_new_tokens}, temperature={gen.temperature}, top_p={gen.top_p}"
            )
            for node in layer:
                part = "" if node.input_part is None else f" part {node.input_part + 1} of {len(layer)}"
                seen = f"question{part}" if node.question_only else f"input{part}"
                sources = list(node.reads) + ([seen] if node.sees_input else [])
                tag = "  [readout]" if node.is_readout else ""
                tag += f"  (role: {node.role.split('.')[0]})" if node.role else ""
                lines.append(f"    ({node.id}) <- {', '.join(sources)}{tag}")
        return "\n".join(lines)


def sample_spans(branching: Sequence[int], num_samples: int, depth: int) -> list[int]:
    """Per layer, how many consecutive passes of an input share each of its samples: branching
    [4, 4] over 16 passes gives [4, 1] (4 first-layer samples, each read by 4 readout samples)."""
    if len(branching) != depth or any(b < 1 for b in branching) or math.prod(branching) != num_samples:
        raise NeuromasError(f"train.branching {list(branching)} must give each of the network's {depth} layers a "
                            f"factor >= 1 whose product is the group size {num_samples}")
    spans, written = [], 1
    for factor in branching:
        written *= factor
        spans.append(num_samples // written)
    return spans


def score(task: Task, traces: list[Trace], examples: list[Example]) -> None:
    """Fill prediction and reward on traces whose examples have a target."""
    scored = [(t, e) for t, e in zip(traces, examples) if e.target is not None]
    if not scored:
        return
    rewards = task.reward([t.answer for t, _ in scored], [e for _, e in scored])
    for (trace, example), reward in zip(scored, rewards):
        trace.prediction = task.extract(trace.answer, example)
        trace.reward = float(reward)


def _same(id: str) -> str:
    return id


def _resample(trace: Trace, sample: int) -> Trace:
    return dataclasses.replace(trace, sample=sample)
