"""The `neuromas` command end to end: a real tiny run, and one clear line for every bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).parent / "fixtures"


# What only the extras install (pyproject.toml). The command runs with them blocked, so these tests
# also show that every command works after README command 1, which installs none (issue 19).
OPTIONAL = ("fastapi", "uvicorn", "openai", "ray", "vllm", "datasets", "llama_cpp", "playwright", "trl")


def neuromas(*args: str, cwd: Path, blocked: tuple[str, ...] = OPTIONAL) -> subprocess.CompletedProcess:
    """`neuromas ARGS` in a child interpreter where the `blocked` packages cannot be imported:
    `sys.modules[name] = None` makes `import name` raise ImportError, as when it is not installed."""
    code = (f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
            f"from neuromas.cli import app\nsys.argv = ['neuromas', *{list(args)!r}]\napp()\n")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)


def write_config(path: Path, **changes) -> Path:
    config = {
        "seed": 1,
        "network": {"layers": [2, 1], "generation": {"max_new_tokens": 8}},
        "task": {"name": "arith", "operands": 3, "digits": 1, "train_size": 100, "test_size": 20},
        "eval": {"limit": 4, "batch_size": 2},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_run_writes_a_complete_run_directory(tmp_path):
    config = write_config(tmp_path / "tiny.yaml")
    result = neuromas("run", str(config), "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "out"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["network"]["layers"][0]["width"] == 2 and saved["seed"] == 1
    assert saved["model"]["dtype"] == "auto"  # defaults are resolved and saved too
    traces = [json.loads(line) for line in (run_dir / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 4
    for trace in traces:
        assert set(trace["messages"]) == {"L1N1", "L1N2", "L2N1"}
        assert trace["answer"] == trace["messages"]["L2N1"]["text"]
        assert trace["reward"] in (0.0, 1.0)
        assert all(len(m["token_ids"]) == len(m["logprobs"]) <= 8 for m in trace["messages"].values())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["eval"]["n"] == 4 and results["eval"]["calls_per_q"] == 3
    assert 0 <= results["eval"]["ci_low"] <= results["eval"]["acc"] <= results["eval"]["ci_high"] <= 1
    assert "| [2, 1] |" in (run_dir / "results.md").read_text()
    assert results["model_dtype"] in ("bfloat16", "float32")  # what dtype: auto chose on this machine
    assert "acc" in result.stdout
    # Not a terminal: one plain line per evaluation, no redrawn bars, no library warnings; then what to do next.
    assert "Warning" not in result.stderr and "\r" not in result.stderr and "de-quantizing" not in result.stderr
    assert "\neval: arith/test: acc " in result.stderr and "open it in a browser: " in result.stderr
    assert "report: out/report.html" in result.stderr and "next: neuromas baselines out/config.yaml" in result.stderr


def test_show_prints_the_network(tmp_path):
    result = neuromas("show", str(write_config(tmp_path / "c.yaml")), "--set", "network.layers=[3,2,1]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Network(widths=[3, 2, 1]" in result.stdout and "(L3N1) <- L2N1, L2N2, input  [readout]" in result.stdout



def test_help_show_tasks_and_config_errors_load_no_torch(tmp_path):
    """The answers that need no model come without torch's seconds of import time."""
    good, bad = write_config(tmp_path / "c.yaml"), write_config(tmp_path / "bad.yaml", network__widht=2)
    code = f"""
import sys
from typer.testing import CliRunner
from neuromas.cli import app
for args, status in ((["--help"], 0), (["show", {str(good)!r}], 0), (["tasks"], 0), (["run", {str(bad)!r}], 2),
                     (["eval", {str(bad)!r}], 2), (["train", {str(bad)!r}], 2),
                     (["grow", ".", "-o", "x", "--widen", "a"], 2)):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == status, (args, result.output)
print(sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"network__widht": 2}, "network.widht: unknown key"),
        ({"network__edges": ["L1N1->L2N1", "L2N1->L1N2", "L1N2->L2N1"]}, "cycle"),
        ({"task": {"name": "navigate", "data_dir": "no/such/dir"}}, "not found"),
        ({"task": {"name": "jsonl", "path": str(FIXTURES / "custom.jsonl"), "reward": "no_such_module:score"}},
         "reward function 'no_such_module:score' cannot be imported"),
        ({"task": {"name": "arithmetic"}}, "unknown task 'arithmetic'"),
        ({"task": {"name": "arith", "operand": 3}}, "operand"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, changes, expected):
    config = write_config(tmp_path / "bad.yaml", **changes)
    result = neuromas("run", str(config), "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert expected in lines[0]
    assert not (tmp_path / "out").exists()  # nothing is written before the config is known good


def test_missing_config_file_and_bad_yaml(tmp_path):
    result = neuromas("run", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "config file not found: nope.yaml" in result.stderr
    (tmp_path / "broken.yaml").write_text("network: [1, 2\n")
    result = neuromas("eval", "broken.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "not valid YAML" in result.stderr and "Traceback" not in result.stderr


def test_train_without_steps_and_resume_without_a_run(tmp_path):
    result = neuromas("train", str(write_config(tmp_path / "c.yaml")), "--out", "out", cwd=tmp_path)
    assert result.returncode == 2 and "train.steps is 0" in result.stderr and not (tmp_path / "out").exists()
    result = neuromas("train", "--resume", "nowhere", cwd=tmp_path)
    assert result.returncode == 2 and "config file not found: nowhere/config.yaml" in result.stderr


def test_a_new_run_refuses_a_directory_with_checkpoints(tmp_path):
    (tmp_path / "out" / "checkpoints" / "step-000005").mkdir(parents=True)
    (tmp_path / "out" / "metrics.jsonl").write_text('{"step": 1}\n')
    result = neuromas("run", str(write_config(tmp_path / "c.yaml")), "--out", "out", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "out already holds a run (checkpoints up to step-000005)" in lines[0]
    assert "neuromas run --resume out" in lines[0]
    assert (tmp_path / "out" / "metrics.jsonl").read_text() == '{"step": 1}\n'  # the old run untouched


def test_rollout_workers_and_ray_go_together(tmp_path):
    config = str(write_config(tmp_path / "c.yaml", train={"steps": 1, "rollout_workers": 2}))
    for args, expected in (([], "train.rollout_workers 2 samples the rollouts on Ray workers: add --ray local"),
                           (["--ray", "local", "--set", "train.rollout_workers=0"], "--ray local: set train.rollout_workers")):
        result = neuromas("train", config, "--out", "out", *args, cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
        assert not (tmp_path / "out").exists()
    result = neuromas("run", config, "--out", "out", "--ray", "local", cwd=tmp_path)  # Ray not installed
    assert result.returncode == 2 and "--ray (Ray) needs the optional extra [ray]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_missing_key_variable_and_a_missing_run(tmp_path):
    from typer.testing import CliRunner

    from neuromas.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "configs/quickstart.yaml", "--api-key-env", "NEUROMAS_NO_SUCH_VAR"])
    assert result.exit_code == 2 and "NEUROMAS_NO_SUCH_VAR" in result.output
    result = runner.invoke(app, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a run directory, saved network or config file" in result.output
