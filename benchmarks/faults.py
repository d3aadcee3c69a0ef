"""Reliability in figures: kills, damaged files, hostile input, a server under faults, a hostile sandbox.

Six parts, each counted (issue 21), every process under test started here and ended by its PID:

1. kill   a small real training run (embedded model, float32, a checkpoint every step) killed
          with SIGKILL at random moments in rollouts, updates, checkpoint writing and the final
          save, then `--resume`d; and stopped by SIGTERM and by SIGINT (Ctrl-C), then resumed.
          Each must end with the uninterrupted run's adapters (byte for byte) and metrics.jsonl
          (all keys but the wall-clock `time/` ones).  faults_kill.py
2. corrupt  damaged checkpoints (cut short, a flipped bit, a missing optimizer state, edited
          files, a config.yaml edited after the start): refused in one line, then the newest
          intact checkpoint or a stop.  faults_kill.py
3. input  generated bad configs, YAML, JSONL task files, reward functions and command lines:
          each must get one line (or click's usage block) and exit status 2, no traceback; `reward`
          is the cases that run the model (a reward function misbehaving on a real answer).  faults_input.py
4. serve  `neuromas serve` under load and faults from another process.  faults_serve.py
5. sandbox  hostile programs in the HumanEval sandbox, the host checked after each.  faults_sandbox.py
6. disk   a run directory on a full filesystem and a read-only one.  faults_sandbox.py

    python -m benchmarks.faults                      # everything (about 75 min on 2 busy cores)
    python -m benchmarks.faults --parts input serve  # some parts; results are written only for all (or --partial)
    python -m benchmarks.faults --work DIR           # keep the working folder: a rerun reuses finished parts
    python -m benchmarks.faults --parts serve --merge  # rerun some parts, keep the others' earlier figures
    python -m benchmarks.faults --smoke              # 2 kills, a slice of each part; writes nothing
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import table, write_results

PARTS = ["kill", "corrupt", "input", "reward", "serve", "sandbox", "disk"]


def run_input(root: Path, smoke: bool, model: bool) -> tuple[dict, str]:
    """The bad-input cases that load no model (`model` False: part `input`) or those that do (the
    reward functions run on a real answer, `reward`): counts under `fuzz_*` / `reward_*`."""
    from benchmarks.faults_input import cases, run_case

    chosen = [c for c in cases(model=True) if c.model == model]
    if smoke:
        chosen = chosen[::12]
    results, failures = [], []
    for i, case in enumerate(chosen):
        result = run_case(case, root / f"case-{i}", timeout=300 if case.model else 120)
        results.append((case, result))
        if not result["ok"]:
            failures.append([case.kind, case.name, result["exit"], "yes" if result["traceback"] else "no",
                             result["said"] or "(nothing)"])
            print(f"input case NOT OK: {case.name}: {result}", flush=True)
    kinds = sorted({c.kind for c, _ in results})
    by_kind = [[k, sum(c.kind == k for c, _ in results), sum(c.kind == k and r["ok"] for c, r in results),
                sum(c.kind == k and r["traceback"] for c, r in results)] for k in kinds]
    prefix = "reward" if model else "fuzz"
    metrics = {f"{prefix}_cases": len(results), f"{prefix}_ok": sum(r["ok"] for _, r in results),
               f"{prefix}_tracebacks": sum(r["traceback"] for _, r in results),
               f"{prefix}_usage_blocks": sum(r["usage"] for _, r in results)}
    shown = [[c.kind, c.name, r["said"]] for c, r in results if r["ok"]]
    examples = shown if model else shown[::max(1, len(results) // 12)]
    markdown = ("| kind | cases | one line + exit 2 | tracebacks |\n|---|---|---|---|\n"
                + "\n".join("| " + " | ".join(str(x) for x in row) + " |" for row in by_kind)
                + ("\n\nWhat neuromas said:\n\n" if model else "\n\nSome of the lines said:\n\n")
                + table(["kind", "case", "line"], [[k, n, line.replace("|", "/")] for k, n, line in examples])
                + ("\n\nNot as required:\n\n" + table(["kind", "case", "exit", "traceback", "said"], failures)
                   if failures else "\n\nEvery case got its line and exit status 2."))
    return metrics, markdown


def run_kill(root: Path, smoke: bool, seed: int) -> tuple[dict, str]:
    from benchmarks.faults_kill import kill_and_resume

    metrics, rows = kill_and_resume(root, kills=2 if smoke else 10, steps=3, seed=seed)
    markdown = table(["#", "signal", "target", "when", "landed in", "resume exit", "identical"], rows)
    return metrics, markdown


def run_corrupt(root: Path) -> tuple[dict, str]:
    from benchmarks.faults_kill import corrupt_and_resume

    metrics, rows = corrupt_and_resume(root)
    return metrics, table(["damage", "expected", "exit", "what neuromas said", "as expected"], rows)


def run_part(part: str, root: Path, args) -> tuple[dict, str, str]:
    """(metrics, markdown, title) of one part."""
    if part == "kill":
        return (*run_kill(root, args.smoke, args.seed), "1. kill -9, SIGTERM and Ctrl-C during training, then --resume")
    if part == "corrupt":
        if not (root / "ref" / "final").is_dir():  # the damage is done to copies of the reference run
            from benchmarks.faults_kill import neuromas_cli

            neuromas_cli(root, "train", "config.yaml", "--out", "ref", "-q", timeout=1800).check_returncode()
        return (*run_corrupt(root), "2. damaged checkpoints and run files, then --resume")
    if part in ("input", "reward"):
        shutil.rmtree(root / part, ignore_errors=True)  # a rerun starts its cases afresh
        if part == "input":
            return (*run_input(root / part, args.smoke, model=False), "3. generated bad input")
        return (*run_input(root / part, args.smoke, model=True),
                "3b. reward functions that misbehave on a real answer (the model runs: `neuromas eval --limit 1`, "
                "and `neuromas train` for one step)")
    if part == "serve":
        from benchmarks.faults_serve import run_serve

        return (*run_serve(root / "serve", args.requests, args.concurrency, args.smoke),
                "4. `neuromas serve` under load and faults")
    if part == "sandbox":
        from benchmarks.faults_sandbox import run_attacks

        shutil.rmtree(root / "sandbox", ignore_errors=True)
        return (*run_attacks(root / "sandbox"), "5. hostile programs in the HumanEval sandbox")
    from benchmarks.faults_sandbox import run_disk

    if not (root / "ref" / "final").is_dir():
        from benchmarks.faults_kill import neuromas_cli

        neuromas_cli(root, "train", "config.yaml", "--out", "ref", "-q", timeout=1800).check_returncode()
    return (*run_disk(root), "6. a full and a read-only run directory")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "probe":  # the training process under test (faults_kill.py)
        from benchmarks.faults_kill import probe_main

        probe_main(sys.argv[3:] if sys.argv[2:3] == ["--"] else sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS)
    parser.add_argument("--seed", type=int, default=21, help="draws the kill moments")
    parser.add_argument("--requests", type=int, default=512, help="serve: requests under load")
    parser.add_argument("--concurrency", type=int, default=32, help="serve: clients at once")
    parser.add_argument("--smoke", action="store_true", help="2 kills, a slice of each part; writes nothing")
    parser.add_argument("--partial", action="store_true", help="write the results even if some parts did not run "
                        "(they are listed)")
    parser.add_argument("--merge", action="store_true", help="keep the parts not rerun from the results written "
                        "before (each says when and at which commit it was measured)")
    parser.add_argument("--work", help="working folder (default: a temporary one); a rerun with the same one "
                        "reuses the parts that finished")
    args = parser.parse_args()
    if args.smoke:
        args.requests = 40
    from benchmarks.common import RESULTS, commit, machine

    earlier = earlier_parts(RESULTS) if args.merge and (RESULTS / "faults.json").is_file() else {}
    parts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        root = Path(args.work or tmp)
        from benchmarks.faults_kill import workspace

        if not (root / "config.yaml").is_file():
            workspace(root)
        for part in args.parts:
            saved = root / f"part-{part}.json"
            if saved.is_file():  # a rerun with the same --work keeps the parts that finished
                found, markdown, title, seconds, *when = json.loads(saved.read_text())
                date, at = when or [datetime.fromtimestamp(saved.stat().st_mtime, UTC).isoformat(timespec="seconds"),
                                    "unknown"]
                print(f"== {part}: reusing {saved}", flush=True)
            else:
                start = time.monotonic()
                print(f"== {part}", flush=True)
                date, at = datetime.now(UTC).isoformat(timespec="seconds"), commit()
                found, markdown, title = run_part(part, root, args)
                seconds = round(time.monotonic() - start, 1)
                saved.write_text(json.dumps([found, markdown, title, seconds, date, at]))
            parts[part] = {"metrics": found, "markdown": private(markdown, root), "title": title, "seconds": seconds,
                           "commit": at, "date": date, "machine": machine()}
    merged = [part for part in PARTS if part not in parts and part in earlier]
    for part in merged:
        parts[part] = earlier[part]
    metrics: dict = {}
    sections: list[str] = []
    for part in [p for p in PARTS if p in parts]:
        done = parts[part]
        metrics.update(done["metrics"])
        note = (f"Not rerun: measured {done['date'][:10]} at commit {done['commit']} on {done.get('machine', '?')}.\n\n"
                if part in merged else "")
        sections.append(f"## {done['title']}\n\n{note}{done['markdown']}\n\n({done['seconds']:.0f} s)")
    if "reward_cases" in metrics and "fuzz_cases" in metrics:  # issue 21's totals over both input parts
        metrics["fuzz_cases"] += metrics["reward_cases"]
        metrics["fuzz_ok"] += metrics["reward_ok"]
        metrics["fuzz_tracebacks"] += metrics["reward_tracebacks"]
    if "fuzz_tracebacks" in metrics:
        metrics["tracebacks"] = metrics["fuzz_tracebacks"]
    metrics["seconds"] = {part: parts[part]["seconds"] for part in PARTS if part in parts}
    missing = [part for part in PARTS if part not in parts]
    if missing and args.partial:
        sections.append("## Not measured in this run\n\n" + ", ".join(missing))
    write = not args.smoke and (not missing or args.partial)
    config = {**vars(args), "work": "<work>" if args.work else None, "rerun": [p for p in PARTS if p in args.parts],
              "merged": merged}
    write_results("faults", config, metrics, "\n\n".join(sections), write=write, extra={"parts": parts})
    if not write and not args.smoke:
        print("faults: not every part ran, nothing written")


def private(markdown: str, root: Path) -> str:
    """No paths of this machine in the results: the working folder, the sandboxes' directories and
    part 6's temporary mount points by role."""
    markdown = re.sub(r"/tmp/neuromas-sbx-\w+", "<sandbox dir>", markdown.replace(str(root), "<work>"))
    return re.sub(r"/\S*?/faults-(?:disk|ro)-\w+", "<mount>", markdown)


