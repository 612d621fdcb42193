"""A runnable mergekit config (``gam.yml``) for published deltas, and the command line that runs it.

Inputs are mergekit's ``BASE+NS/DELTA@SHA``: the deltas resolve through deltahub's endpoint (the
plugin configures it for runs that use deltahub's methods), pinned to the commit that was published.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_write_text
from ..errors import InputError


def mergekit_config(base: str, deltas: list[str], weights: list[float] | None = None, method: str = "gam",
                    parameters: dict[str, Any] | None = None) -> dict:
    """The config dict: ``deltas`` are ``NS/NAME@REV`` (or adapter folders), merged onto ``base``."""
    if not deltas:
        raise InputError("no deltas to compose", "publish at least one delta first")
    weights = list(weights) if weights is not None else [1.0] * len(deltas)
    if len(weights) != len(deltas):
        raise InputError(f"{len(weights)} weights for {len(deltas)} deltas", "give one weight per delta")
    return {
        "merge_method": method,
        "base_model": base,
        "models": [{"model": f"{base}+{d}", "parameters": {"weight": float(w)}} for d, w in zip(deltas, weights)],
        "parameters": dict(parameters or {}),
        "dtype": "float32",  # merge in fp32: the delta of a bf16 model is not low-rank
    }


def mergekit_command(config: Path, out: Path) -> str:
    """The shell line: mergekit needs a LoRA cache folder for BASE+ADAPTER inputs; fp32 keeps deltas low-rank."""
    cache = out.parent / (out.name + "-lora-cache")
    return " ".join(shlex.quote(str(x)) for x in ("mergekit-yaml", config, out, "--lora-merge-cache", cache,
                                                  "--lora-merge-dtype", "float32"))


def write_for_published(published: dict[str, dict], path: Path, parameters: dict[str, Any] | None = None) -> str | None:
    """Write ``path`` (gam.yml) for deltas published by a run (``RunResult.deltas``: name -> {repo, revision,
    pulled}) and return the mergekit-yaml line; None when nothing was published."""
    infos = [i for i in published.values() if i.get("repo") and i.get("revision") and i.get("pulled")]
    if not infos:
        return None
    base = json.loads((Path(infos[0]["pulled"]) / "adapter_config.json").read_text())["base_model_name_or_path"]
    if Path(base).exists():
        base = str(Path(base).resolve())  # mergekit reads relative names as repo ids
    config = mergekit_config(base, [f"{i['repo']}@{i['revision']}" for i in infos], parameters=parameters)
    path = Path(path).resolve()
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    return mergekit_command(path, path.parent / "merged-mergekit")
