"""Refuse unreadable safetensors before a library turns them into a traceback.

``safe_open`` reads only the header and checks that its offsets cover the file exactly, so a
truncated download, an empty file or a forged header length fails here in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError


def unreadable_reason(path: Path) -> str | None:
    """Why ``path`` is not a usable safetensors file, or None when its header is sound."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
    except (SafetensorError, OSError) as exc:
        return str(exc).removeprefix("Error while deserializing header: ").splitlines()[0] or type(exc).__name__
    return None


def check_safetensors(paths: list[Path], what: str, fix: str) -> None:
    """Raise a one-line InputError naming the first unreadable file among ``paths``."""
    for path in paths:
        reason = unreadable_reason(path)
        if reason is not None:
            raise InputError(f"{what} {path} is not a readable safetensors file ({reason})", fix)
