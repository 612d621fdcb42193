"""Recipes: one YAML file that names a student, its deltas, the merge, the evaluation and the Hub.

A recipe is validated before anything runs; a mistake is reported with the path of the offending
key (``deltas[1].train.beta: ...``), so a long GPU job never dies on a typo an hour in.

Model references are Hub ids, local folders, or ``toy:NAME`` for a model of the built-in toy
world (``toy:student``, ``toy:rev-weak``, ``toy:rev-weaker``, ...). Prompt sources are Hub
dataset ids (``NS/NAME[:SPLIT]``), local JSONL/parquet files, or ``toy:SKILL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InputError
from .generate.filters import FilterSettings
from .generate.settings import GenerationSettings
from .settings import section, settings_error
from .train.config import TrainConfig
from .yamlfile import read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSpec(_Strict):
    """Where deltas are published: ``embedded`` (the built-in registry) or a Hub URL."""

    endpoint: str = "embedded"
    namespace: str = "deltahub"
    token_env: str = Field(
        "HF_TOKEN",
        description="environment variable holding the token to publish with (HF_TOKEN: the client's own rule, "
        "HF_TOKEN else `hf auth login`)",
    )
    publish: bool = True


class WorldSpec(_Strict):
    """The toy world to build first (only for recipes that use ``toy:`` references)."""

    preset: str = "quick"
    seed: int = 0
    workers: int = Field(1, ge=1, description="models of the world trained at once (separate processes)")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="fields of the preset's world config to "
        "replace (e.g. student: {steps: 400}); nested mappings merge, lists replace",
    )

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


GenerationSection = section(GenerationSettings)
FilterSection = section(FilterSettings)
TrainSection = section(TrainConfig)


class DeltaSpec(_Strict):
    """One weak–weaker pair: its prompts, generation settings, training settings and repos."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    chosen: str
    rejected: str
    prompts: PromptSpec
    generation: GenerationSection = Field(default_factory=dict)
    filters: FilterSection = Field(default_factory=dict)
    train: TrainSection = Field(default_factory=dict)
    repo: RepoSpec = Field(default_factory=RepoSpec)

    # The sections keep the keys the recipe gives (stage caches hash those); these are the typed objects.
    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(**self.generation)

    def filter_settings(self) -> FilterSettings:
        return FilterSettings(**self.filters)

    def train_config(self, **overrides: Any) -> TrainConfig:
        return TrainConfig(**{**self.train, **overrides})


def _default_methods() -> list[str]:
    from .merge.registry import default_method

    return [default_method()]


class MergeSpec(_Strict):
    methods: list[str] = Field(default_factory=_default_methods)
    parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    deltas: list[str] | Literal["all"] = "all"
    publish: str | None = None
    curve: str | None = Field(
        None, description="a method of `methods` to merge the first k deltas with, k = 2 .. K-1 (the composition curve)"
    )

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        from .merge.registry import METHODS

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
        from .merge.registry import METHODS

        for method, params in self.parameters.items():
            if method not in self.methods:
                raise ValueError(f"parameters given for {method!r}, which is not in methods")
            try:
                METHODS[method].resolve(params)
            except InputError as exc:
                raise ValueError(f"{exc.message} ({exc.fix})") from None
        return self


class EvalSpec(_Strict):
    """What to evaluate every row on: the toy skills (exact match), or lm-eval tasks."""

    kind: Literal["toy", "lm-eval"] = "toy"
    tasks: list[str] = Field(default_factory=list)
    n: int = Field(200, ge=1)
    select_n: int = Field(
        0,
        ge=0,
        description="toy: further questions per skill, disjoint from the n, on which "
        "the report picks the best single delta of each seed",
    )
    seed: int = 0
    teachers: bool = True
    sft_control: bool = True
    oracle: bool = Field(
        False,
        description="toy: also train SFT on the right answers to the first delta's prompts (the oracle update "
        "the delta diagnostic compares every delta with) and report each delta's cosine with it",
    )
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


STAGES = ("generate", "train", "eval")


