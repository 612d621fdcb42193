"""Summarise a published delta: card, files, linked dataset, revisions."""

from __future__ import annotations

from ..endpoint import Endpoint, api
from .cards import split_card
from .hubops import parse_spec, repo_type_of


def show(spec: str, endpoint: Endpoint | None = None) -> dict:
    """``{"repo_id", "repo_type", "sha", "card", "block", "files", "dataset", "branches", "tags", "commits"}``."""
    s = parse_spec(spec)
    hub = api(endpoint)
    rtype = repo_type_of(s, hub)
    info = hub.repo_info(s.repo_id, repo_type=rtype, revision=s.revision, files_metadata=True)
    meta: dict = {}
    names = [x.rfilename for x in info.siblings or []]
    if "README.md" in names:
        path = hub.hf_hub_download(s.repo_id, "README.md", repo_type=rtype, revision=info.sha)
        meta, _ = split_card(open(path, encoding="utf-8").read())
    block = meta.get("deltahub") or {}
    refs = hub.list_repo_refs(s.repo_id, repo_type=rtype)
    commits = hub.list_repo_commits(s.repo_id, repo_type=rtype, revision=s.revision)
    return {
        "repo_id": s.repo_id,
        "repo_type": rtype,
        "sha": info.sha,
        "card": {k: v for k, v in meta.items() if k != "deltahub"},
        "block": block,
        "files": [(x.rfilename, x.size) for x in info.siblings or []],
        "dataset": (block.get("dataset") or {}).get("repo"),
        "branches": {b.name: b.target_commit for b in refs.branches},
        "tags": {t.name: t.target_commit for t in refs.tags},
        "commits": [(c.commit_id, c.title) for c in commits],
    }
