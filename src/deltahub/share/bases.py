"""Which base a delta is published for: a repo id, never a folder of the publisher's machine.

A delta trained on a local folder records that folder in ``base_model_name_or_path``; published as
is, its card and ``deltahub list`` would name a base nobody else can resolve. A local folder is
accepted only when it records what it is a copy of (see docs/bases.md), in this order:

1. ``.cache/deltahub/source.json``, which ``deltahub pull`` writes into every folder it pulls;
2. the layout of deltahub's pull cache (``$DELTAHUB_HOME/deltas/NS--NAME/SHA``);
3. the layout of the Hugging Face cache (``.../models--NS--NAME/snapshots/SHA``);
4. a model of a deltahub toy world (its ``world.json`` lists it): ``toy:NAME@world-HASH``, the
   name recipes give it, since a toy world is rebuilt from its config rather than downloaded.

``config.json``'s ``_name_or_path`` is not trusted: a model fine-tuned from X and saved still says X.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..home import home

SOURCE = Path(".cache") / "deltahub" / "source.json"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_HF_CACHE = re.compile(r"^models--([\w.-]+?)--([\w.-]+)$")
WORLD_FILE = "world.json"  # the toy world's record (deltahub.toy.world.WORLD_FILE)


@dataclass(frozen=True)
class Base:
    """``repo_id`` names the base on the card and in listings; ``folder`` is the local copy it came from
    (None for a base named by id); ``on_hub``: the id resolves through a registry (a folder's adapter
    config is rewritten to it), unlike a toy world's id, which only deltahub rebuilds."""

    repo_id: str
    folder: Path | None = None
    on_hub: bool = True


def looks_local(name: str) -> bool:
    """A name that is a folder here or can only be a path (a repo id is NAME or NS/NAME)."""
    if Path(name).expanduser().is_dir():
        return True
    from .source import is_repo_spec

    if name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name or name in (".", ".."):
        return True
    return "/" in name and not is_repo_spec(name)


def record_source(folder: Path, repo_id: str, repo_type: str, revision: str) -> None:
    """What ``deltahub pull`` leaves in a pulled folder so it can later be named by its repo id."""
    path = Path(folder) / SOURCE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"repo_id": repo_id, "repo_type": repo_type, "revision": revision}) + "\n")


def recorded_id(folder: Path) -> Base | None:
    """The id ``folder`` records (module docstring), or None."""
    folder = Path(folder).expanduser().resolve()
    marker = folder / SOURCE
    if marker.is_file():
        try:
            repo_id = json.loads(marker.read_text(encoding="utf-8")).get("repo_id")
        except (OSError, ValueError, AttributeError):
            repo_id = None
        if _valid_id(repo_id):
            return Base(repo_id, folder)
    parent = folder.parent
    if _SHA.match(folder.name) and parent.parent == (home() / "deltas").resolve() and "--" in parent.name:
        repo_id = parent.name.replace("--", "/", 1)
        if _valid_id(repo_id):
            return Base(repo_id, folder)
    if _SHA.match(folder.name) and parent.name == "snapshots":
        m = _HF_CACHE.match(parent.parent.name)
        if m and _valid_id(f"{m.group(1)}/{m.group(2)}"):
            return Base(f"{m.group(1)}/{m.group(2)}", folder)
    world = parent / WORLD_FILE
    if world.is_file():
        try:
            meta = json.loads(world.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if isinstance(meta, dict) and folder.name in (meta.get("models") or []) and meta.get("hash"):
            return Base(f"toy:{folder.name}@world-{meta['hash']}", folder, on_hub=False)
    return None


def _valid_id(repo_id) -> bool:
    """Whether ``repo_id`` is a name the Hub accepts (its refusal worded once, in hub_errors)."""
    from .network import check_repo_id

    if not isinstance(repo_id, str) or not repo_id:
        return False
    try:
        check_repo_id(repo_id)
    except InputError:
        return False
    return True


def resolve_base(name: str, declared: str | None = None) -> Base:
    """The base to publish for an adapter trained on ``name`` (``declared``: ``--base``)."""
    local = Path(name).expanduser() if looks_local(name) else None
    folder = local if local is not None and local.is_dir() else None
    if declared is not None:
        if looks_local(declared):
            found = recorded_id(Path(declared)) if Path(declared).expanduser().is_dir() else None
            if found is None:
                raise InputError(
                    f"--base {declared} is a local folder, not a repo id",
                    "pass --base NS/NAME, the repo id of the model it is a copy of",
                )
            return Base(found.repo_id, folder or found.folder, found.on_hub)
        return Base(declared, folder)
    if local is None:
        return Base(name)
    found = recorded_id(local) if folder is not None else None
    if found is None:
        what = "a local folder that records no repo id" if folder is not None else "a local path"
        raise InputError(
            f"the adapter's base {name} is {what}, which nobody else can resolve",
            "pass --base NS/NAME, the repo id of the model it is a copy of, or train on a folder deltahub pull wrote",
        )
    return found


def trained_on(folder: Path) -> Path | None:
    """The local base folder a delta folder was trained on (its adapter config's, else its block's), if any."""
    from ..weights import read_adapter_config

    named = (read_adapter_config(folder) or {}).get("base_model_name_or_path")
    if not named and (folder / "deltahub.json").is_file():
        try:
            student = json.loads((folder / "deltahub.json").read_text(encoding="utf-8")).get("student") or {}
        except (OSError, ValueError, AttributeError):
            student = {}
        named = student.get("model") if isinstance(student, dict) else None
    if not isinstance(named, str) or not looks_local(named):
        return None
    path = Path(named).expanduser()
    return path if path.is_dir() else None


def base_problem(stage: Path) -> str | None:
    """What publishing would refuse about a staged delta's base (None: it names one others can resolve)."""
    block = json.loads((stage / "deltahub.json").read_text(encoding="utf-8"))
    named = (block.get("student") or {}).get("model") if isinstance(block.get("student"), dict) else None
    if not isinstance(named, str) or not looks_local(named) or recorded_id(Path(named)) is not None:
        return None
    return f"base {named} is a local folder or path nobody else can resolve (publish with --base NS/NAME)"


def base_filter(name: str) -> str:
    """``list --base``: a repo id as given; a local folder as the id it records."""
    if not looks_local(name):
        return name
    found = recorded_id(Path(name)) if Path(name).expanduser().is_dir() else None
    if found is None:
        raise InputError(
            f"--base {name} is a local {'folder that records no repo id' if Path(name).is_dir() else 'path'}",
            "pass the base's repo id NS/NAME (deltahub list --base NS/NAME)",
        )
    return found.repo_id
