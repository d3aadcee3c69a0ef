"""One GPU, under 10 minutes: does everything the CPU machines cannot try work on a GPU?

Run by hand on a machine with one CUDA GPU and vLLM (`pip install -e ".[vllm]"`); no hub, no
internet: the embedded SmolLM2-135M GGUF is converted to a transformers directory first
(`models.save_hf_directory`), and every part loads that directory. In order:

1. `convert`: the GGUF as a local transformers directory, loaded back on the GPU in bf16;
2. `rollout_hf`, `rollout_vllm`: generated tokens/s of one sampled rollout of a [2, 2, 1]
   network (fresh LoRA adapter per node, `--inputs` x G `--samples`, `--tokens` per message), on
   the hf backend in bf16 and on vLLM with one LoRA per node (the same adapters, saved and loaded);
3. `step_hf`, `step_vllm`: the time of a [2, 1] training step (quickstart settings) with
   `train.rollout_backend: hf` and `vllm` (mean of `--steps` after a warm-up step);
4. `determinism`: two [2, 1] trainers from one seed, `--steps` hf steps each: their adapters must
   come out equal bit for bit (`rl.trainer.update_kernels`: on CUDA the update runs
   attention on the math kernel, the fused kernels' backward being non-deterministic);
5. `fresh_adapters`: after an update, vLLM samples from the updated adapters, not stale ones:
   every adapter is changed (its LoRA B scaled up, a large update), the trainer syncs, and vLLM's
   greedy messages must change and agree with the hf backend's greedy messages under the new
   adapters (`--min-agreement`; bf16 kernels differ, so near-ties may part);
6. `profile_rollout` (only when `--parts` names it): torch.profiler over a rollout of
   `--profile-inputs` inputs: the device's busy share, kernel launches per forward;
7. `quickstart`: `--train-steps` steps of the quickstart recipe (configs/quickstart.yaml, vLLM
   rollouts) with greedy test accuracy before and after.

Results: benchmarks/results/gpu_check.json and .md (`--results DIR` elsewhere), rewritten after
every part, so that a run stopped at a time limit keeps what it measured. A part that fails is
recorded with its error and the others still run; the exit status is 1 when any failed. Without
vLLM importable (a GPU image without it; its wheel is too large to carry to some machines) the
vLLM parts are recorded as skipped and the quickstart part trains with hf rollouts.

    python -m benchmarks.gpu_check                    # on the GPU machine
    python -m benchmarks.gpu_check --smoke            # on a CPU: tiny sizes, the hf parts only; writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import CONFIGS, peak_rss_gb, table, write_results

PARTS = ["convert", "rollout_hf", "profile_rollout", "rollout_vllm", "step_hf", "determinism", "step_vllm", "fresh_adapters",
         "quickstart"]
VLLM_PARTS = {"rollout_vllm", "step_vllm", "fresh_adapters", "quickstart"}


def assemble(parts: dict[str, dict]) -> tuple[dict, str]:
    """The results file's metrics and markdown from each part's figures (or its error).

    `parts`: part name -> its figures, `{"error": ...}` when it raised, `{"skipped": reason}` when
    it could not run here. Parts missing from `parts` count as not run.
    """
    status = {name: _status(parts.get(name)) for name in PARTS}
    metrics: dict = {"ok": all(s == "ok" for s in status.values()), "status": status}
    for name in PARTS:
        for key, value in (parts.get(name) or {}).items():
            if key not in ("error", "skipped"):
                metrics[f"{name}_{key}"] = value
    hf, vllm = parts.get("rollout_hf", {}), parts.get("rollout_vllm", {})
    if "tokens_per_s" in hf and "tokens_per_s" in vllm:
        metrics["rollout_vllm_speedup"] = round(vllm["tokens_per_s"] / hf["tokens_per_s"], 2)
    step_hf, step_vllm = parts.get("step_hf", {}), parts.get("step_vllm", {})
    if "step_s" in step_hf and "step_s" in step_vllm:
        metrics["step_vllm_speedup"] = round(step_hf["step_s"] / step_vllm["step_s"], 2)
    rows = [[name, status[name], _summary(parts.get(name) or {})] for name in PARTS]
    markdown = table(["part", "status", "figures"], rows)
    return metrics, markdown


def _status(part: dict | None) -> str:
    if part is None:
        return "not run"
    if "error" in part:
        return "FAILED"
    return "skipped" if "skipped" in part else "ok"


def _summary(part: dict) -> str:
    if "error" in part:
        return str(part["error"]).splitlines()[0][:200]
    if "skipped" in part:
        return part["skipped"]
    return ", ".join(f"{key} {value}" for key, value in part.items()).replace("\n", "\\n")  # one table row


def run_part(name: str, parts: dict[str, dict], work: Callable[[], dict],
             record: Callable[[], object] | None = None) -> None:
    """Run one part, keeping its figures or its error: one failure must not hide the others.

    `record` (when given) writes the results so far after the part.
    """
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
        parts[name] = {**work(), "seconds": round(time.perf_counter() - start, 1)}
    except Exception as error:  # noqa: BLE001 - a check reports every failure and goes on
        traceback.print_exc()
        parts[name] = {"error": f"{type(error).__name__}: {error}"}
    print(f"   {parts[name]}", flush=True)
    if record is not None:
        record()


def vllm_missing() -> str | None:
    """Why vLLM cannot run here, or None when it can be imported."""
    try:
        import vllm  # noqa: F401
    except ImportError as error:
        return f"vLLM is not installed here ({error})"
    return None


# the parts ------------------------------------------------------------------------------------
def rollout_figures(net, examples, samples: int, task, backend=None) -> dict:
    """Generated tokens/s of one sampled rollout (after a one-input warm-up)."""
    net.train()
    net(examples[:1], num_samples=1, task=task, seed=1, backend=backend)
    start = time.perf_counter()
    traces = net(examples, num_samples=samples, task=task, seed=2, backend=backend)
    seconds = time.perf_counter() - start
    tokens = sum(m.num_tokens for m in {id(m): m for t in traces for m in t.messages.values()}.values())
    return {"tokens": tokens, "rollout_s": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1)}


def profile_figures(net, examples, samples: int, task, top: int = 12) -> dict:
    """Where one sampled rollout's time goes (torch.profiler): how busy the device was, and how many
    kernels each forward launched. A device busy a small share of the wall time is waiting on Python.

    Not in the default parts: on an H200 (torch 2.11, CUDA activity traced) a rollout of 8 inputs x 8
    samples had not finished after 320 s under the profiler (the unprofiled rollout of 32 inputs: 138 s).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    net.train()
    net(examples[:1], num_samples=1, task=task, seed=1)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        net(examples, num_samples=samples, task=task, seed=2)
        if cuda:
            torch.cuda.synchronize()
    wall = time.perf_counter() - start
    events = prof.key_averages()

    def device_us(event) -> float:
        return getattr(event, "self_device_time_total", getattr(event, "self_cuda_time_total", 0.0))

    print(events.table(sort_by="self_cpu_time_total", row_limit=25), flush=True)
    forwards = sum(e.count for e in events if e.key == "aten::embedding")  # one per model forward
    launches = sum(e.count for e in events if "LaunchKernel" in e.key)
    device_s = sum(device_us(e) for e in events) / 1e6
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {"wall_s": round(wall, 2), "device_busy_s": round(device_s, 2),
            "device_busy_share": round(device_s / wall, 3), "forwards": forwards,
            "ms_per_forward": round(1000 * wall / max(forwards, 1), 2), "kernel_launches": launches,
            "launches_per_forward": round(launches / max(forwards, 1), 1),
            "top_self_cpu_ms": {e.key: round(e.self_cpu_time_total / 1000, 1) for e in ranked}}


