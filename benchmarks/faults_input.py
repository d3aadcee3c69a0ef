"""Part 3 of `benchmarks/faults.py`: generated bad input, each of which must get one line and exit 2.

A case is a command line and the files it reads (a config, a JSONL task file, a reward module):
configs with wrong types, out-of-range and non-finite values, unknown keys, YAML errors, binary
bytes, huge and deeply nested files; JSONL task files with bad rows; reward functions that do
not import, raise, return NaN, the wrong length or the wrong type; bad command-line arguments.
`cases()` builds them; the benchmark runs each in a fresh process, `tests/test_faults.py` runs
the fast ones in this process through typer's test runner.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass, field

import yaml

from benchmarks.faults_kill import ROWS

# a valid config that loads no model when shown: every config case breaks one thing in it
BASE = {
    "seed": 0,
    "model": {"dtype": "float32"},
    "network": {"layers": [1], "generation": {"max_new_tokens": 2}, "adapters": {"rank": 2}},
    "task": {"name": "jsonl", "path": "rows.jsonl", "train_size": 4, "test_size": 2},
    "eval": {"limit": 1},
    "train": {"steps": 1, "batch_size": 2, "group_size": 2},
}

# (dotted key, bad values): wrong types, out of range, not finite
BAD_VALUES = {
    "seed": ["abc", 1.5, [1], {"a": 1}],
    "model.dtype": ["float64", 16, ["bf16"]],
    "model.backend": ["nope", 3],
    "model.name": [123, ["x"]],
    "network.layers": [[], [0], [-1], "2x1", [[1]], [1.5], {"a": 1}, None, [1, "x"]],
    "network.generation.max_new_tokens": [0, -5, "many", 1e30, None],
    "network.generation.temperature": [-1, "hot", float("nan"), float("inf")],
    "network.generation.top_p": [0, 1.5, -0.1, float("nan")],
    "network.adapters.rank": [0, -1, "big", 2.5],
    "network.adapters.sharing": ["none", 1],
    "network.edges": [["L1N1->L9N9"], ["garbage"], [1], "L1N1->L2N1", ["L1N1->L1N1"]],
    "network.skip": ["some", [1], ["L9N9->L1N1"]],
    "network.input_to_all": ["maybe", 3, [True]],
    "network.input_slices": ["x", {"a": 1}],
    "task.name": ["nope", 5, None, ""],
    "task.path": ["missing.jsonl", 7, "."],
    "task.train_size": [-1, 10_000, "all"],
    "task.test_size": [-3, 10_000],
    "eval.split": ["validation", 7],
    "eval.limit": [-3, "all", 1.5],
    "eval.batch_size": [0, -1, "big"],
    "train.steps": [-1, "ten", 1.5],
    "train.batch_size": [0, -2],
    "train.group_size": [0, "eight"],
    "train.lr": [-1, "fast", float("nan"), float("inf")],
    "train.eval_every": [-1, "often"],
    "train.checkpoint_every": [0, -1],
    "train.keep_checkpoints": [0, -1],
    "train.max_grad_norm": [-1, float("nan")],
    "train.epochs": [0, -1],
    "train.clip_eps": [-0.2, float("nan")],
    "train.kl_coef": [-1, float("nan"), float("inf")],
    "train.freeze": [["L9N9"], 5],
    "train.growth": [[{"at_step": 0}], [{"at_step": 1, "widen": [{"layer": 9, "width": 2}]}], "yes",
                     [{"at_step": 1, "deepen": [{"after_layer": 5, "width": 1}]}]],
    "train.lr_schedule": ["exp", 1],
    "train.warmup_steps": [-1],
    "init_from": [5, ["a"]],
}
SECTIONS = ["", "model", "network", "network.generation", "network.adapters", "eval", "train"]

# bad YAML text (and bytes)
BAD_YAML = {
    "unclosed bracket": b"network: {layers: [2, 1\n",
    "bad indentation": b"network:\n  layers: [1]\n generation: {}\n",
    "tab indentation": b"network:\n\tlayers: [1]\n",
    "unclosed quote": b"seed: 'abc\n",
    "two colons": b"seed: 1: 2\n",
    "python tag": b"seed: !!python/object/apply:os.system ['echo pwned']\n",
    "undefined alias": b"seed: *nope\n",
    "bad directive": b"%YAML 9.9\n---\nseed: 1\n",
    "two documents": b"seed: 1\n---\nseed: 2\n",
    "NUL byte": b"seed: 1\x00\n",
    "control byte": b"seed: \x07\n",
    "invalid UTF-8": b"seed: \xff\xfe\n",
    "UTF-16 with BOM": "seed: 1\n".encode("utf-16"),
    "deep nesting": b"[" * 100_000,
    "deep mapping": b"{a: " * 50_000,
    "alias bomb": b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n".encode()
        for i in range(9)) + b"task: {name: jsonl, path: rows.jsonl, extra: *j}\n",
    "a list": b"- 1\n- 2\n",
    "a string": b"just some words\n",
    "a number": b"42\n",
    "huge (40 MB)": b"seed: 0\nnote: '" + b"x" * 40_000_000 + b"'\n",
    "long key list": b"".join(f"key{i}: {i}\n".encode() for i in range(200_000)),
}


@dataclass
class Case:
    """A command line (after `neuromas`) and the files it needs in its working directory."""

    name: str
    kind: str  # config, yaml, override, jsonl, reward-import, reward-run, reward-train, cli
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    model: bool = False  # loads the model (slow): benchmark only

    def config(self) -> dict:
        return yaml.safe_load(self.files["c.yaml"]) if "c.yaml" in self.files else {}


def _set(data: dict, key: str, value) -> dict:
    data = json.loads(json.dumps(data))  # a deep copy
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return data


def _yaml(data) -> bytes:
    return yaml.safe_dump(data, sort_keys=False).encode()


def _rows(rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


GOOD_FILES = {"rows.jsonl": _rows(ROWS)}


def config_cases() -> list[Case]:
    out = []
    for key, values in BAD_VALUES.items():
        for value in values:
            files = {**GOOD_FILES, "c.yaml": _yaml(_set(BASE, key, value))}
            out.append(Case(f"{key} = {value!r}"[:80], "config", ["show", "c.yaml"], files))
    for section in SECTIONS:
        for typo in ("colour", "lr_rate"):
            key = f"{section}.{typo}".lstrip(".")
            out.append(Case(f"unknown key {key}", "config", ["show", "c.yaml"],
                            {**GOOD_FILES, "c.yaml": _yaml(_set(BASE, key, 1))}))
    for typo in ("trian", "netwrok"):
        out.append(Case(f"misspelt section {typo}", "config", ["show", "c.yaml"],
                        {**GOOD_FILES, "c.yaml": _yaml({**BASE, typo: {"steps": 1}})}))
    for name, text in BAD_YAML.items():
        out.append(Case(f"YAML: {name}", "yaml", ["show", "c.yaml"], {**GOOD_FILES, "c.yaml": text}))
    rng = random.Random(0)
    for i in range(8):
        out.append(Case(f"random bytes #{i}", "yaml", ["show", "c.yaml"],
                        {**GOOD_FILES, "c.yaml": bytes(rng.randrange(256) for _ in range(rng.randint(1, 4000)))}))
    out += [Case("config is a directory", "yaml", ["show", "."], GOOD_FILES),
            Case("config does not exist", "yaml", ["show", "nope.yaml"], GOOD_FILES),
            Case("config path empty", "yaml", ["show", ""], GOOD_FILES)]
    return out


def override_cases() -> list[Case]:
    good = {**GOOD_FILES, "c.yaml": _yaml(BASE)}
    bad = ["noequals", "=5", "network.layers=[", "train.steps=abc", "a.b.c=1", "seed.x=1", "network=5",
           "network.layers.0=2", "seed=[", "seed={a: [}", "train.lr=.nan", "network.generation.top_p=.inf",
           "network..layers=[1]", "eval.limit=-1", "task.name=", "model.dtype=[1, 2]"]
    out = [Case(f"--set {value}", "override", ["show", "c.yaml", "--set", value], good) for value in bad]
    for what, text in [("a list", b"- 1\n"), ("a string", b"words\n")]:
        out.append(Case(f"--set on a config that is {what}", "override", ["show", "c.yaml", "--set", "seed=1"],
                        {**GOOD_FILES, "c.yaml": text}))
    return out


def jsonl_cases() -> list[Case]:
    good = ROWS[:4]
    bad_rows = {
        "a line of bad JSON": [*good, "{input: 1"],
        "a row that is a list": [*good, "[1, 2]"],
        "a row that is a string": [*good, '"hello"'],
        "a row that is a number": [*good, "3"],
        "a row without input": [*good, {"target": "x"}],
        "a row without target": [*good, {"input": "x"}],
        "input is a number": [*good, {"input": 5, "target": "x"}],
        "input is null": [*good, {"input": None, "target": "x"}],
        "parts not a list": [*good, {"input": "x", "target": "y", "parts": "a"}],
        "parts empty": [*good, {"input": "x", "target": "y", "parts": []}],
        "parts not strings": [*good, {"input": "x", "target": "y", "parts": [1, 2]}],
        "part_targets wrong length": [*good, {"input": "x", "target": "y", "parts": ["a"], "part_targets": [1, 2]}],
        "deeply nested row": [*good, "[" * 100_000 + "]" * 100_000],
        "NaN target": [*good, '{"input": "x", "target": NaN}'],
    }
    raw = {
        "empty file": b"",
        "blank lines only": b"\n\n  \n",
        "invalid UTF-8": b'{"input": "caf\xe9", "target": "x"}\n',
        "binary noise": bytes(range(256)) * 4,
        "UTF-8 BOM": b"\xef\xbb\xbf" + _rows(good),
        "NUL bytes": b'{"input": "a\x00b", "target": "x"}\n' * 2,
    }
    out = []
    for name, rows in bad_rows.items():
        out.append(Case(f"JSONL: {name}", "jsonl", ["show", "c.yaml"],
                        {"rows.jsonl": _rows(rows), "c.yaml": _yaml(_set(BASE, "task.test_size", 1))}))
    for name, data in raw.items():
        out.append(Case(f"JSONL: {name}", "jsonl", ["show", "c.yaml"],
                        {"rows.jsonl": data, "c.yaml": _yaml(_set(BASE, "task.test_size", 1))}))
    gz = _set(BASE, "task.path", "rows.jsonl.gz")
    out += [
        Case("JSONL: .gz that is not gzip", "jsonl", ["show", "c.yaml"], {"rows.jsonl.gz": _rows(good), "c.yaml": _yaml(gz)}),
        Case("JSONL: .gz cut short", "jsonl", ["show", "c.yaml"],
             {"rows.jsonl.gz": gzip.compress(_rows(good))[:30], "c.yaml": _yaml(gz)}),
        Case("JSONL: path is a directory", "jsonl", ["show", "c.yaml"],
             {"sub/x": b"", "c.yaml": _yaml(_set(BASE, "task.path", "sub"))}),
    ]
    return out


def reward_cases() -> list[Case]:
    from benchmarks.faults_kill import BROKEN_MODULE, REWARDS

    modules = {"faults_rewards.py": REWARDS.encode(), "faults_broken.py": BROKEN_MODULE.encode(),
               "faults_import_raises.py": b"raise RuntimeError('import-time bug')\n",
               "faults_import_exits.py": b"import sys\nsys.exit(3)\n"}
    bad_specs = ["nomodule_xyz:f", "faults_rewards", "faults_rewards:missing", "faults_rewards:length:extra", ":",
                 "faults_rewards:", ":length", "faults_broken:broken", "faults_import_raises:f", "faults_import_exits:f",
                 "math:pi", "faults_rewards:REWARDS", "os.path:sep", "..:x", "faults rewards:length"]
    out = []
    for spec in bad_specs:
        files = {**GOOD_FILES, **modules, "c.yaml": _yaml(_set(BASE, "task.reward", spec))}
        out.append(Case(f"reward {spec!r}", "reward-import", ["show", "c.yaml"], files))
    for fn in ["raises", "nan", "inf", "too_short", "too_long", "strings", "none", "scalar", "nested", "dict_scores",
               "no_kwargs", "exits", "recursion"]:
        files = {**GOOD_FILES, **modules, "c.yaml": _yaml(_set(BASE, "task.reward", f"faults_rewards:{fn}"))}
        out.append(Case(f"reward function {fn}", "reward-run", ["eval", "c.yaml", "--limit", "1", "--out", "run", "-q"],
                        files, model=True))
    for fn in ["nan_in_training", "short_in_training"]:  # the trainer's batch, after an evaluation that went well
        files = {**GOOD_FILES, **modules, "c.yaml": _yaml(_set(BASE, "task.reward", f"faults_rewards:{fn}"))}
        out.append(Case(f"reward function {fn} (train)", "reward-train", ["train", "c.yaml", "--out", "run", "-q"],
                        files, model=True))
    return out


def cli_cases() -> list[Case]:
    good = {**GOOD_FILES, "c.yaml": _yaml(BASE), "notarun/readme.txt": b"x"}
    argvs = [
        [], ["frobnicate"], ["train"], ["train", "--resume", "nowhere"], ["train", "--resume", "notarun"],
        ["train", "--resume", "c.yaml"], ["train", "c.yaml", "--resume", "notarun"], ["train", "c.yaml", "--set"],
        ["train", "c.yaml", "--set", "train.steps=0"], ["run"], ["run", "c.yaml", "--bogus"],
        ["eval", "c.yaml", "--limit", "abc"], ["eval", "c.yaml", "--limit", "-1"], ["eval", "c.yaml", "--split", "nope"],
        ["eval", "c.yaml", "--ray-workers", "0", "--ray", "local"], ["eval", "c.yaml", "--ray-workers", "x"],
        ["eval"], ["grow"], ["grow", "notarun"], ["grow", "nowhere", "--out", "g", "--widen", "1:2"],
        ["grow", "notarun", "--out", "g", "--widen", "1:2"], ["grow", "notarun", "--out", "g", "--widen", "abc"],
        ["grow", "notarun", "--out", "g", "--deepen", "1"], ["grow", "notarun", "--out", "g", "--init", "zero"],
        ["report", "nowhere"], ["report", "notarun"], ["report", "c.yaml"], ["report", "notarun", "--examples", "x"],
        ["serve", "nowhere"], ["serve", "notarun"], ["serve", "c.yaml", "--port", "99999"],
        ["serve", "c.yaml", "--port", "-1"], ["serve", "c.yaml", "--api-key-env", "NO_SUCH_VAR_XYZ"],
        ["serve", "c.yaml", "--max-batch", "0"], ["serve", "c.yaml", "--timeout", "-5"],
        ["baselines", "c.yaml", "-m", "nope"], ["baselines", "c.yaml", "-m", "cot:foo=1"],
        ["baselines", "c.yaml", "-m", "debate:agents=x"], ["baselines", "c.yaml", "--run", "nowhere", "--ray", "local"],
        ["show"], ["show", "c.yaml", "--nope"], ["tasks", "extra"], ["eval", "c.yaml", "--set", "=="],
        ["run", "--resume", "notarun", "--set", "seed=1"],
    ]
    return [Case("neuromas " + " ".join(argv), "cli", argv, good) for argv in argvs]


def cases(model: bool = True) -> list[Case]:
    out = config_cases() + override_cases() + jsonl_cases() + reward_cases() + cli_cases()
    return [c for c in out if model or not c.model]


# running them ---------------------------------------------------------------------------------
USAGE_LINES = ("Usage:", "Try ", "╭", "╰", "│")  # click's usage block around a bad argument


def write_files(folder, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def echo_end(lines: list[str]) -> int:
    """Where the config echo ends: a command that starts a run (train, eval, run) prints its
    resolved config and `run directory: ...` first (cli._start), which is output, not the problem."""
    marks = [i for i, line in enumerate(lines) if line.startswith("run directory: ")]
    return marks[0] + 1 if marks else 0


def judge(returncode: int, stdout: str, stderr: str) -> dict:
    """Exit 2, no traceback, and the problem said: in one line, or in click's usage block."""
    traceback = "Traceback (most recent call last)" in stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    lines = lines[echo_end(lines):]
    if not lines and stdout.lstrip().startswith("Usage:"):  # no arguments at all: the help, exit 2
        lines = ["Usage: (the help, on stdout)", "│ no command given: the help"]
    usage = bool(lines) and lines[0].startswith(("Usage:", "╭"))
    problem = [line for line in lines if not line.startswith(USAGE_LINES)] if not usage else \
        [line for line in lines if line.startswith("│")]
    return {"exit": returncode, "traceback": traceback, "usage": usage, "lines": len(problem),
            "ok": returncode == 2 and not traceback and (usage or len(problem) == 1),
            "said": (problem[0] if problem else "").strip("│ ")[:160]}


def run_case(case: Case, folder, timeout: float) -> dict:
    import subprocess
    import sys

    from benchmarks.faults_kill import child_env

    folder.mkdir(parents=True)
    write_files(folder, case.files)
    try:
        done = subprocess.run([sys.executable, "-m", "neuromas.cli", *case.argv], cwd=folder, env=child_env(folder),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"exit": None, "traceback": False, "usage": False, "lines": 0, "ok": False,
                "said": f"no answer within {timeout:.0f} s"}
    return judge(done.returncode, done.stdout, done.stderr)
