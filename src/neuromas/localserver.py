"""Local servers on free localhost ports, for the tests and benchmarks that talk to real ones.

`llama_cpp_server` starts llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`)
on a GGUF file (the embedded model by default) in a child process; `ThreadedServer` runs an
ASGI app (`neuromas serve`'s) with uvicorn in a thread of this process. Both stop what they
started, and only that: the child by its own PID.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers; fail early if `process` (the server) exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"no answer from {url} within {seconds} s")


@contextlib.contextmanager
def llama_cpp_server(
    model: str | Path | None = None, threads: int = 2, alias: str = "smollm2-135m", log: str | Path | None = None,
    ctx: int = 4096,
) -> Iterator[str]:
    """Yield the /v1 URL of a llama.cpp server on `model` (default: the embedded GGUF)."""
    from neuromas.models import embedded_model_path

    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model or embedded_model_path()),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(ctx), "--n_threads", str(threads),
               "--n_threads_batch", str(threads), "--model_alias", alias]
    with open(log or os.devnull, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/models", 120, process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)


def stop(process: subprocess.Popen, grace_s: float = 20) -> None:
    """End a server this process started: SIGTERM, then SIGKILL if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ThreadedServer:
    """A uvicorn server for an ASGI app, in a background thread: `with ThreadedServer(app) as s`;
    `options` go to `uvicorn.Config` (e.g. `serve.uvicorn_options`)."""

    def __init__(self, app, port: int | None = None, **options):
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_for(f"{self.url}/health", 60)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