class LaunchSpec(_Strict):
    """How ``deltahub run`` starts its GPU stages: each stage named in ``stages`` runs as
    ``LAUNCHER ... -m deltahub.pipeline.stage`` with ``processes`` processes on this node (one per GPU), the
    rest (world, publish, pull, merges) in ``deltahub run``'s own process. vLLM generation and evaluation
    never run under a launcher: vLLM parallelises inside one process (``tensor_parallel_size`` ...)."""

    launcher: Literal["none", "torchrun", "accelerate"] = "none"
    processes: int = Field(1, ge=1, description="processes on this node, one per GPU")
    config: str | None = Field(
        None,
        description="accelerate: its config file (DDP, FSDP, DeepSpeed: recipes/accelerate/*.yaml); a relative "
        "path is read from the recipe's folder, else from the working directory",
    )
    stages: list[Literal[STAGES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(STAGES), description="the stages that run under the launcher"
    )
    args: list[str] = Field(default_factory=list, description="further arguments for the launcher")

    @model_validator(mode="after")
    def _consistent(self) -> LaunchSpec:
        if self.launcher == "none" and (self.processes > 1 or self.config):
            raise ValueError("processes > 1 and config need a launcher (torchrun or accelerate)")
        if self.config and self.launcher != "accelerate":
            raise ValueError("config is an accelerate config file: set launcher: accelerate")
        return self

    def runs(self, stage: str) -> bool:
        """Whether ``stage`` runs under the launcher."""
        return self.launcher != "none" and stage in self.stages

    def command(self) -> list[str]:
        """The launcher's command line up to the module it runs (the launcher of this Python's environment)."""
        import sys

        def tool(name: str, module: list[str]) -> list[str]:
            exe = Path(sys.executable).with_name(name)
            return [str(exe)] if exe.exists() else [sys.executable, "-m", *module]

        n = str(self.processes)
        if self.launcher == "torchrun":
            return [*tool("torchrun", ["torch.distributed.run"]), "--standalone", "--nproc_per_node", n, *self.args]
        launch = [*tool("accelerate", ["accelerate.commands.accelerate_cli"]), "launch"]
        config = ["--config_file", self.config] if self.config else []
        return [*launch, *config, "--num_processes", n, *self.args]


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
    launch: LaunchSpec = Field(default_factory=LaunchSpec)

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
        from .merge.protocol import Inputs
        from .merge.registry import METHODS

        labels = [(d.name,) for d in self.merge_deltas()]
        for method in self.merge.methods if labels else ():  # a parameter naming an input: an index or a name
            spec = METHODS[method]
            try:
                spec.choices(spec.resolve(self.merge.parameters.get(method)), Inputs(labels, {}))
            except InputError as exc:
                raise ValueError(f"merge.parameters.{method}: {exc.message} ({exc.fix})") from None
        uses_toy = any(ref.startswith("toy:") for d in self.deltas for ref in (d.chosen, d.rejected, d.prompts.source))
        uses_toy = uses_toy or self.student.model.startswith("toy:")
        if uses_toy and self.world is None:
            raise ValueError("the recipe uses toy: references but has no 'world:' section")
        if self.launch.runs("train"):  # a batch that does not divide fails here, not an hour into a GPU job
            for i, d in enumerate(self.deltas):
                try:
                    d.train_config().resolved(self.launch.processes).accumulation_steps(self.launch.processes)
                except InputError as exc:
                    raise ValueError(f"deltas[{i}].train: {exc.message} under launch.processes ({exc.fix})") from None
        return self

    def merge_deltas(self) -> list[DeltaSpec]:
        if self.merge.deltas == "all":
            return list(self.deltas)
        return [d for d in self.deltas if d.name in self.merge.deltas]


def parse_recipe(data: dict, source: str = "recipe") -> Recipe:
    """Validate a recipe mapping; the error names the first offending key path."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: a recipe must be a YAML mapping", "see recipes/toy.yaml for an example")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise settings_error(
            exc, Recipe, where=source, fix="fix that key; see recipes/toy.yaml for a valid recipe"
        ) from None


def load_recipe(path: str | Path) -> Recipe:
    """The validated recipe at ``path``; a relative ``launch.config`` is found beside the recipe first."""
    recipe = parse_recipe(read_yaml(path), str(path))
    config = recipe.launch.config
    if config and not Path(config).is_absolute():
        beside = Path(path).parent / config
        found = beside if beside.is_file() else Path(config)
        if not found.is_file():
            raise InputError(
                f"{path}: launch.config {config} not found (looked beside the recipe and in {Path.cwd()})",
                "give the path of an accelerate config, e.g. accelerate/deepspeed_zero2.yaml beside recipes/",
            )
        recipe.launch.config = str(found.resolve())
    return recipe
