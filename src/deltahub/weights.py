"""Refuse unreadable weights and adapter configs before a library turns them into a traceback.

``safe_open`` reads only the header and checks that its offsets cover the file exactly, so a
truncated download, an empty file or a forged header length fails here in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError


def tensor_names(path: Path, what: str, fix: str) -> list[str]:
    """The tensor names in ``path`` (one header read); an unreadable file is a one-line InputError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError) as exc:
        reason = str(exc).removeprefix("Error while deserializing header: ").splitlines()[0] or type(exc).__name__
        raise InputError(f"{what} {path} is not a readable safetensors file ({reason})", fix) from None


def check_safetensors(paths: list[Path], what: str, fix: str) -> None:
    """Raise a one-line InputError naming the first unreadable file among ``paths``."""
    for path in paths:
        tensor_names(path, what, fix)


def read_adapter_config(folder: Path) -> dict | None:
    """``folder/adapter_config.json`` as a mapping (None when absent); malformed JSON or a non-object is an
    InputError."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path} is not valid JSON ({str(exc).splitlines()[0]})",
            "re-download or regenerate the adapter; PEFT writes this file",
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            f"{path} holds a JSON {type(data).__name__}, not an object of PEFT settings",
            "re-download or regenerate the adapter; PEFT writes this file",
        )
    return data
