"""Modules import one way (DESIGN.md section 7): the layers contract in pyproject.toml holds, and
no module imports another that imports it back, directly or through others, not even inside a
function (both checks read every import statement, not only those run at import time)."""

import graphlib
import subprocess
import sys
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_the_layers_contract_holds(capsys):
    status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert status == 0, capsys.readouterr().out


def test_no_module_is_part_of_an_import_cycle():
    graph = grimp.build_graph("neuromas")
    sorter = graphlib.TopologicalSorter({m: graph.find_modules_directly_imported_by(m) for m in graph.modules})
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None



def test_import_neuromas_loads_no_torch():
    """`import neuromas` stays light (DESIGN.md section 7): its names are imported on first use."""
    code = "import sys, neuromas; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
