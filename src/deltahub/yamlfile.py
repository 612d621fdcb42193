"""Read a YAML file a user names (a recipe, or a command's --recipe): any failure is one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError


def read_yaml(path: str | Path, what: str = "recipe") -> Any:
    """The parsed YAML of ``path``; a missing, unreadable, binary or malformed file is one InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} not found", "pass a recipe YAML file, e.g. recipes/toy.yaml")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(
            f"{what} {path} is not a text file (not UTF-8)", "pass a YAML recipe, e.g. recipes/toy.yaml"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}", "check the path and its permissions") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}", "fix the YAML syntax") from None
