"""Write files and folders so that readers see the old state or the complete new one, never a part.

Every output of deltahub (adapters, models, datasets, reports) goes through these helpers:
write into a temporary sibling, fsync, then rename into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output folder unless ``overwrite``; called before any work starts."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(
            f"output folder {path} already exists", "pass --overwrite to replace it, or choose another --out"
        )
    if path.exists() and not path.is_dir():
        raise InputError(f"output path {path} exists and is not a folder", "choose another --out")
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``path`` only if the block completes.

    On error the temporary folder is removed and ``path`` is untouched. With ``overwrite``, an
    existing ``path`` is replaced by a rename swap, so it is never half old and half new.
    """
    final = check_output_dir(path, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def held(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` while the block runs (blocking until it is free). On an
    :func:`atomic_dir` temporary folder it tells :func:`remove_stale_partials` to leave the folder alone."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_stale_partials(out: Path) -> list[Path]:
    """Remove ``.OUT.XXXXXXXX.tmp`` siblings (:func:`atomic_dir`'s scheme) that no live writer holds
    (see :func:`held`): what a killed pull or merge left. Returns them."""
    out = Path(out)
    scheme = re.compile(rf"^\.{re.escape(out.name)}\.[a-z0-9_]{{8}}\.tmp$")
    removed = []
    if not out.parent.is_dir():
        return removed
    for candidate in out.parent.iterdir():
        if not scheme.match(candidate.name) or not candidate.is_dir() or candidate.is_symlink():
            continue
        fd = os.open(candidate, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a pull or merge in progress
        else:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed
