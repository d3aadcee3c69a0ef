"""The hf backend's node adapters: PEFT LoRA adapters on the one base model every network shares.

A base model is loaded once per process (`models.load_model` caches it) and is never copied:
every network's adapters are added to it in place, through one `PeftModel` per base model
(`_SHARED`). Measured on the embedded model in float32 (load, a [1, 1] network's adapters, widen
to [2, 1], one greedy forward): peak RSS 2.03 GB when every network deep-copied the model, 0.98
GB now. Ownership rules, so networks in one process never see each other's adapters (tested in
tests/test_backend_hf.py):

- **Unique PEFT names.** A network's adapter `L1N1` is stored on the model as `L1N1@k`, k
  counting the adapter sets added to that model; the backend a network gets back
  (`HFBackend.with_adapters`) maps the network's names to these keys, so a network can only
  name its own adapters, and adding network B's adapters never touches network A's.
- **No adapter is active.** PEFT activates an adapter when it adds one; we deactivate all of
  them again, so a plain forward of the model (a network without adapters, a baseline,
  `load_model`'s model in a test) is the base model. Adapter rows run through PEFT's
  mixed-batch `adapter_names` (one key per row, `__base__` for the base model), which does not
  depend on the active set; so a base-model pass needs no `disable_adapter()` (a flag on the
  shared model that would switch every network's adapters off at once).
- **requires_grad is ours.** PEFT's `set_adapter` sets requires_grad on every adapter of the
  model (only the active one trains); we restore it around every addition, so adding network
  B's adapters does not freeze network A's mid-training.
- **Adapters go with their network.** When the backend holding a set of adapters is garbage
  collected (its network is gone: the parent after a growth, a test's network), the adapters
  are deleted from the model at its next use (`release_adapters`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora.layer import VARIANT_KWARG_KEYS, LoraLayer
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file

from neuromas.adapters import adapter_seed
from neuromas.config import AdapterConfig

# PEFT asks transformers' deprecated `is_gradient_checkpointing` (transformers 5 warns on every
# read); we never checkpoint activations, so the answer does not matter. Filtered for the whole
# process (any place a PEFT version reads it) and again around `get_peft_model` (a caller may
# reset the filters: pytest does per test). With the local filter alone, issue 21's first fault
# run saw the warning as the first line of a resume; not reproduced since in this environment.
_GRADIENT_CHECKPOINTING = r".*is_gradient_checkpointing"
warnings.filterwarnings("ignore", message=_GRADIENT_CHECKPOINTING, category=FutureWarning)


@dataclass
class _Shared:
    peft: PeftModel
    sets: Iterator[int] = field(default_factory=lambda: itertools.count(2))  # numbers the adapter sets after the first
    released: list[str] = field(default_factory=list)  # keys of adapters whose network is gone (`release_adapters`)


# id(base model) -> the PeftModel over it. It holds the base model, which therefore lives as long
# as the process, as `load_model`'s cached one does anyway.
_SHARED: dict[int, _Shared] = {}


def add_adapters(model, names: list[str], config: AdapterConfig, seed: int = 0) -> tuple[PeftModel, dict[str, str]]:
    """Fresh LoRA adapters, one per name, on base model `model`, all trainable: (the model's
    PeftModel, name -> PEFT key). LoRA's B starts at zero, so a fresh adapter is exactly the
    base model; each A is drawn from its own seed (`adapter_seed`) without disturbing the
    global generator."""
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha if config.alpha is not None else 2 * config.rank,
        target_modules=list(config.target_modules),
        lora_dropout=0.0,
        bias="none",
    )
    shared = _SHARED.get(id(model))
    if shared:
        remove_released(shared.peft)
    number = next(shared.sets) if shared else 1
    keys = {name: f"{name}@{number}" for name in names}
    existing = shared.peft.named_parameters() if shared else ()
    trainable = {p: p.requires_grad for n, p in existing if "lora_" in n}
    for name, key in keys.items():
        with torch.random.fork_rng(devices=_devices(model)):
            torch.manual_seed(adapter_seed(seed, name))
            if shared is None:
                with warnings.catch_warnings():  # here too: a caller (pytest) may have reset the filters since
                    warnings.filterwarnings("ignore", message=_GRADIENT_CHECKPOINTING, category=FutureWarning)
                    shared = _SHARED[id(model)] = _Shared(get_peft_model(model, lora, adapter_name=key))
            else:
                shared.peft.add_adapter(key, lora)
    peft = shared.peft
    if peft.active_adapter not in peft.peft_config:  # PEFT's own pointer must name an adapter that exists
        peft.active_adapter = keys[names[0]]
    for module in peft.modules():
        if isinstance(module, BaseTunerLayer):
            module.set_adapter([])  # none active: a plain forward is the base model
    for param, requires_grad in trainable.items():
        param.requires_grad_(requires_grad)
    for key in keys.values():
        for param in parameters(peft, key):
            param.requires_grad_(True)
    peft.eval()  # PEFT takes `adapter_names` only in eval mode; LoRA dropout is 0 and gradients flow all the same
    use_sliced_forward(peft)
    peft.base_model._enable_peft_forward_hooks = types.MethodType(_listed_layer_hooks, peft.base_model)
    return peft, keys


def use_sliced_forward(model, enabled: bool = True) -> None:
    """Give every LoRA layer of `model` the sliced mixed-adapter forward (`enabled`), or PEFT's back."""
    for module in model.modules():
        if isinstance(module, LoraLinear):
            if enabled:
                module._mixed_batch_forward = types.MethodType(_sliced_mixed_batch_forward, module)
            else:
                vars(module).pop("_mixed_batch_forward", None)


