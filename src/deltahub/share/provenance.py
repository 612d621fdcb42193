"""What a publisher declares about a delta, and the block it becomes.

A delta trained outside deltahub (TRL, open-instruct, ...) arrives as a plain PEFT folder. Its
provenance is whatever the publisher declares (``--chosen-model``, ``--dataset``, ... or a YAML file),
plus what deltahub can read from the files (LoRA rank and targets, the base in adapter_config.json).
Every reported field is tagged ``declared``, ``measured``, ``recorded`` or ``unknown`` in the block's
``provenance`` map, so a card never passes a guess off as a fact. :class:`Declared` is the one source
of these settings: the CLI flags, the YAML keys and their validation derive from it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import field_validator

from ..errors import InputError
from ..settings import Settings, parse_settings, setting
from .hubops import parse_spec
from .schema import PROVENANCE_FIELDS, SCHEMA_VERSION

_NAME = re.compile(r"^[A-Za-z0-9][\w.+-]*$")


class Declared(Settings):
    """Provenance a publisher states; each field lands at one place of the ``deltahub:`` block."""

    base: str | None = setting(
        None,
        "Base model (the student) as a Hub id, which the published copy is rewritten to; default: "
        "adapter_config.json's base_model_name_or_path, or the id a local base folder records (docs/bases.md).",
    )
    dataset: str | None = setting(
        None,
        "Pairs dataset it was trained on, REPO[@REV] (linked from the card; its "
        "row count is checked once it is published).",
    )
    chosen_model: str | None = setting(None, "Model whose answers were chosen (the weak model).")
    rejected_model: str | None = setting(None, "Model whose answers were rejected (the weaker model).")
    objective: str | None = setting(None, "Training objective, e.g. dpo, orpo, simpo, ipo.")
    beta: float | None = setting(None, "The objective's beta.", gt=0)
    pairs: int | None = setting(None, "Number of preference pairs trained on.", ge=0)
    trainer: str | None = setting(None, "What trained it, e.g. 'trl 0.19 DPOTrainer' or 'open-instruct'.")
    license: str | None = setting(
        None, "License id of the adapter, e.g. apache-2.0 (default for foreign adapters: unknown)."
    )

    # field -> dotted path in the block (``dataset`` fills dataset.repo and dataset.revision)
    PATHS: ClassVar[dict[str, str]] = {
        "base": "student.model",
        "dataset": "dataset",
        "chosen_model": "chosen.model",
        "rejected_model": "rejected.model",
        "objective": "training.objective",
        "beta": "training.beta",
        "pairs": "pairs",
        "trainer": "training.trainer",
        "license": "license",
    }

    @field_validator("dataset")
    @classmethod
    def _repo_at_revision(cls, v: str | None) -> str | None:
        if v is not None:
            from .network import check_repo_id

            try:
                check_repo_id(parse_spec(v).repo_id)
            except InputError as exc:
                raise ValueError(f"must be REPO[@REV] ({exc.message})") from None
        return v

    @field_validator("objective", "license")
    @classmethod
    def _tag_safe(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(f"must be one word of letters, digits, '.', '-', '+' or '_' (got {v!r})")
        return v

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def load_declared(path: str | Path | None, flags: dict[str, Any]) -> Declared:
    """A YAML file's declarations (``--provenance FILE``) with the command-line flags on top."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(
                f"cannot read provenance file {path} ({str(exc).splitlines()[0]})",
                "pass a YAML mapping such as 'chosen_model: ORG/BIG'",
            ) from None
        if not isinstance(data, dict):
            raise InputError(
                f"{path} is not a YAML mapping of provenance fields",
                "write one 'field: value' per line, e.g. 'chosen_model: ORG/BIG'",
            )
    return parse_settings(Declared, {**data, **flags}, where=str(path) if path else "provenance")


def external_block(folder: Path, adapter_config: dict) -> dict[str, Any]:
    """The block of a PEFT LoRA folder deltahub did not make: what its files say, everything else unknown."""
    if str(adapter_config.get("peft_type", "LORA")).upper() != "LORA":
        raise InputError(
            f"{folder} holds a {adapter_config.get('peft_type')} adapter, not LoRA",
            "publish a LoRA adapter (deltas are merged in LoRA factor space)",
        )
    fields = dict.fromkeys(PROVENANCE_FIELDS, "unknown")
    block: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "kind": "adapter"}
    base = adapter_config.get("base_model_name_or_path")
    if base:
        block["student"] = {"model": str(base)}
        fields["student.model"] = "measured"
    lora = {
        "r": adapter_config.get("r"),
        "alpha": adapter_config.get("lora_alpha"),
        "dropout": adapter_config.get("lora_dropout"),
        "target_modules": adapter_config.get("target_modules"),
    }
    lora = {k: sorted(v) if isinstance(v, (list, set)) else v for k, v in lora.items() if v is not None}
    block["lora"] = lora
    fields.update({f"lora.{k}": "measured" for k in ("r", "alpha", "target_modules") if k in lora})
    block["provenance"] = {"origin": "external", "fields": fields}
    return block


def apply_declared(block: dict[str, Any], declared: Declared) -> dict[str, Any]:
    """Write each declared field into the block and tag it ``declared`` (a declaration overrides a recording)."""
    prov = block.setdefault("provenance", {"origin": "deltahub", "fields": {}})
    fields = prov.setdefault("fields", {})
    for name, value in declared.given().items():
        path = Declared.PATHS[name]
        if name == "dataset":
            spec = parse_spec(value)
            block["dataset"] = {"repo": spec.repo_id, "revision": spec.revision}
        else:
            _set(block, path, value)
        fields[path] = "declared"
    return block


def _set(block: dict[str, Any], path: str, value: Any) -> None:
    head, _, key = path.rpartition(".")
    target = block
    if head:
        target = block.get(head) if isinstance(block.get(head), dict) else {}
        block[head] = target
    target[key] = value


def _get(block: dict[str, Any], path: str) -> Any:
    value: Any = block
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if path == "dataset" and isinstance(value, dict):
        repo, revision = value.get("repo"), value.get("revision")
        return f"{repo}@{revision}" if repo and revision else repo
    return value


def provenance_rows(block: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """``(field, value, source)`` for the card: a field without a value is ``unknown`` whoever wrote it."""
    prov = block.get("provenance") or {}
    origin, fields = prov.get("origin", "deltahub"), prov.get("fields") or {}
    rows = []
    for path in PROVENANCE_FIELDS:
        value = _get(block, path)
        source = (
            "unknown"
            if value in (None, [], "")
            else fields.get(path, "recorded" if origin == "deltahub" else "unknown")
        )
        rows.append((path, value, source))
    return rows
