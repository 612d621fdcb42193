"""Recipes: one YAML file that names a student, its deltas, the merge, the evaluation and the Hub.

A recipe is validated before anything runs; a mistake is reported with the path of the offending
key (``deltas[1].train.beta: ...``), so a long GPU job never dies on a typo an hour in.

Model references are Hub ids, local folders, or ``toy:NAME`` for a model of the built-in toy
world (``toy:student``, ``toy:rev-weak``, ``toy:rev-weaker``, ...). Prompt sources are Hub
dataset ids (``NS/NAME[:SPLIT]``), local JSONL/parquet files, or ``toy:SKILL``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSpec(_Strict):
    """Where deltas are published: ``embedded`` (the built-in registry) or a Hub URL."""

    endpoint: str = "embedded"
    namespace: str = "deltahub"
    token_env: str = "HF_TOKEN"
    publish: bool = True


class WorldSpec(_Strict):
    """The toy world to build first (only for recipes that use ``toy:`` references)."""

    preset: str = "quick"
    seed: int = 0
    workers: int = Field(1, ge=1, description="models of the world trained at once (separate processes)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="fields of the preset's world config to "
                                      "replace (e.g. student: {steps: 400}); nested mappings merge, lists replace")

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str) -> str:
        from .toy.world import PRESETS

        if v not in PRESETS:
            raise ValueError(f"unknown toy world preset {v!r}; valid: {', '.join(PRESETS)}")
        return v

    @model_validator(mode="after")
    def _overrides(self) -> WorldSpec:
        if self.overrides:
            from .toy.world import preset

            try:
                preset(self.preset, self.seed, self.overrides)
            except InputError as exc:
                raise ValueError(exc.message) from None
        return self


class StudentSpec(_Strict):
    model: str
    revision: str | None = None


class PromptSpec(_Strict):
    source: str
    split: str | None = None
    count: int | None = Field(None, ge=1)
    prompt_column: str | None = None
    messages_column: str | None = None
    seed: int = 0


class RepoSpec(_Strict):
    dataset: str | None = None
    adapter: str | None = None


def _check_fields(cls, values: dict, where: str) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {where} setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    return values


class DeltaSpec(_Strict):
    """One weak–weaker pair: its prompts, generation settings, training settings and repos."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    chosen: str
    rejected: str
    prompts: PromptSpec
    generation: dict[str, Any] = Field(default_factory=dict)
    filters: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    repo: RepoSpec = Field(default_factory=RepoSpec)

    @field_validator("generation")
    @classmethod
    def _generation(cls, v: dict) -> dict:
        from .generate.settings import GenerationSettings

        return _check_fields(GenerationSettings, v, "generation")

    @field_validator("filters")
    @classmethod
    def _filters(cls, v: dict) -> dict:
        from .generate.filters import FilterSettings

        return _check_fields(FilterSettings, v, "filter")

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict) -> dict:
        from .train.config import TrainConfig

        _check_fields(TrainConfig, v, "train")
        try:
            TrainConfig(**v).resolved()
        except InputError as exc:
            raise ValueError(exc.message) from None
        return v


class MergeSpec(_Strict):
    methods: list[str] = Field(default_factory=lambda: ["gam"])
    parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    deltas: list[str] | Literal["all"] = "all"
    publish: str | None = None
    curve: str | None = Field(None, description="a method of `methods` to merge the first k deltas with, "
                                                "k = 2 .. K-1 (the composition curve)")

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        from .merge.methods import METHODS

        bad = [m for m in v if m not in METHODS]
        if bad or not v:
            raise ValueError(f"unknown merge method(s) {bad}; valid: {', '.join(METHODS)}")
        return v

    @model_validator(mode="after")
    def _curve(self) -> MergeSpec:
        if self.curve is not None and self.curve not in self.methods:
            raise ValueError(f"curve method {self.curve!r} is not in methods")
        return self

    @model_validator(mode="after")
    def _params(self) -> MergeSpec:
        from .merge.methods import resolve_params

        for method, params in self.parameters.items():
            if method not in self.methods:
                raise ValueError(f"parameters given for {method!r}, which is not in methods")
            try:
                resolve_params(method, params)
            except InputError as exc:
                raise ValueError(f"{exc.message} ({exc.fix})") from None
        return self


class EvalSpec(_Strict):
    """What to evaluate every row on: the toy skills (exact match), or lm-eval tasks."""

    kind: Literal["toy", "lm-eval"] = "toy"
    tasks: list[str] = Field(default_factory=list)
    n: int = Field(200, ge=1)
    select_n: int = Field(0, ge=0, description="toy: further questions per skill, disjoint from the n, on which "
                                                "the report picks the best single delta of each seed")
    seed: int = 0
    teachers: bool = True
    sft_control: bool = True
    limit: int | None = Field(None, ge=1, description="lm-eval: documents per task (None = all)")
    backend: Literal["auto", "hf", "vllm"] = "auto"
    batch_size: int = Field(8, ge=1)
    chat_template: bool = False
    include_path: str | None = Field(None, description="lm-eval: a folder of local task YAMLs")

    @model_validator(mode="after")
    def _tasks(self) -> EvalSpec:
        if self.kind == "lm-eval" and not self.tasks:
            raise ValueError("kind lm-eval needs tasks (e.g. tasks: [gsm8k])")
        return self


class Resources(_Strict):
    """What the recipe needs to run, for people and schedulers; deltahub does not enforce it."""

    gpus: int = 0
    gpu_memory_gb: float | None = None
    launch: str | None = None
    notes: str | None = None


class Recipe(_Strict):
    name: str
    description: str = ""
    hub: HubSpec = Field(default_factory=HubSpec)
    world: WorldSpec | None = None
    student: StudentSpec
    deltas: list[DeltaSpec] = Field(min_length=1)
    merge: MergeSpec = Field(default_factory=MergeSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        names = [d.name for d in self.deltas]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"delta names must be unique; repeated: {', '.join(dupes)}")
        if self.merge.deltas != "all":
            unknown = [d for d in self.merge.deltas if d not in names]
            if unknown:
                raise ValueError(f"merge.deltas names unknown deltas {unknown}; defined: {', '.join(names)}")
        uses_toy = any(ref.startswith("toy:") for d in self.deltas for ref in (d.chosen, d.rejected, d.prompts.source))
        uses_toy = uses_toy or self.student.model.startswith("toy:")
        if uses_toy and self.world is None:
            raise ValueError("the recipe uses toy: references but has no 'world:' section")
        return self

    def merge_deltas(self) -> list[DeltaSpec]:
        if self.merge.deltas == "all":
            return list(self.deltas)
        return [d for d in self.deltas if d.name in self.merge.deltas]


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_recipe(data: dict, source: str = "recipe") -> Recipe:
    """Validate a recipe mapping; the error names the first offending key path."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: a recipe must be a YAML mapping", "see recipes/toy.yaml for an example")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc(tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling)"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise InputError(f"{source}: {loc}: {msg}{more}", "fix that key; see recipes/toy.yaml for a valid recipe") from None


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"recipe {path} not found", "pass a recipe YAML file, e.g. recipes/toy.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}", "fix the YAML syntax") from None
    return parse_recipe(data, str(path))
