"""The one writer of ``gam.yml``: a mergekit config that redoes a deltahub merge, and the commands that run it.

Every ``gam.yml`` deltahub writes comes from :class:`MergekitConfig`: the compose page's
(``server.web.compose``), the one ``deltahub compose`` leaves beside its merge, and the one a run
writes for the deltas it just published (:func:`write_for_published`). Inputs are mergekit's LoRA
syntax ``BASE+ADAPTER`` (registry deltas pinned to a commit, ``NS/NAME@SHA``; local ones by absolute
path, since mergekit reads relative names as repo ids), the method's parameters are shared at the top,
and the merge runs in float32 (the delta of a bf16 model is not low-rank). The deltas resolve through
deltahub's endpoint, which the mergekit plugin configures for runs that use deltahub's methods.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_write_text

MERGEKIT_CONFIG = "gam.yml"


@dataclass(frozen=True)
class Pick:
    """One delta of the merge: a repo id pinned to a commit, or (no revision) an absolute local path."""

    repo_id: str
    revision: str | None
    weight: float = 1.0

    @property
    def spec(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


@dataclass(frozen=True)
class MergekitConfig:
    """``merge_method`` over ``picks`` on ``base`` with ``params``; ``header`` is a comment put on top."""

    base: str
    method: str
    picks: tuple[Pick, ...]
    params: dict[str, Any]
    header: str = field(default="", compare=False)

    def config(self) -> dict[str, Any]:
        """mergekit's config: ``BASE+NS/NAME@SHA`` inputs (its LoRA syntax), shared parameters at the top."""
        return {
            "merge_method": self.method,
            "base_model": self.base,
            "models": [{"model": f"{self.base}+{p.spec}", "parameters": {"weight": p.weight}} for p in self.picks],
            "parameters": dict(self.params),
            "dtype": "float32",  # merge in fp32: the delta of a bf16 model is not low-rank
        }

    def yaml(self) -> str:
        return self.header + yaml.safe_dump(self.config(), sort_keys=False, allow_unicode=True)

    @staticmethod
    def mergekit_command(config: str = MERGEKIT_CONFIG, out: str = "merged-mergekit") -> str:
        return shlex.join(
            ["mergekit-yaml", config, out, "--lora-merge-cache", "lora-cache", "--lora-merge-dtype", "float32"]
        )

    def deltahub_command(self, out: str = "merged-deltahub") -> str:
        """The same merge by ``deltahub merge``: a full model on the same base, like mergekit writes."""
        args = [
            "deltahub",
            "merge",
            *(p.spec for p in self.picks),
            "--method",
            self.method,
            "--weights",
            ",".join(repr(p.weight) for p in self.picks),
        ]
        for name, value in self.params.items():
            if isinstance(value, bool):
                if value:  # False is every boolean's default on both command lines
                    args.append("--" + name.replace("_", "-"))
            else:
                args += ["--" + name.replace("_", "-"), str(value)]
        return shlex.join([*args, "--base", self.base, "--full", "--out", out])


def write_for_published(
    published: dict[str, dict], path: Path, parameters: dict[str, Any] | None = None, method: str | None = None
) -> str | None:
    """Write ``path`` for deltas published by a run (``RunResult.deltas``: name -> {repo, revision, pulled}) with
    ``method`` (default: deltahub's default method) and ``parameters`` (a value naming a delta of ``published``
    is written as its repo id, the name mergekit's input answers to) and return the mergekit-yaml line (run it
    in ``path``'s folder); None when nothing was published."""
    infos = [i for i in published.values() if i.get("repo") and i.get("revision") and i.get("pulled")]
    if not infos:
        return None
    if method is None:
        from ..merge.registry import default_method

        method = default_method()
    base = json.loads((Path(infos[0]["pulled"]) / "adapter_config.json").read_text())["base_model_name_or_path"]
    if Path(base).exists():
        base = str(Path(base).resolve())  # mergekit reads relative names as repo ids
    picks = tuple(Pick(i["repo"], i["revision"], 1.0) for i in infos)
    # a parameter naming a delta by its recipe name (reference: b) names its repo in mergekit's config
    repos = {name: info["repo"] for name, info in published.items() if info in infos}
    params = {k: repos.get(v, v) if isinstance(v, str) else v for k, v in (parameters or {}).items()}
    config = MergekitConfig(base, method, picks, params)
    path = Path(path).resolve()
    atomic_write_text(path, config.yaml())
    return f"cd {shlex.quote(str(path.parent))} && {MergekitConfig.mergekit_command(path.name)}"