def step_figures(trainer, steps: int) -> dict:
    """Mean time of `steps` training steps after a warm-up step."""
    trainer.train_step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        metrics = trainer.train_step()
        times.append(time.perf_counter() - start)
    return {"step_s": round(statistics.mean(times), 2), "rollout_s": round(metrics["time/rollout_s"], 2),
            "reward_mean": round(metrics["reward/mean"], 4)}


def determinism_figures(make_trainer: Callable, steps: int, require_update: bool = True) -> dict:
    """Train two trainers of one seed `steps` steps each; their adapters must be equal bit for bit,
    and (`require_update`) the steps must have changed them, or the comparison proves nothing."""
    weights, start = [], None
    for _ in range(2):
        trainer = make_trainer()  # attaches the adapters, initialized from the network's seed
        start = start or {name: p.detach().float().cpu() for name, p in trainer.net.named_parameters()}
        for _ in range(steps):
            trainer.train_step()
        weights.append({name: p.detach().float().cpu() for name, p in trainer.net.named_parameters()})
        del trainer
    first, second = weights
    if not first:
        raise AssertionError("the trainer has no adapter parameters to compare")
    updated = sum(not first[name].equal(start[name]) for name in first)
    if require_update and not updated:
        raise AssertionError(f"{steps} steps left every adapter as it started (every group tied?): nothing to compare")
    differ = [name for name in first if not first[name].equal(second[name])]
    if differ:
        largest = max((first[n] - second[n]).abs().max().item() for n in differ)
        raise AssertionError(f"two runs of one seed differ after {steps} steps in {len(differ)} of {len(first)} "
                             f"adapter tensors (largest difference {largest:.3g}), e.g. {differ[0]}")
    return {"steps": steps, "tensors": len(first), "updated": updated, "identical": True}


