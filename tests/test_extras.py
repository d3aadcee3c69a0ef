"""Every command the README names works after README command 1 (no extras), or says in one line
which extra to install, with exit status 2 (issue 19).

`neuromas(...)` of test_cli.py runs the command with every optional package blocked, so the CLI
tests there (a real tiny `neuromas run` among them) also run without the extras.
"""

import subprocess
import tomllib
from pathlib import Path

import pytest

from test_cli import neuromas, write_config
from test_report import synthetic_run

ROOT = Path(__file__).parent.parent


def assert_one_line_naming(result: subprocess.CompletedProcess, extra: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f'pip install -e ".[{extra}]"' in last, last


def test_serve_and_the_openai_backend_are_default_dependencies():
    """So `neuromas serve` and `model.backend: openai` work after README command 1."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {spec.split(">")[0].split("=")[0].split("[")[0].strip() for spec in project["dependencies"]}
    assert {"fastapi", "uvicorn", "openai"} <= names


@pytest.mark.parametrize("blocked", [("fastapi", "uvicorn"), ("uvicorn",)])
def test_serve_without_fastapi_or_uvicorn_says_which_extra(tmp_path, blocked):
    result = neuromas("serve", str(write_config(tmp_path / "c.yaml")), cwd=tmp_path, blocked=blocked)
    assert_one_line_naming(result, "serve")
    assert len(result.stderr.strip().splitlines()) == 1  # before any model or network is built


def test_eval_on_ray_without_ray_says_which_extra(tmp_path):
    result = neuromas("eval", str(write_config(tmp_path / "c.yaml")), "--ray", "local", "--out", "r", cwd=tmp_path)
    assert_one_line_naming(result, "ray")


def test_the_openai_backend_without_the_client_says_which_extra(tmp_path):
    config = write_config(tmp_path / "c.yaml")
    result = neuromas("eval", str(config), "--set", "model.backend=openai", "--out", "r", cwd=tmp_path)
    assert_one_line_naming(result, "openai")


def test_report_tasks_and_help_need_no_extra(tmp_path):
    synthetic_run(tmp_path / "run")
    for args in (["report", "run"], ["tasks"], ["--help"]):
        result = neuromas(*args, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
    assert (tmp_path / "run" / "report.html").is_file()
