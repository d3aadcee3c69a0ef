"""docs/tutorial.md runs as written: its code blocks are read out of the page and executed in
order in an empty directory (issue 19), so the page cannot drift from the code.

Blocks: ```python file=NAME``` (and any other language with file=) are written to NAME;
```bash``` blocks run with bash; a ```bash server``` block is a long-running command that the
page tells the reader to start in a second terminal: here it starts in the background and the
next blocks run once it answers. Two things change on the way, both for the test machine, not
the page's meaning: `neuromas run` gets small settings (one training step on two inputs), and
port 8000 becomes a free port.
"""

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import neuromas
from neuromas.localserver import free_port, stop, wait_for

PAGE = Path(__file__).parent.parent / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SMALL = "--set train.steps=1 --set train.batch_size=2 --set train.group_size=2 --set eval.limit=4"


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, info after it, body) of every fenced block, in page order."""
    return [(lang, info.strip(), body) for lang, info, body in BLOCK.findall(text)]


def wrappers(bin_dir: Path) -> None:
    """`neuromas` and `python` as this test session has them: the interpreter running pytest and the
    neuromas package under test, found after whatever PYTHONPATH the page sets (it sets `.`)."""
    source = Path(neuromas.__file__).resolve().parents[1]
    bin_dir.mkdir()
    for name, tail in (("python", '"$@"'), ("neuromas", '-m neuromas.cli "$@"')):
        script = textwrap.dedent(f"""\
            #!/bin/sh
            export PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{source}"
            exec {shlex.quote(sys.executable)} {tail}
            """)
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)


def test_the_page_has_every_step():
    kinds = [(lang, info) for lang, info, _ in blocks(PAGE.read_text())]
    assert ("python", "file=my_rewards.py") in kinds and ("yaml", "file=minutes.yaml") in kinds
    assert ("bash", "server") in kinds and ("python", "file=ask.py") in kinds
    commands = " ".join(body for lang, info, body in blocks(PAGE.read_text()) if lang == "bash")
    for command in ("neuromas run", "neuromas report", "neuromas serve", "python ask.py"):
        assert command in commands


@pytest.mark.slow
def test_every_block_of_the_tutorial_runs(tmp_path):
    work, port = tmp_path / "work", free_port()
    work.mkdir()
    wrappers(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "NEUROMAS_PROGRESS": "plain"}
    env.pop("PYTHONPATH", None)  # what a reader has: the page's own PYTHONPATH=. and the installed package
    server, outputs = None, []
    try:
        for lang, info, body in blocks(PAGE.read_text()):
            body = body.replace("8000", str(port))
            if info.startswith("file="):
                (work / info.removeprefix("file=")).write_text(body)
            elif lang == "bash" and info == "server":
                server = subprocess.Popen(["bash", "-c", body], cwd=work, env=env, stdout=subprocess.DEVNULL,
                                          stderr=open(tmp_path / "server.log", "w"))
                wait_for(f"http://127.0.0.1:{port}/health", 300, server)
            elif lang == "bash":
                body = re.sub(r"^(.*neuromas run .*)$", rf"\1 {SMALL}", body, flags=re.MULTILINE)
                result = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=work, env=env,
                                        capture_output=True, text=True, timeout=900)
                assert result.returncode == 0, (body, result.stdout, result.stderr)
                outputs.append(result.stdout + result.stderr)
    finally:
        if server is not None:
            stop(server)
    log = "\n".join(outputs)
    assert "Network(widths=[2, 1]" in log  # neuromas show
    assert "after training" in log and (work / "runs" / "minutes" / "report.html").is_file()
    answer = outputs[-1]  # python ask.py: the reply, then every node's message
    assert all(f"\n{node}: " in answer for node in ("L1N1", "L1N2", "L2N1")), answer