def fresh_adapter_figures(trainer, examples, task, min_agreement: float) -> dict:
    """Change every adapter a lot, sync, and compare vLLM's greedy messages with hf's."""
    import torch

    net = trainer.net

    def greedy(backend) -> list[str]:
        net.eval()
        traces = net(examples, task=task, backend=backend)
        return [m.text for t in traces for m in t.messages.values()]

    before = greedy(trainer._synced_rollout_backend())
    with torch.no_grad():  # a large update: every LoRA B away from what vLLM holds
        generator = torch.Generator().manual_seed(0)
        for name, param in net.named_parameters():
            if "lora_B" in name:
                param.add_(torch.randn(param.shape, generator=generator).to(param) * 0.05)
    after_vllm, after_hf = greedy(trainer._synced_rollout_backend()), greedy(None)
    changed = sum(a != b for a, b in zip(before, after_vllm)) / len(before)
    agreement = sum(a == b for a, b in zip(after_vllm, after_hf)) / len(after_hf)
    if changed == 0 or agreement < min_agreement:
        raise AssertionError(f"vLLM after the update: {changed:.0%} of messages changed, {agreement:.0%} equal to hf's "
                             f"(need > 0 and >= {min_agreement:.0%}): stale adapters?")
    return {"messages": len(before), "changed": round(changed, 3), "agreement_with_hf": round(agreement, 3)}


