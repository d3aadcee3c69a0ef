"""Writing run files and directories whole or not at all, and checking that they still are.

A saved directory (a checkpoint, a saved network) ends with `SHA256SUMS`, written last, in the
format `sha256sum -c` reads: a file cut short, a flipped bit or a file edited or deleted since
is found before anything is loaded from it (`verify_checksums`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

# Errors of the machine rather than of the program: a full disk, a read-only or forbidden directory.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file; a
    refused write removes the temporary file and names `path` (not the temporary name)."""
    tmp = None
    try:
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)
    except OSError as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp.name)
        raise OSError(error.errno, error.strerror, str(path)) from error


def disk_error(error: BaseException, path: Path | str | None = None) -> OSError | None:
    """The refused write behind `error` (a full disk, a read-only or forbidden directory) as an
    OSError with its errno and the path; None when `error` is something else. Writers in native
    code wrap the OSError: safetensors raises "I/O error: No space left on device (os error 28)"."""
    if isinstance(error, OSError):
        code, strerror = error.errno, error.strerror
    else:
        found = re.search(r"\(os error (\d+)\)", str(error))
        code = int(found.group(1)) if found else None
        strerror = os.strerror(code) if code is not None else None
    if code not in DISK_ERRNOS:
        return None
    name = str(path) if path is not None else getattr(error, "filename", None)
    return OSError(code, strerror, name)


def _mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding `path`: the longest one in /proc/self/mounts that
    contains it (a bind mount shares its device with its parent, so `os.path.ismount` misses it);
    elsewhere the nearest directory up that `ismount` accepts."""
    path = Path(os.path.abspath(path))
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            fields = [line.split() for line in f]
        # a space in a mount point is written \040 (octal)
        points = [Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field[1]))
                  for field in fields if len(field) > 1]
        return max((m for m in points if m == path or m in path.parents), key=lambda m: len(m.parts))
    except (OSError, ValueError):
        pass
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def disk_message(error: OSError, run_dir: Path | str | None = None) -> str:
    """One line for a refused write: what could not be written, why, and the fix (with `run_dir`,
    how a training run continues once it is fixed)."""
    target = Path(error.filename) if error.filename else None
    where = _mount_point(target) if target is not None else None
    on = f" on {where}" if where is not None else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = f"free space{on}"
    elif error.errno == errno.EROFS:
        fix = f"remount {where or 'the filesystem'} read-write"
    else:
        fix = f"fix the permissions of {target.parent if target is not None else 'the directory'}"
    then = f" and resume with --resume {run_dir}" if run_dir is not None else ""
    what = f"cannot write {target}" if target is not None else "cannot write"
    return f"{what}: {error.strerror or os.strerror(error.errno)}; {fix}{then}"


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces `final` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # rename the old one away first: os.replace cannot replace a non-empty directory
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


CHECKSUMS = "SHA256SUMS"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(directory: Path) -> None:
    """Write `directory/SHA256SUMS` over every file below it (call it last, inside the atomic block)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    lines = [f"{_sha256(p)}  {p.relative_to(directory).as_posix()}\n" for p in files]
    (directory / CHECKSUMS).write_text("".join(lines), encoding="utf-8")


def verify_checksums(directory: Path, required: tuple[str, ...] = ()) -> str | None:
    """What is wrong with a directory `write_checksums` sealed, in a few words; None if nothing.

    Every listed file must be there with its checksum, and every `required` file must be listed.
    A directory without `SHA256SUMS` gives "no checksums" (written before they existed, or the
    file was deleted): the caller decides whether to trust it.
    """
    listing = directory / CHECKSUMS
    if not listing.is_file():
        return f"no checksums ({CHECKSUMS} missing)"
    try:
        entries = dict(line.split("  ", 1)[::-1] for line in listing.read_text(encoding="utf-8").splitlines())
    except (ValueError, UnicodeDecodeError):
        return f"{CHECKSUMS} is unreadable"
    for name in required:
        if name not in entries:
            return f"{name} is not in {CHECKSUMS}"
    for name, digest in entries.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != digest:
            return f"{name} does not match its checksum (changed or corrupt)"
    return None
