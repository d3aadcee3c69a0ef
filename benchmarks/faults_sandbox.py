"""Parts 5 and 6 of `benchmarks/faults.py`: hostile programs in the HumanEval sandbox; a full and a
read-only run directory.

The attacks run in a grader process of their own (`python -m benchmarks.faults_sandbox DIR`),
started with a temporary HOME holding marker files and a secret in its environment, the way a
training run grades HumanEval. Each attack first tries the plain way (which the guard preamble
stops) and then undoes the preamble (a re-imported `posix` has the real `fork`, `kill` and
`system`; a re-imported `_socket` the real socket), so what is measured is the layers under it.
The host is checked after each: the markers unread and unchanged, no file written outside the
sandbox, no process of the attack left, the grader's secret not in anything the program wrote,
a bystander process (started here, its PID given to the attack) still alive, and no connection
reaching a listener on localhost. The fork bomb is bounded (200 forks): an unbounded one is not
something to run on a shared machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

UNGUARD = "import sys\nfor _m in ('posix', 'os', '_socket', 'socket', 'subprocess'):\n    sys.modules.pop(_m, None)\n" \
          "import posix\n"


def attacks(home: Path, secret: str, victim: int, port: int, escape: Path) -> dict[str, str]:
    """name -> program. Each prints what it got to stderr, which the grader then inspects."""
    say = "sys.stderr.write"
    return {
        "fork bomb (200 forks, each child leaves the group)": UNGUARD + f"""
import os, time
try:
    os.fork()
except Exception as e:
    {say}(f'guard: {{e}}\\n')
n = 0
for i in range(200):
    try:
        pid = posix.fork()
    except OSError:
        break
    if pid == 0:
        posix.setsid()
        time.sleep(60)
        posix._exit(0)
    n += 1
{say}(f'forked {{n}}\\n')
""",
        "read a file outside the sandbox (home marker)": UNGUARD + f"""
for path in [{str(home / 'secret.txt')!r}, '/etc/hostname']:
    try:
        {say}(f'read {{path}}: ' + open(path).read() + '\\n')
    except OSError as e:
        {say}(f'read {{path}}: {{e.strerror}}\\n')
""",
        "write outside the sandbox (home, /tmp, overwrite a marker)": UNGUARD + f"""
for path, mode in [({str(home / 'escape.txt')!r}, 'w'), ({str(escape)!r}, 'w'), ({str(home / 'keep.txt')!r}, 'w'),
                   ('/dev/shm/neuromas-escape-{secret[:8]}', 'w')]:
    try:
        open(path, mode).write('pwned')
        {say}(f'wrote {{path}}\\n')
    except OSError as e:
        {say}(f'write {{path}}: {{e.strerror}}\\n')
""",
        "the parent's environment variables": UNGUARD + f"""
import os
{say}('own env: ' + repr(sorted(os.environ)) + '\\n')
for pid in [p for p in posix.listdir('/proc') if p.isdigit()]:
    try:
        env = open(f'/proc/{{pid}}/environ', 'rb').read()
    except OSError:
        continue
    for item in env.split(b'\\0'):
        if item.startswith(b'FAULTS_SECRET='):
            {say}('found ' + item.decode() + '\\n')
""",
        "spawn a subprocess": UNGUARD + f"""
import subprocess
try:
    subprocess.run(['sh', '-c', 'echo pwned > {escape}-sub'])
except Exception as e:
    {say}(f'guard: {{e}}\\n')
status = posix.system('echo pwned > {escape}-sub; sleep 60 &')
{say}(f'system: {{status}}\\n')
""",
        "signals to other processes": UNGUARD + f"""
import os
try:
    os.kill({victim}, 9)
except Exception as e:
    {say}(f'guard: {{e}}\\n')
for target in [{victim}, posix.getppid()]:
    try:
        posix.kill(target, 9)
        {say}(f'sent SIGKILL to {{target}}\\n')
    except OSError as e:
        {say}(f'kill {{target}}: {{e.strerror}}\\n')
""",
        "deep recursion": """
import sys
sys.setrecursionlimit(10**8)
def f(n):
    return f(n + 1) + 1
f(0)
""",
        "threads that outlive the call": f"""
import threading, time
def later():
    time.sleep(3)
    open({str(home / 'thread.txt')!r}, 'w').write('late')
    open('{escape}-thread', 'w').write('late')
threading.Thread(target=later).start()
threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()
""",
        "huge output": """
import sys
chunk = 'x' * (1 << 20)
for _ in range(10_000):
    sys.stdout.write(chunk)
""",
        "huge memory": """
block = bytearray(8 << 30)
""",
        "network connection to a local listener": UNGUARD + f"""
import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'guard')
    {say}('connected through the guard\\n')
except Exception as e:
    {say}(f'guard: {{e}}\\n')