def quickstart_figures(model, steps: int, eval_limit: int, engine, smoke: bool) -> dict:
    from neuromas.build import build_network, load_task
    from neuromas.configfile import load_config
    from neuromas.eval import evaluate
    from neuromas.rl.trainer import Trainer

    overrides = [f"train.steps={steps}", f"train.rollout_backend={'hf' if engine is None else 'vllm'}"]
    if smoke:
        overrides += ["train.batch_size=2", "train.group_size=2", "network.generation.max_new_tokens=4"]
    config = load_config(CONFIGS / "quickstart.yaml", overrides)
    config.model = model
    task, net = load_task(config), build_network(config)
    before = evaluate(net, task, "test", eval_limit, progress=False)
    start = time.perf_counter()
    Trainer(net, task, config.train, progress=False, rollout_backend=engine).train()
    train_s = time.perf_counter() - start
    after = evaluate(net, task, "test", eval_limit, progress=False)
    return {"steps": steps, "acc_before": round(before.acc, 4), "acc_after": round(after.acc, 4),
            "train_s": round(train_s, 1), "step_s": round(train_s / steps, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=32, help="inputs of the [2, 2, 1] rollouts")
    parser.add_argument("--samples", type=int, default=8, help="G of the rollouts and training steps")
    parser.add_argument("--tokens", type=int, default=48, help="message budget of the [2, 2, 1] rollouts")
    parser.add_argument("--steps", type=int, default=3, help="timed [2, 1] training steps per rollout backend")
    parser.add_argument("--train-steps", type=int, default=50, help="steps of the quickstart recipe")
    parser.add_argument("--eval-limit", type=int, default=128, help="test questions before and after")
    parser.add_argument("--profile-inputs", type=int, default=8, help="inputs of the profiled [2, 2, 1] rollout")
    parser.add_argument("--min-agreement", type=float, default=0.75)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=[p for p in PARTS if p != "profile_rollout"],
                        help="the parts to run (default: all but profile_rollout; convert always runs, the others "
                             "load its directory)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the converted model goes (default: temporary)")
    parser.add_argument("--results", type=Path, default=None, help="folder of the results (default: benchmarks/results)")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, hf parts only; writes nothing")
    args = parser.parse_args()
    args.parts = ["convert", *args.parts]
    if args.smoke:
        args.inputs, args.samples, args.tokens, args.steps, args.train_steps, args.eval_limit = 2, 2, 4, 1, 1, 4
        args.profile_inputs = 1

    import torch

    from neuromas import tasks
    from neuromas.backends.vllm import VLLMBackend
    from neuromas.config import ModelConfig, TrainConfig
    from neuromas.models import save_hf_directory
    from neuromas.network import Network
    from neuromas.rl.trainer import Trainer

    device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA GPU (or --smoke on a CPU)")
    parts: dict[str, dict] = {}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("workdir", "results")}

    def part(name: str, work: Callable[[], dict]) -> None:
        if name in args.parts:
            run_part(name, parts, work, record)
        else:
            parts[name] = {"skipped": "not in --parts"}

    def record(final: bool = False) -> dict:
        """Write the results so far (a smoke run prints them once, at the end) and return the metrics."""
        metrics, markdown = assemble(parts)
        metrics["peak_rss_gb"] = round(peak_rss_gb(), 3)
        if torch.cuda.is_available():
            metrics["gpu"] = torch.cuda.get_device_name(0)
            metrics["gpu_peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if final or not args.smoke:
            write_results("gpu_check", settings, metrics, markdown, folder=args.results, write=not args.smoke)
        return metrics

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temporary:
        work = args.workdir or Path(temporary)
        directory = work / "smollm2-135m-instruct"
        hf_model = ModelConfig(name=str(directory), dtype="float32" if args.smoke else "bfloat16", device=device)
        arith = tasks.load("arith", operands=2, digits=2)  # the quickstart's task
        examples = arith.examples("train")[: args.inputs]

        def convert() -> dict:
            save_hf_directory(directory)
            net = Network([1], model=hf_model)
            net.eval()
            trace = net(examples[:1], task=arith)[0]
            return {"size_mb": round(sum(f.stat().st_size for f in directory.iterdir()) / 2**20), "answer": trace.answer[:40]}

        part("convert", convert)
        wide = Network({"layers": [2, 2, 1], "generation": {"max_new_tokens": args.tokens, "temperature": 1.0}},
                       model=hf_model).attach_adapters()
        part("rollout_hf", lambda: rollout_figures(wide, examples, args.samples, arith))
        part("profile_rollout", lambda: profile_figures(wide, examples[: args.profile_inputs], args.samples, arith))

        def train_config(backend: str) -> TrainConfig:
            return TrainConfig(steps=args.steps + 1, batch_size=8 if not args.smoke else 2, group_size=args.samples,
                               lr=1e-3, rollout_backend=backend)

        def quickstart_net() -> Network:
            return Network({"layers": [2, 1], "generation": {"max_new_tokens": 16 if not args.smoke else 4,
                                                             "temperature": 0.7}}, model=hf_model)

        part("step_hf", lambda: step_figures(Trainer(quickstart_net(), arith, train_config("hf"), progress=False),
                                             args.steps))
        part("determinism", lambda: determinism_figures(
            lambda: Trainer(quickstart_net(), arith, train_config("hf"), progress=False), args.steps,
            require_update=not args.smoke))  # a smoke step's 4-token replies all score 0: no update
        engine = None
        no_vllm = "--smoke: no vLLM on a CPU" if args.smoke else vllm_missing()
        if no_vllm is None and not (VLLM_PARTS - {"quickstart"}) & set(args.parts):
            no_vllm = "not in --parts"
        if no_vllm is not None:
            for name in VLLM_PARTS - {"quickstart"}:
                parts[name] = {"skipped": no_vllm}
        else:  # one engine for every vLLM part: each holds most of the GPU's memory
            torch.cuda.empty_cache()  # what the hf parts cached, so that vLLM finds its share free
            engine = VLLMBackend.from_config(ModelConfig(name=str(directory), backend="vllm", dtype="bfloat16"),
                                             max_lora_rank=wide.config.adapters.rank)

            def rollout_vllm() -> dict:
                wide.save(work / "wide")
                engine.load_adapters(work / "wide" / "adapters")
                return rollout_figures(wide, examples, args.samples, arith, backend=engine)

            part("rollout_vllm", rollout_vllm)
            trainer = Trainer(quickstart_net(), arith, train_config("vllm"), progress=False, rollout_backend=engine)
            part("step_vllm", lambda: step_figures(trainer, args.steps))
            part("fresh_adapters", lambda: fresh_adapter_figures(trainer, arith.examples("test")[:16], arith,
                                                                 args.min_agreement))
        part("quickstart", lambda: quickstart_figures(hf_model, args.train_steps, args.eval_limit, engine, args.smoke))

    metrics = record(final=True)
    raise SystemExit(0 if all(s != "FAILED" for s in metrics["status"].values()) else 1)


if __name__ == "__main__":
    main()