@functools.lru_cache(maxsize=256)
def _runs(adapter_names: tuple[str, ...]) -> tuple[tuple[str, int, int], ...] | None:
    """(adapter, start, end) of each run of equal names, or None when some adapter's rows are not
    one run (interleaved rows: PEFT's gather and scatter is needed then)."""
    runs, seen, start = [], set(), 0
    for i in range(1, len(adapter_names) + 1):
        if i == len(adapter_names) or adapter_names[i] != adapter_names[start]:
            if adapter_names[start] in seen:
                return None
            seen.add(adapter_names[start])
            runs.append((adapter_names[start], start, i))
            start = i
    return tuple(runs)


def _sliced_mixed_batch_forward(self, x: torch.Tensor, *args, adapter_names: list[str], **kwargs) -> torch.Tensor:
    """PEFT's mixed-adapter LoRA forward with each adapter's rows as one slice of the batch.

    Why: PEFT gathers every adapter's rows with a Python index list and scatters the LoRA output
    back (`x[rows]`, `result[rows] += ...`): about ten operators per adapter per layer, a tensor
    made of the list each time. The backend's rows come grouped by adapter, so a view of the
    batch and an in-place add on a slice do the same arithmetic (the same values, bit for bit)
    with four. That matters most where a forward's cost is its number of operators (a GPU's
    decoding, launch-bound at a 135M model). Rows not grouped, and LoRA variants, take PEFT's path.
    """
    runs = _runs(tuple(adapter_names))
    if runs is None or self.lora_variant or any(kwargs.get(k) is not None for k in VARIANT_KWARG_KEYS):
        return type(self)._mixed_batch_forward(self, x, *args, adapter_names=adapter_names, **kwargs)
    for key in VARIANT_KWARG_KEYS:
        kwargs.pop(key, None)
    result = self.base_layer(x, *args, **kwargs)
    for adapter, start, end in runs:
        if adapter not in self.lora_A:  # "__base__" (the base model's rows) or another model's name
            continue
        lora_A, lora_B = self.lora_A[adapter], self.lora_B[adapter]
        rows = x if end - start == len(x) else x[start:end]
        output = lora_B(lora_A(self.lora_dropout[adapter](rows.to(lora_A.weight.dtype)))) * self.scaling[adapter]
        if end - start == len(x):
            result = result + output.to(result.dtype)
        else:
            result[start:end].add_(output.to(result.dtype))  # not `+=`: that also copies the slice onto itself
    return result


@contextlib.contextmanager
def _listed_layer_hooks(self, *args, **kwargs):
    """PEFT's mixed-adapter forward set-up (`LoraModel._enable_peft_forward_hooks`) with the LoRA
    layers listed once per set of adapters instead of found on every call.

    Why: for each forward given `adapter_names`, PEFT walks all of the model's modules twice (to
    check the names exist, then to hook every LoRA layer): about 2,300 modules for a [2, 1]
    network, 4.3 ms a call, about a second of a [2, 1] training step's 254 forward calls. The
    layers and their adapters change only when adapters are added or deleted, which changes
    `peft_config`; the list is keyed by its names. The same checks and the same hook (the rows'
    adapter names as a keyword argument of every LoRA layer) as PEFT's, so outputs are the same
    (PEFT also hooks `modules_to_save` wrappers, which `add_adapters` never creates); any other
    use (no names, beam search, aLoRA offsets) goes to PEFT's own method.
    """
    names = kwargs.get("adapter_names")
    if names is None or kwargs.get("alora_offsets") is not None or (kwargs.get("num_beams") or 1) > 1:
        with type(self)._enable_peft_forward_hooks(self, *args, **kwargs):
            yield
        return
    if self.training:
        raise ValueError("Cannot pass `adapter_names` when the model is in training mode.")
    key = tuple(self.peft_config)
    if getattr(self, "_neuromas_layers", (None,))[0] != key:
        layers = [m for m in self.modules() if isinstance(m, LoraLayer)]  # ours have no modules_to_save
        known = {a for m in layers for a in (*m.lora_A, *m.lora_embedding_A)}
        self._neuromas_layers = (key, layers, known)
    _, layers, known = self._neuromas_layers
    unexpected = {name for name in names if name != "__base__"} - known
    if unexpected:
        raise ValueError(f"Trying to infer with non-existing adapter(s): {', '.join(sorted(unexpected))}")
    hook = functools.partial(_pass_adapter_names, adapter_names=names)
    handles = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _pass_adapter_names(module, args, kwargs, adapter_names):
    kwargs["adapter_names"] = adapter_names
    return args, kwargs


