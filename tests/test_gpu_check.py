"""benchmarks/gpu_check.py's parts that run without a GPU: the results it assembles, a failing
part, and the embedded model written as a transformers directory (what vLLM loads)."""

import pytest
import torch
from benchmarks.gpu_check import PARTS, assemble, run_part


def test_assemble_reports_every_part_and_the_speedups():
    parts = {
        "convert": {"size_mb": 515},
        "rollout_hf": {"tokens_per_s": 1000.0},
        "profile_rollout": {"skipped": "not in --parts"},
        "rollout_vllm": {"tokens_per_s": 5000.0},
        "step_hf": {"step_s": 4.0},
        "determinism": {"identical": True},
        "step_vllm": {"step_s": 2.0},
        "fresh_adapters": {"error": "AssertionError: stale adapters?\nmore"},
        "quickstart": {"skipped": "no vLLM"},
    }
    metrics, markdown = assemble(parts)
    assert metrics["status"] == {"convert": "ok", "rollout_hf": "ok", "profile_rollout": "skipped", "rollout_vllm": "ok",
                                 "step_hf": "ok", "determinism": "ok", "step_vllm": "ok", "fresh_adapters": "FAILED", "quickstart": "skipped"}
    assert metrics["ok"] is False
    assert metrics["rollout_vllm_speedup"] == 5.0 and metrics["step_vllm_speedup"] == 2.0
    assert metrics["convert_size_mb"] == 515 and "fresh_adapters_error" not in metrics
    assert "| fresh_adapters | FAILED | AssertionError: stale adapters? |" in markdown
    assert markdown.count("\n") == len(PARTS) + 1  # header, rule, one row per part


def test_parts_not_run_and_all_ok():
    metrics, _ = assemble({})
    assert set(metrics["status"].values()) == {"not run"} and not metrics["ok"]
    metrics, _ = assemble({name: {"x": 1} for name in PARTS})
    assert metrics["ok"] and "rollout_vllm_speedup" not in metrics


def test_a_failing_part_is_recorded_and_the_next_one_runs():
    parts: dict = {}
    run_part("convert", parts, lambda: 1 / 0)
    run_part("rollout_hf", parts, lambda: {"tokens_per_s": 1.0})
    assert parts["convert"] == {"error": "ZeroDivisionError: division by zero"}
    assert parts["rollout_hf"]["tokens_per_s"] == 1.0 and "seconds" in parts["rollout_hf"]


@pytest.mark.slow
def test_the_embedded_model_as_a_transformers_directory_gives_the_same_logits(backend32, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from neuromas.models import save_hf_directory

    directory = save_hf_directory(tmp_path / "smollm2")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {f.name for f in directory.iterdir()}
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    chat = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 3+5?"}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert list(ids) == backend32.encode(chat)  # the chat template travels with it
    with torch.no_grad():
        ours = model(torch.tensor([list(ids)])).logits
        theirs = backend32.model(torch.tensor([list(ids)])).logits  # no adapter active: the base model
    assert torch.equal(ours, theirs)
