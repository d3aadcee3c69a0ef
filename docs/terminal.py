"""Capture what a newcomer's terminal shows after README command 1: docs/quickstart.svg.

    python docs/terminal.py [--config configs/quickstart.yaml] [--out docs/quickstart.svg] [--set KEY=VALUE ...]

Runs `neuromas run CONFIG` inside a detached tmux session of a fixed size (a real terminal, so
the live progress bars are what a person sees), waits for it to end, captures the pane with its
colours (`tmux capture-pane -e`) and renders that with rich as an SVG. The run directory goes to
a temporary folder. Needs tmux. `--set model.dtype=float32` shows, on a CPU with native bf16,
what a CPU without it runs (the README's timings are float32).
"""

from __future__ import annotations

import argparse
import io
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WIDTH, HEIGHT = 130, 48  # wide enough for the training bar with its figures and both times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("quickstart.svg"))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override passed on to `neuromas run` (repeatable)")
    args = parser.parse_args()
    if not shutil.which("tmux"):
        sys.exit("docs/terminal.py needs tmux (apt-get install tmux)")
    from rich.console import Console
    from rich.text import Text

    session = f"neuromas-capture-{int(time.time())}"
    with tempfile.TemporaryDirectory() as folder:
        done = Path(folder) / "done"
        overrides = "".join(f" --set {shlex.quote(item)}" for item in args.set)
        command = (f"neuromas run {shlex.quote(args.config)}{overrides} --out {shlex.quote(folder)}/run; "
                   f"touch {shlex.quote(str(done))}; sleep 3600")
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", str(HEIGHT),
                        command], check=True)
        try:
            deadline = time.monotonic() + args.timeout
            while not done.exists():
                if time.monotonic() > deadline:
                    sys.exit(f"the run did not end within {args.timeout:.0f} s")
                time.sleep(5)
            time.sleep(1)
            capture = subprocess.run(["tmux", "capture-pane", "-e", "-p", "-J", "-t", session],
                                     check=True, capture_output=True, text=True).stdout
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    console = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True)
    console.print(Text.from_ansi(capture.rstrip() + "\n"))
    console.save_svg(str(args.out), title=" ".join(["neuromas run", args.config, *(f"--set {o}" for o in args.set)]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
