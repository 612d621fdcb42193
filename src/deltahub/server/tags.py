"""Hub-style tags derived from a repo card's YAML metadata (what ``list_models(filter=...)`` matches)."""

from __future__ import annotations

from typing import Any

import yaml


def parse_card(text: str) -> dict[str, Any]:
    """The YAML front matter of a README.md, or {} when there is none or it is not a mapping."""
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def derive_tags(card: dict[str, Any], repo_type: str, files: list[str]) -> list[str]:
    """Tags as the Hub computes them: card tags, library, pipeline, license:, dataset:, base_model:…"""
    tags: list[str] = list(_as_list(card.get("tags")))
    if card.get("library_name"):
        tags.append(str(card["library_name"]))
    if card.get("pipeline_tag"):
        tags.append(str(card["pipeline_tag"]))
    tags += [f"license:{x}" for x in _as_list(card.get("license"))]
    tags += [f"language:{x}" for x in _as_list(card.get("language"))]
    if repo_type == "model":
        tags += [f"dataset:{x}" for x in _as_list(card.get("datasets"))]
        adapter = card.get("base_model_relation") == "adapter" or "adapter_config.json" in files
        for base in _as_list(card.get("base_model")):
            tags.append(f"base_model:{base}")
            if adapter:
                tags.append(f"base_model:adapter:{base}")
            elif card.get("base_model_relation"):
                tags.append(f"base_model:{card['base_model_relation']}:{base}")
    else:
        tags += [f"task_categories:{x}" for x in _as_list(card.get("task_categories"))]
        tags += [f"size_categories:{x}" for x in _as_list(card.get("size_categories"))]
        if any(f.endswith(".parquet") for f in files):
            tags += ["format:parquet", "library:datasets"]
    seen: dict[str, None] = {}
    for t in tags:
        seen.setdefault(t, None)
    return list(seen)
