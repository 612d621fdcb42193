"""Hub-style tags derived from a repo card's YAML metadata (what ``list_models(filter=...)`` matches)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from .errors import BadRequest
from .limits import MAX_CARD_JSON_BYTES, MAX_CARD_NODES, MAX_CARD_YAML_BYTES, MAX_JSON_DEPTH
from .payloads import nesting_ok


class CardTooLarge(BadRequest):
    """README.md metadata over the size, node-count or nesting limits (a YAML bomb, or just too big)."""


def _check_expansion(root: Node) -> None:
    """Walk the YAML node graph as JSON would expand it, stopping once the node budget is spent.

    Aliases make the graph a DAG (or a cycle): a 226-byte billion-laughs card expands to ~10^9 nodes.
    The walk costs at most MAX_CARD_NODES steps whatever the input.
    """
    budget = MAX_CARD_NODES
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise CardTooLarge(
                f"README.md metadata expands to more than {MAX_CARD_NODES} YAML nodes "
                "(aliases of aliases?): simplify the card's YAML"
            )
        if depth > MAX_JSON_DEPTH:
            raise CardTooLarge(f"README.md metadata nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, MappingNode):
            stack.extend((n, depth + 1) for pair in node.value for n in pair)
        elif isinstance(node, SequenceNode):
            stack.extend((n, depth + 1) for n in node.value)


def _front_matter(text: str) -> str | None:
    """The YAML between the first two '---' lines (after any leading blank lines, as huggingface_hub reads it)."""
    text = text.lstrip()
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0 and len(text) <= MAX_CARD_YAML_BYTES:
        return None
    if end < 0 or end > MAX_CARD_YAML_BYTES:
        raise CardTooLarge(f"README.md metadata is over {MAX_CARD_YAML_BYTES // 1024} KB: move data out of the card")
    return text[3:end]


class InvalidCard(BadRequest):
    """README.md metadata that is not YAML, or not a mapping."""


def load_card(text: str) -> dict[str, Any]:
    """The YAML front matter of a README.md as JSON-ready data ({} when there is none); refusals raised.

    Only the pure-Python safe loader is used: libyaml's composer recurses in C and crashes the process
    on 100,000 nested brackets, the Python one raises RecursionError, which is refused here.
    """
    source = _front_matter(text)
    if source is None:
        return {}
    if not nesting_ok(source.encode()):  # flow brackets: cheap to see, slow to find out by recursing
        raise CardTooLarge(f"README.md metadata nests deeper than {MAX_JSON_DEPTH} levels")
    loader = yaml.SafeLoader(source)
    try:
        root = loader.get_single_node()
        if root is None:
            return {}
        _check_expansion(root)
        data = loader.construct_document(root)
    except RecursionError:
        raise CardTooLarge("README.md metadata is nested too deeply to parse") from None
    except yaml.YAMLError as exc:
        raise InvalidCard(f"Invalid YAML in README.md metadata: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise InvalidCard("README.md metadata must be a YAML mapping")
    encoded = json.dumps(data, default=str, skipkeys=True)  # a date as a key: dropped
    if len(encoded) > MAX_CARD_JSON_BYTES:
        raise CardTooLarge(f"README.md metadata is over {MAX_CARD_JSON_BYTES // 1024} KB as JSON")
    return json.loads(encoded)


def parse_card(text: str, strict: bool = True) -> dict[str, Any]:
    """``load_card`` as the store uses it: invalid YAML reads as {} (as before); a card over the limits
    raises ``CardTooLarge`` when ``strict`` (a new card is refused) and reads as {} otherwise (old data)."""
    try:
        return load_card(text)
    except InvalidCard:
        return {}
    except CardTooLarge:
        if strict:
            raise
        return {}


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
