"""A runnable ``gam.yml`` for deltas a run just published, and the ``mergekit-yaml`` line that runs it.

The config is the compose page's (``server.web.compose.Composition``: ``BASE+NS/DELTA@SHA`` inputs,
shared parameters at the top, fp32); the deltas resolve through deltahub's endpoint, which the
mergekit plugin configures for runs that use deltahub's methods, pinned to the published commits.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text


def write_for_published(
    published: dict[str, dict], path: Path, parameters: dict[str, Any] | None = None, method: str = "gam"
) -> str | None:
    """Write ``path`` for deltas published by a run (``RunResult.deltas``: name -> {repo, revision, pulled}) and
    return the mergekit-yaml line (run it in ``path``'s folder); None when nothing was published."""
    from ..server.web.compose import Composition, Pick

    infos = [i for i in published.values() if i.get("repo") and i.get("revision") and i.get("pulled")]
    if not infos:
        return None
    base = json.loads((Path(infos[0]["pulled"]) / "adapter_config.json").read_text())["base_model_name_or_path"]
    if Path(base).exists():
        base = str(Path(base).resolve())  # mergekit reads relative names as repo ids
    picks = tuple(Pick(i["repo"], i["revision"], 1.0) for i in infos)
    composition = Composition(base, method, picks, dict(parameters or {}))
    path = Path(path).resolve()
    atomic_write_text(path, composition.yaml())
    return f"cd {shlex.quote(str(path.parent))} && {Composition.mergekit_command(path.name)}"