import _socket
s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect(('127.0.0.1', {port}))
    s.send(b'pwned')
    {say}('connected\\n')
except OSError as e:
    {say}(f'connect: {{e}}\\n')
""",
    }


def _sandbox_processes() -> list[int]:
    """PIDs of processes running a sandboxed program (or left over from one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"program.py" in cmdline or "neuromas-sbx-" in cwd:
            found.append(int(entry.name))
    return found


def grade_all(folder: Path, only: tuple[str, ...] = ()) -> list[dict]:
    """In the grader process: every attack (or those whose names start with one of `only`), the
    host checked after each."""
    from neuromas.tasks.sandbox import isolation, run_program

    home, secret = Path(os.environ["HOME"]), os.environ["FAULTS_SECRET"]
    markers = {name: secrets.token_hex(8) for name in ("secret.txt", "keep.txt")}
    for name, text in markers.items():
        (home / name).write_text(text)
    escape = Path("/tmp") / f"neuromas-faults-escape-{secret[:8]}"
    victim = subprocess.Popen(["sleep", "600"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    connections: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections.append(conn.recv(100))
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    results = []
    try:
        for name, code in attacks(home, secret, victim.pid, listener.getsockname()[1], escape).items():
            if only and not name.startswith(only):
                continue
            before = sorted(p.name for p in home.iterdir())
            result = run_program(code, timeout_s=5.0, memory_mb=1024)
            time.sleep(3.5 if "threads" in name else 0.3)  # give a lingering thread its chance
            said = result.stderr_tail
            problems = []
            if any((home / n).read_text() != text for n, text in markers.items()):
                problems.append("a marker file changed")
            if markers["secret.txt"] in said:
                problems.append("read the home marker")
            if secret in said:
                problems.append("read the parent's environment")
            if sorted(p.name for p in home.iterdir()) != before:
                problems.append("wrote in the home directory")
            leaked = [p for p in Path("/tmp").glob(escape.name + "*")] + list(Path("/dev/shm").glob("neuromas-escape-*"))
            if leaked:
                problems.append(f"wrote {leaked[0]}")
                for path in leaked:
                    path.unlink()
            deadline = time.monotonic() + 3  # a process killed at the timeout may take a moment to be gone
            while (left := _sandbox_processes()) and time.monotonic() < deadline:
                time.sleep(0.1)
            if left:
                problems.append(f"{len(left)} processes left")
            if victim.poll() is not None:
                problems.append("killed a bystander process")
                victim = subprocess.Popen(["sleep", "600"])
            if connections:
                problems.append("reached the local listener")
                connections.clear()
            results.append({"attack": name, "status": result.status, "contained": not problems,
                            "problems": problems, "said": " / ".join(line.strip() for line in said.splitlines()
                                                                      if line.strip())[-300:]})
    finally:
        stop.set()
        victim.kill()
        victim.wait()
    results.append({"isolation": " ".join(isolation())})
    return results


def run_attacks(folder: Path) -> tuple[dict, str]:
    """Start the grader with a temporary HOME and a secret in its environment; read its findings."""
    from benchmarks.common import table
    from benchmarks.faults_kill import child_env

    home = folder / "home"
    home.mkdir(parents=True)
    env = {**child_env(folder), "HOME": str(home), "FAULTS_SECRET": secrets.token_hex(16)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.faults_sandbox", str(folder)], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the sandbox grader failed:\n{done.stderr[-3000:]}")
    results = json.loads(done.stdout.strip().splitlines()[-1])
    isolation = results.pop()["isolation"]
    for r in results:
        print(f"attack {r['attack']}: {'contained' if r['contained'] else 'NOT contained: ' + ', '.join(r['problems'])}",
              flush=True)
    rows = [[r["attack"], r["status"], "yes" if r["contained"] else "NO: " + ", ".join(r["problems"]),
             r["said"][:160].replace("|", "/")] for r in results]
    markdown = (f"Sandbox namespaces here: `unshare {isolation}`.\n\n"
                + table(["attack", "sandbox status", "contained", "what the program reported"], rows))
    return {"attacks": len(results), "contained": sum(r["contained"] for r in results)}, markdown


if __name__ == "__main__":
    print(json.dumps(grade_all(Path(sys.argv[1]))))


# part 6: disk problems ---------------------------------------------------------------------------
# Run inside `unshare -rm` (a mount namespace of its own, no privileges needed): the mounts exist
# only for this shell and vanish with it. $1: the mount point, $2: the workspace (the config, and
# where the findings are written).
FULL_DISK = r"""
mnt="$1"; ws="$2"
mount -t tmpfs -o size=200k neuromas-full "$mnt" || exit 125
cd "$ws"
"$PYTHON" -m neuromas.cli train config.yaml --out "$mnt/run" -q > /dev/null 2> full.err; echo $? > full.status
(cd "$mnt/run" && find . -mindepth 1 | sort) > full.files
mount -o remount,size=64m "$mnt"
"$PYTHON" -m neuromas.cli train --resume "$mnt/run" -q > /dev/null 2> resume.err; echo $? > resume.status
(cd "$mnt/run/final" && sha256sum adapters/*/*) > resume.sha 2> /dev/null
"""
READ_ONLY = r"""
mnt="$1"; ws="$2"
cp -a "$ws/ref" "$mnt/copy" && rm -rf "$mnt/copy/final" "$mnt/copy/results.json"
mount --bind "$mnt" "$mnt" && mount -o remount,bind,ro "$mnt" || exit 125
cd "$ws"
"$PYTHON" -m neuromas.cli train config.yaml --out "$mnt/run" -q > /dev/null 2> ro-new.err; echo $? > ro-new.status
"$PYTHON" -m neuromas.cli train --resume "$mnt/copy" -q > /dev/null 2> ro-resume.err; echo $? > ro-resume.status
"""


def _lines(path: Path) -> list[str]:
    """What a run said on standard error after its config echo (a new run prints its resolved
    config and `run directory: ...` first) and its `resuming ...` line."""
    from benchmarks.faults_input import echo_end

    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("resuming ")]
    # the temporary mount points by role, before a line is cut short for the table
    return [re.sub(r"/\S*?/faults-(?:disk|ro)-\w+", "<mount>", line) for line in lines[echo_end(lines):]]


def run_disk(root: Path) -> tuple[dict, str]:
    """A run directory on a 200 KB filesystem (full at the first checkpoint), then resumed once the
    filesystem is larger; a run directory on a read-only mount, new and resumed."""
    import hashlib
    import shutil
    import tempfile

    from benchmarks.common import table
    from benchmarks.faults_kill import child_env

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        return {"disk_cases": 0, "disk_ok": 0}, "Skipped: no mount namespaces here (`unshare -rm` fails)."
    env = {**child_env(root), "PYTHON": sys.executable}
    want = {p.relative_to(root / "ref" / "final").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (root / "ref" / "final" / "adapters").glob("*/*")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="faults-disk-") as mnt:
        subprocess.run(["unshare", "-rm", "sh", "-c", FULL_DISK, "sh", mnt, str(root)], env=env, timeout=1800)
    err, status = _lines(root / "full.err"), (root / "full.status").read_text().strip()
    files = (root / "full.files").read_text().split()
    half = [f for f in files if ".tmp" in f or ".old-" in f]
    steps = sorted({f.split("/")[2] for f in files if f.startswith("./checkpoints/step-")})
    untrusted = [s for s in steps if f"./checkpoints/{s}/SHA256SUMS" not in files]
    ok = status == "2" and len(err) == 1 and "No space left" in err[0] and not half and not untrusted
    rows.append(["full filesystem (200 KB tmpfs): a new training run", f"exit {status}", err[0][:150] if err else "",
                 f"checkpoints {steps or 'none'}, temporary leftovers {half or 'none'}", "yes" if ok else "NO"])
    got = dict(line.split()[::-1] for line in (root / "resume.sha").read_text().splitlines() if line.strip())
    resume_status = (root / "resume.status").read_text().strip()
    resume_ok = resume_status == "0" and got == want
    rows.append(["the same run resumed once the filesystem is 64 MB", f"exit {resume_status}",
                 "; ".join(_lines(root / "resume.err"))[:150], "final adapters identical to the reference" if
                 got == want else "final adapters DIFFER", "yes" if resume_ok else "NO"])
    with tempfile.TemporaryDirectory(prefix="faults-ro-") as mnt:
        subprocess.run(["unshare", "-rm", "sh", "-c", READ_ONLY, "sh", mnt, str(root)], env=env, timeout=1800)
    cases = [("read-only mount: a new run's directory", "ro-new"), ("read-only mount: --resume of a run", "ro-resume")]
    ro_ok = 0
    for name, stem in cases:
        err, status = _lines(root / f"{stem}.err"), (root / f"{stem}.status").read_text().strip()
        one = status == "2" and len(err) == 1 and "Read-only" in err[0]
        ro_ok += one
        rows.append([name, f"exit {status}", err[0][:150] if err else "", "-", "yes" if one else "NO"])
    for row in rows:
        print(f"disk: {row}", flush=True)
    markdown = (table(["case", "exit", "what neuromas said", "left behind", "as required"], rows)
                + "\n\nA directory without write permission is not tried: these processes run as root, which "
                "ignores file modes; the read-only mount is the same refusal from the kernel.")
    return {"disk_cases": 4, "disk_ok": ok + resume_ok + ro_ok}, markdown
