"""Temp files of uploads in flight: one folder per live process, locked while it lives, swept when not.

Why a lock and not an age: several server processes may share one registry root, and a slow upload
of a live process must never be deleted, while a killed process's partial upload (533 MiB after five
killed 200 MB uploads) must go at the next start, not a day later. Each ``Scratch`` holds an
exclusive ``flock`` on its own folder; the kernel drops it when the process dies (kill -9 included),
so any folder whose lock can be taken belongs to nobody and is removed.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

LEGACY_MAX_AGE_S = 600  # loose temp files of older versions: removed once idle this long


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on folder ``path``, or None when someone else holds it (or it vanished)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def sweep(tmp_root: Path) -> list[Path]:
    """Remove the folders of processes that are gone (and stale loose files); return what was removed."""
    removed = []
    for p in tmp_root.iterdir():
        if p.is_dir() and not p.is_symlink():
            fd = _try_lock(p)
            if fd is None:
                continue  # a live process's folder
            try:
                shutil.rmtree(p, ignore_errors=True)
            finally:
                os.close(fd)
            removed.append(p)
        else:
            try:
                if p.lstat().st_mtime < time.time() - LEGACY_MAX_AGE_S:
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:
                pass
    return removed


class Scratch:
    """This process's (this store's) temp folder under ``tmp_root``."""

    def __init__(self, tmp_root: Path):
        tmp_root.mkdir(parents=True, exist_ok=True)
        sweep(tmp_root)
        while True:
            folder = tmp_root / f"p{os.getpid()}-{secrets.token_hex(4)}"
            folder.mkdir()
            fd = _try_lock(folder)
            # a sweep elsewhere may have taken the lock before us and removed the folder: start again
            if fd is not None and folder.is_dir() and os.fstat(fd).st_ino == folder.stat().st_ino:
                break
            if fd is not None:
                os.close(fd)
        self.folder = folder
        self._fd: int | None = fd

    def new_file(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self.folder, prefix="up-")
        return fd, Path(name)

    def close(self) -> None:
        if self._fd is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            os.close(self._fd)
            self._fd = None

    def files(self) -> list[Path]:
        return list(self.folder.iterdir())
