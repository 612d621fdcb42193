"""The deltas compose chooses from: local folders or ``NS/NAME[@REV]`` pulled at a pinned commit.

Each candidate is validated (a broken one is left out with the reason, not merged) and named by a content
hash of its adapter files, the key of every cached evaluation that involves it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..weights import read_adapter_config

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# The checks a merge depends on; provenance checks (card, linked dataset) do not keep a delta out of a merge.
WEIGHT_CHECKS = ("files are safetensors only", "adapter matches its base", "no NaN/Inf")


@dataclass
class Candidate:
    spec: str
    path: Path
    repo: str | None = None
    revision: str | None = None
    digest: str = ""
    base: str | None = None
    problem: str | None = None  # why it cannot be a candidate (failed validation)
    label: str | None = None  # set when two candidates would share a short name

    @property
    def name(self) -> str:
        return self.label or self.repo or self.path.name

    @property
    def pinned(self) -> str:
        """``NS/NAME@SHA`` for a registry delta, the folder otherwise: what reproduces it."""
        return f"{self.repo}@{self.revision}" if self.repo and self.revision else str(self.path.resolve())


def content_digest(folder: Path) -> str:
    """sha256 over the adapter's config and weights (what a merge reads)."""
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        path = folder / name
        h.update(name.encode() + b"\0")
        if path.is_file():
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def resolve(spec: str | Path, validate: bool = True) -> Candidate:
    """A local adapter folder or a registry delta (pulled, pinned to the commit that was downloaded)."""
    from ..share.source import resolve_source
    from ..share.validate import validate_on_registry

    s = resolve_source(
        spec, what="candidate", fix="pass adapter folders or NS/NAME[@REV], a collection, or --base filters"
    )
    cand = Candidate(spec=s.spec, path=s.path, repo=s.repo, revision=s.revision)
    config = read_adapter_config(cand.path)
    if config is None:
        raise InputError(
            f"candidate {spec} is not a PEFT adapter (no adapter_config.json)",
            "compose merges LoRA adapters; pass adapter folders or adapter repos",
        )
    cand.base = config.get("base_model_name_or_path")
    cand.digest = content_digest(cand.path)
    if validate:
        try:
            report = validate_on_registry(cand.path, cand.spec, local=True)
        except InputError as exc:  # files no check can read
            cand.problem = f"unreadable: {exc.message}"
            return cand
        failed = [c for c in report.failed if c.name in WEIGHT_CHECKS]
        if failed:
            cand.problem = "failed validation: " + "; ".join(f"{c.name} ({c.detail})" for c in failed)
    return cand


def dedupe(cands: list[Candidate]) -> list[Candidate]:
    """One candidate per content (the same delta listed twice, or under two names, is tried once), each with a
    name of its own (folders that share a folder name are named by their path)."""
    seen: set[str] = set()
    out = []
    for c in cands:
        if c.digest not in seen:
            seen.add(c.digest)
            out.append(c)
    names = [c.name for c in out]
    for c in out:
        if names.count(c.name) > 1:
            c.label = c.spec
    return out
