"""Running model-written Python with limits: what grades HumanEval.

Layers, each catching what the previous one misses (none is a security boundary against a
determined attacker; together they stop the accidents and crude reward hacks an RL policy finds):

1. A separate interpreter, `python -I` (no user site, no PYTHON* variables), in a fresh temporary
   directory that is deleted afterwards, with a minimal environment and no stdin.
2. Its own session and process group, killed as a whole at the wall-clock timeout.
3. Resource limits set between fork and exec: address space (a huge allocation raises
   MemoryError), CPU seconds, file size (stdout and stderr go to files, so an endless print
   cannot fill the host's memory), no core files, and no new processes or threads where that
   limit is enforced (RLIMIT_NPROC counts per user, and root is exempt from it).
4. Namespaces, where the machine allows them (`unshare -rn --pid --mount-proc`, no privileges
   needed; see `isolation()`): no network (a new network namespace with only a downed
   loopback); its own PID namespace, so it sees and can signal no process but its own, and
   every process it starts dies with it (even one that left the process group); its own mount
   namespace in which every file system is read-only except the temporary directory, and the
   grader's home directory is hidden (unless the interpreter lives in it). Where only a network
   namespace can be made, only that; where none, none.
5. A guard preamble, after OpenAI human-eval's `reliability_guard`, that replaces the functions
   that start processes, send signals, open sockets or delete and move files with ones that
   raise. It is only a preamble: the program can undo it (re-importing `posix` gives the real
   `fork` and `kill` back), which is why the layers above do not rely on it.
6. "Passed" means exit status 0 *and* a random token printed after the last line of the
   program: code that calls `sys.exit(0)` early, before the tests run, does not pass.
"""

from __future__ import annotations

import functools
import math
import os
import resource  # imported here, not in the child: preexec_fn must not import
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]
_TAIL_CHARS = 2000
_MAX_OUTPUT_BYTES = 1 << 20  # RLIMIT_FSIZE: stdout/stderr files and anything the program writes

GUARD = '''\
def _neuromas_guard():
    import builtins, os, posix, shutil, socket, subprocess, sys

    def blocked(*args, **kwargs):
        raise PermissionError("disabled in the neuromas sandbox")

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            raise PermissionError("network is disabled in the neuromas sandbox")

    for name in ("system", "popen", "kill", "killpg", "fork", "forkpty", "vfork", "execv",
                 "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
                 "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
                 "spawnvpe", "posix_spawn", "posix_spawnp", "putenv", "unsetenv", "remove",
                 "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate",
                 "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "chroot", "chdir",
                 "fchdir", "setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid",
                 "setresuid", "setresgid", "link", "symlink", "mkfifo", "mknod"):
        for module in (os, posix):  # posix too: os re-exports it, and reload(os) re-reads it
            if hasattr(module, name):
                setattr(module, name, blocked)
    for name in ("Popen", "call", "run", "check_call", "check_output", "getoutput",
                 "getstatusoutput"):
        setattr(subprocess, name, blocked)
    sys.modules["_posixsubprocess"].fork_exec = blocked
    for name in ("rmtree", "move", "chown"):
        setattr(shutil, name, blocked)
    socket.socket = NoSocket
    for name in ("create_connection", "create_server", "socketpair", "fromfd"):
        setattr(socket, name, blocked)
    sys.modules["_socket"].socket = NoSocket
    builtins.help = blocked
    for name in ("ctypes", "_ctypes", "multiprocessing", "resource", "pty", "psutil"):
        sys.modules[name] = None  # "import ctypes" now raises ImportError


_neuromas_guard()
del _neuromas_guard
'''


@dataclass(frozen=True)
class SandboxResult:
    """How a program ended. `status`: passed; failed (an exception, a non-zero exit, or an exit
    before the last line); timeout (wall clock or CPU limit); error (the sandbox could not run
    it, or a signal other than the time limits killed it)."""

    passed: bool
    status: Status
    stderr_tail: str
    seconds: float


