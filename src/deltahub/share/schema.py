"""The versioned ``deltahub:`` block and the Hub card metadata around it.

``deltahub.json`` in every stage folder is this block as JSON; cards carry it under ``deltahub:``
in their YAML front matter so a composer can find and check a delta from the card alone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InputError

SCHEMA_VERSION = 1
KINDS = ("dataset", "adapter", "merged")


class _Open(BaseModel):
    """Known keys are typed; unknown keys are kept (producers add settings over time)."""

    model_config = ConfigDict(extra="allow")


class ModelRef(_Open):
    model: str | None = None
    revision: str | None = None
    params: int | None = None


class PromptSource(_Open):
    dataset: str | None = None
    split: str | None = None
    revision: str | None = None
    column: str | None = None
    count: int | None = None


class LoraInfo(_Open):
    r: int | None = None
    alpha: float | None = None
    dropout: float | None = None
    target_modules: list[str] | str | None = None


class DatasetLink(_Open):
    repo: str | None = None
    revision: str | None = None


class Gain(_Open):
    metric: str | None = None
    value: float | None = None
    baseline: float | None = None


class MergeDelta(_Open):
    repo: str | None = None
    path: str | None = None
    revision: str | None = None
    spec: str | None = None  # as the user named it (a folder, NS/NAME or NS/NAME@REV)


class MergeInfo(_Open):
    method: str
    pretty_name: str | None = None
    reference_url: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)  # as requested, plus GAM's reference_index
    weights: list[float] | None = None
    output: Literal["adapter", "full-model"] | None = None
    deltas: list[MergeDelta] = Field(default_factory=list)
    missing_modules: dict[str, list[str]] | None = None  # module -> the inputs without it (a zero delta there)
    device: str | None = None
    command: str | None = None  # the deltahub command line that reproduces the merge


Source = Literal["recorded", "declared", "measured", "unknown"]
SOURCES: dict[str, str] = {
    "recorded": "written by deltahub when it produced this delta",
    "declared": "stated by the publisher, not checked",
    "measured": "read or computed by deltahub from the published files or the linked dataset",
    "unknown": "nobody stated it",
}
# The fields whose source a card reports (dotted paths into the block, plus the card's license).
PROVENANCE_FIELDS = (
    "student.model",
    "chosen.model",
    "rejected.model",
    "dataset",
    "pairs",
    "training.objective",
    "training.beta",
    "training.trainer",
    "lora.r",
    "lora.alpha",
    "lora.target_modules",
    "license",
)


class Validation(_Open):
    """What ``publish`` checked: ``passed`` or ``skipped`` (``--no-validate``, a warning on the card)."""

    status: Literal["passed", "skipped"]
    warnings: list[str] = Field(default_factory=list)


class Provenance(_Open):
    """Where each field of the block came from.

    Optional and additive: a schema_version 1 reader keeps it as an unknown key, and a block without it
    (every delta made before it existed) reads as ``origin: deltahub`` with every field ``recorded``.
    """

    origin: Literal["deltahub", "external"] = "deltahub"
    fields: dict[str, Source] = Field(default_factory=dict)
    validation: Validation | None = None

    def source(self, path: str) -> Source:
        return self.fields.get(path, "recorded" if self.origin == "deltahub" else "unknown")


class DeltaBlock(_Open):
    """The ``deltahub:`` block (schema_version 1)."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["dataset", "adapter", "merged"]
    chosen: ModelRef | None = None
    rejected: ModelRef | None = None
    student: ModelRef | None = None
    prompts: PromptSource | None = None
    pairs: int | None = Field(default=None, ge=0)
    filters: dict[str, Any] | None = None
    generation: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    lora: LoraInfo | None = None
    dataset: DatasetLink | None = None
    metrics: dict[str, Any] | None = None
    gain: Gain | None = None
    merge: MergeInfo | None = None
    license: str | None = None
    provenance: Provenance | None = None

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v > SCHEMA_VERSION:
            raise ValueError(f"schema_version {v} is newer than this deltahub understands ({SCHEMA_VERSION})")
        if v < 1:
            raise ValueError(f"schema_version {v} is not valid")
        return v


class CardMetadata(_Open):
    """Hub card front matter (the standard keys) plus the ``deltahub`` block."""

    base_model: str | list[str] | None = None
    base_model_relation: str | None = None
    library_name: str | None = None
    datasets: list[str] | None = None
    license: str | None = None
    tags: list[str] = Field(default_factory=list)
    task_categories: list[str] | None = None
    size_categories: list[str] | None = None
    configs: list[dict[str, Any]] | None = None
    model_index: list[dict[str, Any]] | None = Field(default=None, alias="model-index")
    deltahub: DeltaBlock


def parse_block(data: Any, where: str = "deltahub.json") -> DeltaBlock:
    """Validate a raw block; a one-line InputError names the first problem and the fix."""
    if not isinstance(data, dict):
        raise InputError(
            f"{where}: the deltahub block is not a mapping", "regenerate it with deltahub generate/train/merge"
        )
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise InputError(
            f"{where}: schema_version {version} is from a newer deltahub (this one reads up to {SCHEMA_VERSION})",
            "upgrade deltahub: pip install -U deltahub",
        )
    try:
        return DeltaBlock.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise InputError(
            f"{where}: deltahub.{loc}: {err['msg']}", "fix the block or regenerate it with deltahub"
        ) from None


def family_of(block: DeltaBlock) -> str | None:
    """The delta's family: the model family of its chosen model (e.g. 'Qwen3' for Qwen/Qwen3-1.7B)."""
    model = (block.chosen.model if block.chosen else None) or (block.student.model if block.student else None)
    if not model:
        return None
    name = model.rstrip("/").split("/")[-1]
    return name.split("-")[0] or None