def release_adapters(peft: PeftModel, keys: list[str]) -> None:
    """Mark adapters for deletion: their network is gone. This runs from a garbage-collector
    finalizer, which may fire inside any code walking the model's modules (it fired inside a
    `copy.deepcopy` of the model in the test suite: "dictionary changed size during
    iteration"), so it only records the keys; `remove_released` deletes them at a safe point."""
    _SHARED[id(peft.get_base_model())].released.extend(keys)


def remove_released(peft: PeftModel) -> None:
    """Delete the adapters `release_adapters` recorded: called before adapters are added and
    before a generate, where nothing else walks the model."""
    shared = _SHARED[id(peft.get_base_model())]
    keys, shared.released = shared.released, []
    if keys:
        remove_adapters(peft, keys)


def remove_adapters(peft: PeftModel, keys: list[str]) -> None:
    """Delete adapters from the shared model now."""
    for key in keys:
        if key in peft.peft_config:
            peft.base_model.delete_adapter(key)  # no adapter is active, so PEFT activates none and leaves requires_grad
    if peft.peft_config and peft.active_adapter not in peft.peft_config:
        peft.active_adapter = next(iter(peft.peft_config))


def parameters(peft: PeftModel, key: str) -> list[torch.nn.Parameter]:
    """The parameters of one adapter (matched by PEFT's `.<key>.` name segment)."""
    segment = f".{key}."
    return [p for n, p in peft.named_parameters() if "lora_" in n and segment in n]


def named_parameters(peft: PeftModel, keys: dict[str, str]) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """The parameters of adapters `keys` (name -> key) in model order, named by PEFT with the
    adapter's own name for its key (`...q_proj.lora_A.L1N1.weight`)."""
    names = {key: name for name, key in keys.items()}
    for n, p in peft.named_parameters():
        if "lora_" not in n:
            continue
        parts = n.split(".")
        for i, part in enumerate(parts):
            if part in names:
                yield ".".join([*parts[:i], names[part], *parts[i + 1 :]]), p
                break


def save(peft: PeftModel, keys: dict[str, str], directory: Path) -> None:
    """Each adapter in PEFT's format, in a folder named after the adapter: `<directory>/L1N1/`."""
    # save_embedding_layers=False: only LoRA weights are trained, never the vocabulary; PEFT's default
    # ("auto") looks for the base model's config to check, and warns when the embedded GGUF has none.
    peft.save_pretrained(str(directory), selected_adapters=list(keys.values()), save_embedding_layers=False)
    for name, key in keys.items():
        os.replace(directory / key, directory / name)
        _sort_target_modules(directory / name / "adapter_config.json")


def _sort_target_modules(path: Path) -> None:
    """PEFT keeps `target_modules` as a set and writes it in the set's order, which changes with
    each process's string hashing: sorted, two saves of the same adapter are the same bytes
    (a resumed run's adapters byte for byte those of a run never stopped)."""
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load(peft: PeftModel, key: str, file: Path) -> list[str]:
    """Load an adapter's saved weights; return the saved LoRA keys this adapter has no place for."""
    result = set_peft_model_state_dict(peft, load_file(str(file)), adapter_name=key)
    return [k for k in result.unexpected_keys if "lora_" in k]


def copy(source: PeftModel, source_key: str, target: PeftModel, target_key: str) -> None:
    """Give adapter `target_key` the weights of `source_key`."""
    state = get_peft_model_state_dict(source, adapter_name=source_key)
    set_peft_model_state_dict(target, state, adapter_name=target_key)


def adapter_state(peft: PeftModel, key: str) -> dict[str, torch.Tensor]:
    """An adapter's LoRA tensors, detached copies on the CPU, keyed without the adapter's name
    (`...q_proj.lora_A.weight`), so that they load into an adapter of any name in any process."""
    return {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(peft, adapter_name=key).items()}


def load_adapter_state(peft: PeftModel, key: str, tensors: dict[str, torch.Tensor]) -> None:
    """Set adapter `key`'s LoRA tensors (copied in place, bit for bit) from `adapter_state`'s output."""
    result = set_peft_model_state_dict(peft, tensors, adapter_name=key)
    unexpected = [k for k in result.unexpected_keys if "lora_" in k]
    if unexpected:
        raise ValueError(f"adapter {key}: no place for saved tensor {unexpected[0]} (another rank or target modules?)")


def _devices(model) -> list[int]:
    """The CUDA devices whose generators an adapter's initialisation may draw from."""
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