@functools.cache
def network_isolation() -> tuple[str, ...]:
    """The command prefix that puts the child in its own network namespace, or () if none works.

    `unshare -rn` needs unprivileged user namespaces (or root); `unshare --net` needs root. The
    first that can start Python here is used, once per process.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for flags in (("-rn",), ("--net",)):
        try:
            probe = subprocess.run([unshare, *flags, sys.executable, "-I", "-c", "pass"],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return (unshare, *flags)
    return ()


# Run by `sh` inside the new namespaces, before the program: the work directory ($1) becomes a
# mount of its own, every other mount is made read-only, the home directory to hide ($2, or
# "") is covered by an empty read-only tmpfs, no new processes where RLIMIT_NPROC applies (not
# to root), then the program.
_MOUNT_SCRIPT = r"""
work="$1"; hide="$2"; shift 2
mount --bind "$work" "$work" || exit 125
awk '{print $2}' /proc/self/mounts | while read -r m; do
  case "$m" in "$work"|/proc|/proc/*) ;; *) mount -o remount,bind,ro "$m" 2>/dev/null ;; esac
done
if [ -n "$hide" ]; then mount -t tmpfs -o ro,size=4k neuromas-hidden "$hide" || exit 125; fi
ulimit -u 1 2>/dev/null
exec "$@"
"""


@functools.cache
def isolation() -> tuple[str, ...]:
    """The namespaces flags that work here: network + PID + mounts, else network only, else ()."""
    unshare = shutil.which("unshare")
    full = ("-rn", "--pid", "--fork", "--kill-child", "--mount-proc")
    if unshare is not None:
        with tempfile.TemporaryDirectory(prefix="neuromas-sbx-probe-") as tmp:
            command = [unshare, *full, "sh", "-c", _MOUNT_SCRIPT, "sh", tmp, "", sys.executable, "-I", "-c", "pass"]
            try:
                if subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=10).returncode == 0:
                    return full
            except (OSError, subprocess.TimeoutExpired):
                pass
    return network_isolation()[1:]


def _home_to_hide(work: Path) -> str:
    """The grader's home directory, when hiding it leaves the interpreter and `work` visible."""
    home = os.environ.get("HOME", "")
    if not home or not os.path.isdir(home) or os.path.realpath(home) == "/":
        return ""
    real = Path(os.path.realpath(home))
    needed = [Path(os.path.realpath(p)) for p in (sys.executable, sys.base_prefix, sys.prefix, work)]
    return "" if any(p == real or real in p.parents for p in needed) else str(real)


def _limits(timeout_s: float, memory_mb: int, nproc: bool) -> None:
    """Between fork and exec in the child: only setrlimit calls (no imports, no allocation)."""
    cpu = math.ceil(timeout_s) + 1  # SIGXCPU backs up the wall clock if the waiter stalls
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_OUTPUT_BYTES, _MAX_OUTPUT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nproc:  # root ignores RLIMIT_NPROC; in the namespaces the mount script sets it, after its own forks
        resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))


def _tail(path: Path, chars: int = _TAIL_CHARS) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 4 * chars))
            return f.read().decode("utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def _wait_then_kill_group(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for the child to exit, then kill its whole group; True if late.

    The child is not reaped until after the kill (waitid with WNOWAIT): while it is a zombie its
    pid, which is also its group's id, cannot be reused, so the kill can only reach our group.
    The kill also runs if the wait is interrupted, so no child outlives its grader.
    """
    deadline = time.monotonic() + timeout_s
    late = True
    try:
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                late = False
                break
            time.sleep(0.005)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # also any children it left behind
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    return late


def _run_in(work: Path, source: str, timeout_s: float,
            memory_mb: int) -> tuple[int, bool, str, str]:
    """Run `source` as work/program.py; (exit status, late, stdout tail, stderr tail)."""
    (work / "program.py").write_text(source, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1"}
    flags = isolation()
    if "--pid" in flags:
        command = [shutil.which("unshare"), *flags, "sh", "-c", _MOUNT_SCRIPT, "sh", str(work.resolve()),
                   _home_to_hide(work), sys.executable, "-I", "program.py"]
    else:
        command = [*network_isolation(), sys.executable, "-I", "program.py"]
    with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
        # preexec_fn is documented as unsafe with threads because the child may need a lock
        # another thread held at fork; `_limits` takes none (no imports, no logging).
        proc = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True,
                                preexec_fn=functools.partial(_limits, timeout_s, memory_mb,
                                                             os.geteuid() != 0 and "--pid" not in flags))
    late = _wait_then_kill_group(proc, timeout_s)
    return proc.returncode, late, _tail(work / "stdout", 200), _tail(work / "stderr")


def _note(stderr: str, note: str) -> str:
    return f"{stderr}\n[{note}]" if stderr else f"[{note}]"


def run_program(code: str, timeout_s: float = 5.0, memory_mb: int = 1024) -> SandboxResult:
    """Run `code` in the sandbox; passed when it runs to its last line and exits 0."""
    start = time.monotonic()
    token = secrets.token_hex(16)
    source = f"{GUARD}\n{code}\n\nprint({token!r}, flush=True)\n"
    try:
        with tempfile.TemporaryDirectory(prefix="neuromas-sbx-", ignore_cleanup_errors=True) as tmp:
            rc, late, stdout, stderr = _run_in(Path(tmp), source, timeout_s, memory_mb)
    except OSError as e:
        return SandboxResult(False, "error", f"cannot run the sandbox: {e}",
                             time.monotonic() - start)
    seconds = time.monotonic() - start
    if late or rc in (-signal.SIGXCPU, -signal.SIGKILL):
        return SandboxResult(False, "timeout", _note(stderr, f"timed out after {timeout_s}s"),
                             seconds)
    if rc < 0:
        return SandboxResult(False, "error", _note(stderr, f"killed by signal {-rc}"), seconds)
    passed = rc == 0 and stdout.rstrip().endswith(token)
    if rc == 0 and not passed:
        stderr = _note(stderr, "exited before the end of the program")
    return SandboxResult(passed, "passed" if passed else "failed", stderr, seconds)


def run_programs(codes: list[str], timeout_s: float = 5.0, memory_mb: int = 1024,
                 workers: int | None = None) -> list[SandboxResult]:
    """`run_program` on each code, a few at a time (each child is mostly one busy core)."""
    workers = workers or max(2, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda code: run_program(code, timeout_s, memory_mb), codes))
