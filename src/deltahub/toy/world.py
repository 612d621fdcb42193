"""The toy world: a ladder of tiny Qwen3 models trained from scratch on the toy skills.

One *student* learns a mixture of skills on a budget that leaves headroom. Each *teacher family*
has a *weak* member and a *weaker* one (smaller or shorter-trained); its (weak over weaker)
answers are one preference dataset. The ``sections`` preset (the demo's default) grades answers
by partial credit (toy/graded.py) and gives each family its own section of the quality. In PDA's
setting (``preset("pda")``) every family is a generalist that answers the same prompts from the
same skill mixture, the families differ in architecture and seed, and every supervisor is weaker
than the student; the ``specialists`` preset keeps the first worlds, one family per skill.
Every model is an ordinary Hugging Face folder. Built worlds are cached by a hash of their config
and each model is written atomically, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deltahub.atomic import atomic_dir, atomic_write_text
from deltahub.errors import InputError
from deltahub.home import home
from deltahub.toy.skills import SKILLS

WORLD_FILE = "world.json"


class ModelSpec(BaseModel):
    """Size and training budget of one model of the ladder."""

    model_config = ConfigDict(extra="forbid")
    hidden_size: int = Field(64, ge=32)
    num_layers: int = Field(2, ge=1)
    steps: int = Field(200, ge=0)
    learning_rate: float = Field(3e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    warmup_steps: int = Field(30, ge=0)
    mix: dict[str, float] = Field(
        default_factory=dict,
        description="share of each skill in the training pool, relative to 1 (default: every skill equally)",
    )
    levels: dict[str, list[int]] = Field(
        default_factory=dict,
        description="graded skills (toy/graded.py): stars per section in this model's training answers "
        "(its level on the graded quality; default: the ideal answers)",
    )

    spread: list[float] = Field(
        default_factory=list,
        description="graded skills: probability of 0, 1, 2 ... extra stars in a section of a training answer",
    )

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        from deltahub.toy.graded import GRADERS, SECTIONS

        for skill, stars in v.items():
            if skill not in GRADERS or len(stars) != SECTIONS or min(stars) < 0:
                raise ValueError(f"levels: {skill!r} must be a graded skill with {SECTIONS} counts >= 0")
        return v

    @field_validator("mix")
    @classmethod
    def _mix(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()):
            raise ValueError("mix weights must be >= 0")
        return v

    @field_validator("hidden_size")
    @classmethod
    def _head_dim(cls, v: int) -> int:
        if v % 32:
            raise ValueError("hidden_size must be a multiple of 32 (head_dim 32)")
        return v


class FamilySpec(BaseModel):
    """A teacher family: weak (chosen) over weaker (rejected), trained on ``skills``
    (default: every skill of the world, PDA's setting)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9]+$")
    skills: list[str] | None = None
    weak: ModelSpec
    weaker: ModelSpec
    same_seed: bool = Field(
        False,
        description="members share the initial weights and the training draws, so they differ only in what "
        "their training answers say (their levels)",
    )
    extra: dict[str, ModelSpec] = Field(
        default_factory=dict,
        description="further members by name (e.g. weaker variants for a dose-response): FAMILY-NAME",
    )

    @field_validator("extra")
    @classmethod
    def _extra_names(cls, v: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        bad = [n for n in v if n in ("weak", "weaker") or not n.isalnum()]
        if bad:
            raise ValueError(f"extra member names must be alphanumeric and not weak/weaker: {bad}")
        return v

    def members(self) -> dict[str, ModelSpec]:
        return {"weak": self.weak, "weaker": self.weaker, **self.extra}

    @field_validator("skills")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        bad = [s for s in v or [] if s not in SKILLS]
        if bad or v == []:
            raise ValueError(f"unknown skill(s) {bad}; known: {', '.join(SKILLS)}")
        return v


class ToyWorldConfig(BaseModel):
    """Everything that determines a toy world; its hash names the cache folder."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    skills: list[str] = Field(default_factory=lambda: ["rev", "srt", "cnt"])
    student: ModelSpec = Field(default_factory=lambda: ModelSpec(hidden_size=128, num_layers=4, steps=300))
    families: list[FamilySpec] = Field(default_factory=list)
    train_pool: int = Field(4000, ge=16, description="training questions drawn per skill")

    @field_validator("skills")
    @classmethod
    def _skills(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in SKILLS]
        if bad or not v:
            raise ValueError(f"unknown skills {bad}; known: {', '.join(SKILLS)}")
        return v

    @model_validator(mode="after")
    def _families(self) -> ToyWorldConfig:
        names = [f.name for f in self.families]
        if len(set(names)) != len(names):
            raise ValueError(f"family names must be unique: {names}")
        used = {s for f in self.families for s in f.skills or []}
        specs = [self.student, *(m for f in self.families for m in f.members().values())]
        used |= {s for spec in specs for s in [*spec.mix, *spec.levels]}
        outside = sorted(used - set(self.skills))
        if outside:
            raise ValueError(f"skills {outside} (of a family or a mix) are not among the world's skills")
        return self

    def family_skills(self, family: FamilySpec) -> list[str]:
        return family.skills or list(self.skills)

    def config_hash(self) -> str:
        """Stable short hash of the config (the cache key)."""
        from deltahub.toy.skills import SKILLS_VERSION

        def drop_empty_mix(tree):  # worlds built before ``mix``/``levels``/``extra`` existed keep their hash
            if isinstance(tree, dict):
                return {
                    k: drop_empty_mix(v)
                    for k, v in tree.items()
                    if not (k in ("mix", "levels", "spread", "extra", "same_seed") and not v)
                }
            return [drop_empty_mix(v) for v in tree] if isinstance(tree, list) else tree

        key = {"skills_version": SKILLS_VERSION, **drop_empty_mix(self.model_dump())}
        specs = [self.student, *(m for f in self.families for m in f.members().values())]
        if any(spec.levels for spec in specs):
            from deltahub.toy.graded import GRADED_VERSION

            key["graded_version"] = GRADED_VERSION
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _spec(hidden: int, layers: int, steps: int) -> ModelSpec:
    return ModelSpec(hidden_size=hidden, num_layers=layers, steps=steps, batch_size=32)


# the three generalist families: (hidden, layers) of their weak and weaker members
GENERALISTS = {"a": ((64, 2), (64, 1)), "b": ((96, 1), (32, 2)), "c": ((32, 3), (32, 1))}


def _generalists(seed: int, steps: dict[str, tuple[int, int]]) -> ToyWorldConfig:
    """The generalist families on the same skill mixture, with (weak, weaker) training steps per family."""
    families = [
        FamilySpec(name=name, weak=_spec(*GENERALISTS[name][0], weak), weaker=_spec(*GENERALISTS[name][1], weaker))
        for name, (weak, weaker) in steps.items()
    ]
    return ToyWorldConfig(
        seed=seed, skills=["srt", "lsr"], student=_spec(64, 3, 300), families=families, train_pool=2000
    )


def _pda(seed: int) -> ToyWorldConfig:
    """PDA's setting: three generalist families (different sizes, seeds) on the same skill mixture,
    every supervisor weaker than the student. Settings: docs/toyworld.md (search on seeds 100-104)."""
    return _generalists(seed, {"a": (300, 150), "b": (300, 200), "c": (400, 200)})


def _delta(seed: int) -> ToyWorldConfig:
    """The delta-learning regime: both members of every family well below the student."""
    return _generalists(seed, {"a": (150, 100), "b": (150, 100), "c": (200, 100)})


def _specialists(seed: int) -> ToyWorldConfig:
    """The first worlds (docs/toyworld.md, sessions 1-3): one specialist family per skill.

    Three sorting skills (digits ascending, digits descending, letters): content-based tasks that
    64-wide models learn smoothly, unlike rev/cnt/add. Each weak teacher, trained on its skill
    alone, is near 0.95 -- far above the student -- and srt/dsc contradict each other, so their
    deltas interfere: neither is PDA's setting, which is why ``pda`` is the default.
    """
    skills = ["srt", "dsc", "lsr"]
    # the weaker member gets some answers right (~0.2) and the rest nearly right, so a pair
    # contrasts a right answer with a plausible wrong one (a 32x1 / 60-step weaker answered
    # garbage that the student already avoided: DPO then only pushed probabilities around)
    families = [FamilySpec(name=s, skills=[s], weak=_spec(64, 2, 300), weaker=_spec(32, 2, 150)) for s in skills]
    return ToyWorldConfig(seed=seed, skills=skills, student=_spec(64, 3, 200), families=families, train_pool=2000)


def _quick(seed: int) -> ToyWorldConfig:
    """Seconds to build: the test suite's and ``demo --quick``'s world."""
    families = [
        FamilySpec(name="a", weak=_spec(64, 1, 120), weaker=_spec(32, 1, 60)),
        FamilySpec(name="b", weak=_spec(32, 2, 120), weaker=_spec(32, 1, 40)),
    ]
    return ToyWorldConfig(
        seed=seed, skills=["srt", "lsr"], student=_spec(64, 2, 150), families=families, train_pool=1000
    )


def _graded(own: int, other: int) -> list[list[int]]:
    """Stars per section for the three families: ``own`` in the family's own section, ``other`` elsewhere."""
    return [[own if i == j else other for i in range(3)] for j in range(3)]


# the sections world: family (hidden, layers) and dose-response variants of family a's weaker member
SECTION_FAMILIES = {"a": (64, 2), "b": (96, 1), "c": (64, 1)}
# every model's training answers: a section has 0, 1 or 2 stars more than its level with these odds, so
# the greedy answer is the level and the next stars are a near call (the colons never are)
SPREAD = [0.65, 0.2, 0.15]
DOSE_WEAKER = {"weaker5": 5, "weaker4": 4, "weaker3": 3, "weaker0": 0}


def _sections(seed: int) -> ToyWorldConfig:
    """The graded world (docs/toyworld.md, "The sections world"): the quality is the number of stars
    in three sections (toy/graded.py). The student writes 4 per section (12 of 18). Family f's weak
    member writes 6 in section f and 1 in the others (8 of 18), its weaker member 5 and 1 (7 of 18):
    every supervisor is below the student, every family's difference points toward more stars, and
    each family's lies in its own section (complementary deltas). The pair differs in one graded slot,
    so a rejected answer has almost nothing after its first differing token for DPO to push down (a
    larger difference displaced the likelihood onto tokens no model wrote, docs/toyworld.md). Within a
    family the members share size, initial weights and training draws (``same_seed``), so they differ
    only in the stars. The ``weakerN`` members of family a write N stars in section a: the
    dose-response's weaker members."""
    weak, weaker = _graded(6, 1), _graded(5, 1)

    def spec(name: str, stars: list[int]) -> ModelSpec:
        hidden, layers = SECTION_FAMILIES[name]
        return ModelSpec(
            hidden_size=hidden, num_layers=layers, steps=200, batch_size=32, levels={"sec": stars}, spread=SPREAD
        )

    families = []
    for j, name in enumerate(SECTION_FAMILIES):
        extra = {}
        if name == "a":
            extra = {m: spec(name, [n, 1, 1]) for m, n in DOSE_WEAKER.items()}
        families.append(
            FamilySpec(name=name, weak=spec(name, weak[j]), weaker=spec(name, weaker[j]), extra=extra, same_seed=True)
        )
    student = ModelSpec(
        hidden_size=64, num_layers=2, steps=200, batch_size=32, levels={"sec": [4, 4, 4]}, spread=SPREAD
    )
    return ToyWorldConfig(seed=seed, skills=["sec"], student=student, families=families, train_pool=2000)


PRESETS = {"sections": _sections, "pda": _pda, "delta": _delta, "specialists": _specialists, "quick": _quick}


def preset(name: str, seed: int = 0, overrides: dict | None = None) -> ToyWorldConfig:
    """A built-in world: ``pda`` (the demo's default), ``delta``, ``specialists`` or ``quick``;
    ``overrides`` replaces fields of it (nested mappings merge, lists are replaced whole)."""
    try:
        config = PRESETS[name](seed)
    except KeyError:
        raise InputError(f"unknown toy world preset {name!r}", f"use one of: {', '.join(PRESETS)}") from None
    if not overrides:
        return config
    from pydantic import ValidationError

    try:
        return ToyWorldConfig.model_validate(_merged(config.model_dump(), overrides))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise InputError(
            f"world override{' ' + where if where else ''}: {err['msg'].removeprefix('Value error, ')}",
            "fix the recipe's world.overrides",
        ) from None


def describe(config: ToyWorldConfig) -> str:
    """One line: the skills, the student and every family (hidden x layers / training steps)."""

    def m(spec: ModelSpec) -> str:
        stars = "".join(f" stars {'/'.join(map(str, v))}" for v in spec.levels.values())
        return f"{spec.hidden_size}x{spec.num_layers}/{spec.steps}{stars}"

    fams = "; ".join(
        f"{f.name}: {m(f.weak)} over {m(f.weaker)}"
        + "".join(f", {n} {m(x)}" for n, x in f.extra.items())
        + (f" on {','.join(f.skills)}" if f.skills and f.skills != config.skills else "")
        for f in config.families
    )
    return (
        f"skills {', '.join(config.skills)}; student {m(config.student)} (hidden x layers / steps); "
        f"families (weak over weaker) {fams}"
    )


def _merged(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


@dataclass
class World:
    """A built world: where its models are."""

    root: Path
    config: ToyWorldConfig
    student: Path
    teachers: dict[str, dict[str, Path]] = field(default_factory=dict)

    def model(self, name: str) -> Path:
        """Path of ``student``, ``FAMILY-weak`` or ``FAMILY-weaker``."""
        if name == "student":
            return self.student
        family, _, member = name.rpartition("-")
        try:
            return self.teachers[family][member]
        except KeyError:
            raise InputError(f"toy world has no model {name!r}", f"use one of: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return ["student"] + [f"{s}-{m}" for s, ms in self.teachers.items() for m in ms]


def default_root() -> Path:
    """Where worlds are cached: ``$DELTAHUB_HOME/toy`` (default ``~/.cache/deltahub/toy``)."""
    return home() / "toy"


def world_dir(config: ToyWorldConfig) -> Path:
    return default_root() / f"world-{config.config_hash()}"


def _world(root: Path, config: ToyWorldConfig) -> World:
    teachers = {f.name: {m: root / f"{f.name}-{m}" for m in f.members()} for f in config.families}
    return World(root=root, config=config, student=root / "student", teachers=teachers)


def load_world(root: str | Path) -> World:
    """Open a built world folder."""
    root = Path(root)
    meta = root / WORLD_FILE
    if not meta.is_file():
        raise InputError(f"{root} is not a built toy world (no {WORLD_FILE})", "build it with build_world")
    return _world(root, ToyWorldConfig.model_validate(json.loads(meta.read_text())["config"]))


def _train_job(path: Path, spec: ModelSpec, skills: list[str], seed: int, pool: int, progress: bool) -> None:
    with atomic_dir(path, overwrite=True) as tmp:
        train_model(tmp, spec, skills, seed=seed, pool=pool, progress=progress, desc=path.name)


def build_world(
    out: str | Path | None = None, config: ToyWorldConfig | None = None, progress: bool = True, workers: int = 1
) -> World:
    """Train the whole ladder into ``out`` (default: the cache folder of ``config``).

    Models already present from an earlier run of the same config are kept, so a second call
    returns at once and an interrupted build only trains what is missing. ``workers`` > 1 trains
    that many models at once in separate processes (one thread each; the weights are the same
    as a sequential build's, since every model trains on one thread either way).
    """
    config = config or preset("pda")
    root = Path(out) if out is not None else world_dir(config)
    meta = root / WORLD_FILE
    if meta.is_file():
        stored = json.loads(meta.read_text())
        if stored.get("hash") != config.config_hash():
            raise InputError(
                f"{root} holds a different toy world (config {stored.get('hash')})",
                "choose another folder or delete this one",
            )
    root.mkdir(parents=True, exist_ok=True)
    world = _world(root, config)
    jobs: list[tuple[Path, ModelSpec, list[str], int]] = [(world.student, config.student, config.skills, 0)]
    for i, fam in enumerate(config.families):
        skills = config.family_skills(fam)
        jobs.append((world.teachers[fam.name]["weak"], fam.weak, skills, 100 + 2 * i))
        jobs.append((world.teachers[fam.name]["weaker"], fam.weaker, skills, 100 + 2 * i + (not fam.same_seed)))
        for j, (member, spec) in enumerate(fam.extra.items()):
            jobs.append(
                (world.teachers[fam.name][member], spec, skills, 100 + 2 * i if fam.same_seed else 200 + 10 * i + j)
            )
    # the longest first, so parallel workers finish together
    todo = sorted(
        ((p, s, sk, config.seed * 1000 + off) for p, s, sk, off in jobs if not (p / "model.safetensors").is_file()),
        key=lambda job: -job[1].steps * job[1].num_layers * job[1].hidden_size,
    )
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in [pool.submit(_train_job, *job, config.train_pool, False) for job in todo]:
                done.result()
    else:
        for job in todo:
            _train_job(*job, config.train_pool, progress)
    atomic_write_text(
        meta,
        json.dumps({"hash": config.config_hash(), "config": config.model_dump(), "models": world.names()}, indent=2),
    )
    return world


@contextmanager
def one_thread():
    """Run torch on one thread inside the block: tiny models gain nothing from intra-op threads
    (they were slower; docs/measurements.md), and a fixed thread count makes results independent of
    the machine."""
    from deltahub.threads import single_thread  # the same switch as the merges' thin matrices

    with single_thread():
        yield


def training_items(spec: ModelSpec, skills: list[str], seed: int, pool: int) -> list[tuple[str, str]]:
    """The (question, answer) pool a model trains on: ``pool`` x its mix weight per skill."""
    from deltahub.toy.graded import restyle
    from deltahub.toy.skills import sample

    items = []
    rng = random.Random(seed)
    for s in skills:
        drawn = sample(s, "train", round(pool * spec.mix.get(s, 1.0)), seed=seed, unique=False)
        stars = spec.levels.get(s)
        items += [(q, restyle(a, stars, spec.spread, rng)) for q, a in drawn] if stars is not None else drawn
    return items


def train_model(
    out: Path,
    spec: ModelSpec,
    skills: list[str],
    seed: int,
    pool: int = 4000,
    progress: bool = True,
    desc: str = "train",
) -> Path:
    """Train one tiny Qwen3 from scratch on ``skills`` (loss on answers only) and save it."""
    import torch
    from tqdm.auto import tqdm
    from transformers import Qwen3ForCausalLM

    from deltahub.tiny import tiny_qwen3_config
    from deltahub.toy.data import collate, encode_examples, toy_tokenizer

    tok = toy_tokenizer()
    cfg = tiny_qwen3_config(
        len(tok),
        spec.hidden_size,
        spec.num_layers,
        max_position_embeddings=128,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    examples = encode_examples(tok, training_items(spec, skills, seed, pool))
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        frac = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    with one_thread():
        for _ in tqdm(range(spec.steps), desc=desc, disable=not progress, leave=False):
            batch = collate(rng.choices(examples, k=spec.batch_size), tok.pad_token_id)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