# For a results file written before each part's figures were kept apart in it ("parts"): which
# metrics and which section of faults.md belong to which part.
LEGACY_KEYS = {"kill": ("kills", "resumed", "identical", "reference_step_s", "signal_stops"),
               "corrupt": ("corrupt_",), "input": ("fuzz_",), "reward": ("reward_",),
               "serve": ("serve_", "failures", "healthy_after", "rss_", "threads_", "sigterm_"),
               "sandbox": ("attacks", "contained"), "disk": ("disk_",)}
LEGACY_TITLES = {"kill": "1. ", "corrupt": "2. ", "input": "3. ", "reward": "3b. ", "serve": "4. ",
                 "sandbox": "5. ", "disk": "6. "}


def earlier_parts(results: Path) -> dict[str, dict]:
    """part -> its metrics, markdown, title, seconds, commit and date in the results written
    before (`--merge`: the parts not rerun keep those)."""
    record = json.loads((results / "faults.json").read_text())
    if "parts" in record:
        return record["parts"]
    sections = {}
    for chunk in (results / "faults.md").read_text().split("\n## ")[1:]:
        title, _, body = chunk.partition("\n\n")
        sections[title] = re.sub(r"\n*\(\d+ s\)\s*$", "", body.strip())
    parts = {}
    for part, prefix in LEGACY_TITLES.items():
        title = next((t for t in sections if t.startswith(prefix)), None)
        if title is not None:
            parts[part] = {"metrics": {k: v for k, v in record["metrics"].items() if k.startswith(LEGACY_KEYS[part])},
                           "markdown": sections[title], "title": title, "seconds": record["metrics"]["seconds"][part],
                           "commit": record["commit"], "date": record["date"], "machine": record["machine"]}
    return parts

if __name__ == "__main__":
    main()
