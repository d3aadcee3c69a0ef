"""Writing run files and directories whole or not at all, and checking that they still are.

A saved directory (a checkpoint, a saved network) ends with `SHA256SUMS`, written last, in the
format `sha256sum -c` reads: a file cut short, a flipped bit or a file edited or deleted since
is found before anything is loaded from it (`verify_checksums`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


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
