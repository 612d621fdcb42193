"""``run_recipe``: the whole PDA loop — pairs, deltas, publish, pull, merges, evaluation, report.

Every stage calls the same library function as its single command (``generate_pairs``,
``train_delta``, ``publish``/``pull``, ``merge_adapters``, the toy evaluator or ``deltahub eval``'s
lm-eval runner), and is skipped when its output exists for the same inputs (see :mod:`.cache`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..atomic import atomic_write_text
from ..errors import DeltahubError, InputError
from ..recipe import DeltaSpec, Recipe, load_recipe
from .cache import StageCache


@dataclass
class RunResult:
    work: Path
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # column -> the metric its cells hold
    deltas: dict[str, dict] = field(default_factory=dict)  # name -> {adapter, dataset, repo, revision, ...}
    merges: dict[str, str] = field(default_factory=dict)
    published: dict[str, str] = field(default_factory=dict)
    correct: dict[str, dict[str, str]] = field(default_factory=dict)  # row -> skill -> "0110..." per question
    select: dict[str, dict[str, str]] = field(default_factory=dict)  # the same on the selection questions
    order: list[str] = field(default_factory=list)  # delta names in recipe order (the composition curve's)
    supervisors: dict[str, dict[str, str]] = field(default_factory=dict)  # delta -> {chosen, rejected} row names
    diagnostic: dict[str, dict] = field(default_factory=dict)  # delta -> its cosine etc. with the oracle update
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


class _Resolver:
    """Turns recipe references (``toy:NAME``, paths, Hub ids) into what the stages take."""

    def __init__(self, recipe: Recipe, work: Path):
        self.recipe = recipe
        self.work = work
        self.world = None
        self.world_key = None

    def build_world(self) -> None:
        if self.recipe.world is None:
            return
        from ..toy import build_world, preset

        config = preset(self.recipe.world.preset, seed=self.recipe.world.seed, overrides=self.recipe.world.overrides)
        self.world_key = config.config_hash()
        self.world = build_world(config=config, progress=True, workers=self.recipe.world.workers)

    def model(self, ref: str) -> str:
        if ref.startswith("toy:"):
            return str(self.world.model(ref[4:]))
        return ref

    def model_key(self, ref: str) -> str:
        return f"{ref}@world-{self.world_key}" if ref.startswith("toy:") else ref

    def prompts(self, delta: DeltaSpec) -> tuple[str, str | None]:
        src = delta.prompts.source
        if src.startswith("toy:"):
            from ..toy import write_prompts

            path = self.work / f"prompts-{delta.name}.jsonl"  # toy:SKILL[,SKILL...]: count questions per skill
            write_prompts(path, src[4:].split(","), delta.prompts.count or 256, split="pairs", seed=delta.prompts.seed)
            return str(path), None
        return src, delta.prompts.split


def plan_lines(recipe: Recipe) -> list[str]:
    """The stages ``run`` would execute, for ``--dry-run``."""
    lines = [
        f"recipe {recipe.name}: {recipe.description}".rstrip(": "),
        f"hub: {recipe.hub.endpoint} (namespace {recipe.hub.namespace}, publish={recipe.hub.publish})",
    ]
    if recipe.world:
        lines.append(f"1. build the toy world (preset {recipe.world.preset}, seed {recipe.world.seed})")
    revision = f"@{recipe.student.revision}" if recipe.student.revision else ""
    lines.append(f"student: {recipe.student.model}{revision}")
    for d in recipe.deltas:
        lines.append(
            f"delta {d.name}: pairs {d.chosen} (chosen) over {d.rejected} (rejected) on {d.prompts.source}"
            + (f" x{d.prompts.count}" if d.prompts.count else "")
        )
        lines.append(f"    generate {d.generation or '(defaults)'}; filters {d.filters or '(none)'}")
        lines.append(f"    train {d.train or '(PDA defaults)'}")
        if recipe.hub.publish:
            lines.append(
                f"    publish dataset {d.repo.dataset or _default_repo(recipe, d, 'pairs')}, "
                f"adapter {d.repo.adapter or _default_repo(recipe, d, 'delta')}; pull both back by revision"
            )
    names = [d.name for d in recipe.merge_deltas()]
    for m in recipe.merge.methods:
        lines.append(f"merge {m} over {', '.join(names)} {recipe.merge.parameters.get(m, {}) or ''}".rstrip())
    lines.append(
        f"evaluate ({recipe.eval.kind}): {', '.join(recipe.eval.tasks) or 'the world skills'}"
        + ("; SFT-on-chosen control" if recipe.eval.sft_control else "")
    )
    if recipe.merge.publish and recipe.hub.publish:
        lines.append(f"publish the merged student to {recipe.merge.publish}")
    launch = recipe.launch
    if launch.launcher != "none":
        lines.append(
            f"launch: {', '.join(launch.stages)} under {launch.launcher} with {launch.processes} processes: "
            + shlex.join([Path(launch.command()[0]).name, *launch.command()[1:]])
            + " -m deltahub.pipeline.stage SPEC (vLLM stages run in this process: vLLM parallelises itself)"
        )
    r = recipe.resources
    if r.gpus or r.launch:
        lines.append(
            f"resources: {r.gpus} GPU(s)"
            + (f", {r.gpu_memory_gb:g} GB each" if r.gpu_memory_gb else "")
            + (f"; launch: {r.launch}" if r.launch else "")
        )
    return lines


def _default_repo(recipe: Recipe, d: DeltaSpec, kind: str) -> str:
    return f"{recipe.hub.namespace}/{recipe.name}-{d.name}-{kind}"


def _setup_hub(recipe: Recipe) -> None:
    """The recipe's registry, with the token its ``hub.token_env`` names."""
    if recipe.hub.publish:
        from ..endpoint import connect

        token = None
        if recipe.hub.token_env != "HF_TOKEN":
            token = os.environ.get(recipe.hub.token_env)
            if not token:
                raise InputError(
                    f"the recipe's hub.token_env names {recipe.hub.token_env}, which is not set",
                    f"export {recipe.hub.token_env}=YOUR_TOKEN, or drop token_env to use HF_TOKEN / hf auth login",
                )
        connect(None if recipe.hub.endpoint == "embedded" else recipe.hub.endpoint, token=token)


def run_merges(
    recipe: Recipe, cache: StageCache, deltas: dict[str, dict], adapters: dict[str, Path], student: str, work: Path
) -> dict[str, str]:
    """The merge stage: every method of ``recipe.merge`` over its deltas, with its parameters
    (a parameter naming an input may name a delta: each input answers to its recipe name), and the composition
    curve's merges. Returns the output folder of each merge by name."""
    from ..merge import MERGE_VERSION, MergeInput, merge_adapters
    from ..merge.registry import METHODS

    merge_inputs = []
    for d in recipe.merge_deltas():
        info = deltas[d.name]
        if info.get("repo"):  # pulled back from the registry: the card names repo@revision
            merge_inputs.append(
                MergeInput(
                    spec=f"{info['repo']}@{info['revision']}",
                    path=adapters[d.name],
                    repo=info["repo"],
                    revision=info["revision"],
                    name=d.name,
                )
            )
        else:
            merge_inputs.append(MergeInput(spec=str(adapters[d.name]), path=adapters[d.name], name=d.name))
    merge_keys = [cache.key(f"train:{d.name}") for d in recipe.merge_deltas()]
    merges = {}
    for name, method, inputs, keys in _merge_jobs(recipe, merge_inputs, merge_keys):
        out = work / f"merge-{name}"
        full = not METHODS[method].low_rank
        params = recipe.merge.parameters.get(method, {})
        cache.run(
            f"merge:{name}",
            {"inputs": keys, "method": method, "params": params, "full": full, "version": MERGE_VERSION},
            # cache.run calls it at once; the defaults bind this iteration's values all the same
            lambda inputs=inputs, out=out, method=method, params=params, full=full: str(
                merge_adapters(
                    inputs,
                    out,
                    method=method,
                    params=params,
                    base=student if full else None,
                    full=full,
                    overwrite=True,
                    progress=False,
                )
            ),
            out,
        )
        merges[name] = str(out)
    return merges


@dataclass
class _Run:
    """What every stage of one run shares."""

    recipe: Recipe
    work: Path
    cache: StageCache
    log: Callable[[str], None]
    res: _Resolver
    student: str
    student_key: str
    skills: list[str]
    result: RunResult
    adapters: dict[str, Path] = field(default_factory=dict)  # the adapter each merge reads, by delta name


def run_recipe(recipe: Recipe | str | Path, work: str | Path, dry_run: bool = False, log=_echo) -> RunResult:
    """Run (or, with ``dry_run``, only plan) a recipe; resumable through ``work``."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    _refuse_launched()
    if dry_run:
        for line in plan_lines(recipe):
            log(line)
        return RunResult(work=Path(work))
    t0 = time.time()
    run = _start(recipe, Path(work), log)
    for d in recipe.deltas:
        _delta_stages(run, d)
    run.result.merges.update(run_merges(recipe, run.cache, run.result.deltas, run.adapters, run.student, run.work))
    if recipe.eval.sft_control:
        for d in recipe.merge_deltas():
            _sft_control_stage(run, d)
    if recipe.eval.oracle:
        _oracle_stages(run)
    _evaluate_all(run)
    if recipe.hub.publish and recipe.merge.publish:
        _publish_merged_stage(run)
    run.result.seconds = time.time() - t0
    _write_summary(run)
    return run.result


def _refuse_launched() -> None:
    """``deltahub run`` drives the stages from one process; under a launcher every process would run all of
    them (and publish, merge ...) at once."""
    from ..distributed import LaunchError, current

    launch = current()
    if launch.distributed:
        raise LaunchError(
            f"deltahub run was started on {launch.world_size} processes (by {launch.launcher or 'a launcher'})",
            "run 'deltahub run RECIPE' in one process; the recipe's launch: section starts its GPU stages under "
            "torchrun / accelerate launch",
        )


def _start(recipe: Recipe, work: Path, log) -> _Run:
    """The registry client, the toy world and the student: what the stages need first."""
    _setup_hub(recipe)
    res = _Resolver(recipe, work)
    log(f"toy world ({recipe.world.preset if recipe.world else '-'})")
    res.build_world()
    skills = recipe.eval.tasks or (recipe.world and res.world.config.skills) or []
    return _Run(
        recipe=recipe,
        work=work,
        cache=StageCache(work, log=log),
        log=log,
        res=res,
        student=res.model(recipe.student.model),
        student_key=res.model_key(recipe.student.model),
        skills=list(skills),
        result=RunResult(work=work),
    )


def _delta_stages(run: _Run, d: DeltaSpec) -> None:
    """One delta: its pairs, its DPO delta, and (when the recipe publishes) publish + pull back."""
    run.log(f"delta {d.name}")
    res, cache, work = run.res, run.cache, run.work
    prompts, split = res.prompts(d)
    pairs_dir = work / f"pairs-{d.name}"
    gen_inputs = {
        "chosen": res.model_key(d.chosen),
        "rejected": res.model_key(d.rejected),
        "prompts": d.prompts.model_dump(),
        "generation": d.generation,
        "filters": d.filters,
    }
    generate = {
        "chosen": res.model(d.chosen),
        "rejected": res.model(d.rejected),
        "prompts": prompts,
        "out": str(pairs_dir),
        "settings": d.generation_settings().to_dict(),
        "filters": d.filter_settings().to_dict(),
        "split": split,
        "overwrite": True,
        "progress": True,
    }
    pairs_key, _ = cache.run(
        f"generate:{d.name}", gen_inputs, lambda: _stage(run, "generate", f"generate-{d.name}", generate), pairs_dir
    )
    delta_dir = work / f"delta-{d.name}"
    train = {
        "student": run.student,
        "pairs": str(pairs_dir),
        "out": str(delta_dir),
        "config": d.train_config().to_dict(),
        "overwrite": True,
        "progress": True,
    }
    train_key, _ = cache.run(
        f"train:{d.name}",
        {"student": run.student_key, "pairs": pairs_key, "train": d.train},
        lambda: _stage(run, "train", f"train-{d.name}", train),
        delta_dir,
    )
    info: dict[str, Any] = {"adapter": str(delta_dir), "dataset": str(pairs_dir)}
    if run.recipe.hub.publish:
        info.update(_publish_delta(run, d, pairs_dir, pairs_key, delta_dir, train_key))
        run.adapters[d.name] = Path(info["pulled"])
    else:
        run.adapters[d.name] = delta_dir
    run.result.deltas[d.name] = info


def _sft_control_stage(run: _Run, d: DeltaSpec) -> None:
    """SFT on the same chosen answers, the control the delta is compared with."""
    sft_dir = run.work / f"sft-{d.name}"
    train = {
        "student": run.student,
        "pairs": str(run.work / f"pairs-{d.name}"),
        "out": str(sft_dir),
        "config": d.train_config(objective="sft").to_dict(),
        "overwrite": True,
        "progress": True,
    }
    run.cache.run(
        f"sft:{d.name}",
        {"student": run.student_key, "pairs": run.cache.key(f"generate:{d.name}"), "train": d.train},
        lambda: _stage(run, "train", f"sft-{d.name}", train),
        sft_dir,
    )


def _oracle_stages(run: _Run) -> None:
    """SFT on the right answers to the first delta's prompts (the oracle update: from the student toward
    the target), then every delta's alignment with it (``deltahub diagnose``'s library call)."""
    from ..diagnostic import diagnose

    d = run.recipe.deltas[0]
    prompts, _ = run.res.prompts(d)
    rows = []
    for line in Path(prompts).read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        rows.append(
            {
                "prompt": [{"role": "user", "content": item["question"]}],
                "chosen": [{"role": "assistant", "content": item["answer"]}],
                "rejected": [{"role": "assistant", "content": item["answer"][::-1]}],
            }
        )
    pairs = run.work / "oracle-pairs.jsonl"
    atomic_write_text(pairs, "".join(json.dumps(r) + "\n" for r in rows))
    oracle_dir = run.work / "oracle"
    train = {
        "student": run.student,
        "pairs": str(pairs),
        "out": str(oracle_dir),
        "config": d.train_config(objective="sft").to_dict(),
        "overwrite": True,
        "progress": True,
    }
    oracle_key, _ = run.cache.run(
        "oracle",
        {"student": run.student_key, "prompts": d.prompts.model_dump(), "train": d.train},
        lambda: _stage(run, "train", "oracle", train),
        oracle_dir,
    )
    names = [x.name for x in run.recipe.deltas]
    _, found = run.cache.run(
        "diagnose",
        {"oracle": oracle_key, "deltas": [run.cache.key(f"train:{n}") for n in names]},
        lambda: {
            n: {"cosine": dg.cosine, "projection": dg.projection, "norm": dg.delta_norm}
            for n, dg in zip(names, diagnose([run.work / f"delta-{n}" for n in names], oracle_dir), strict=True)
        },
    )
    run.result.diagnostic = found


def _publish_merged_stage(run: _Run) -> None:
    """Publish the first method's merge as the recipe's student, its scores in the card's model-index."""
    from ..evaluate import write_model_index

    recipe, result = run.recipe, run.result
    main = recipe.merge.methods[0]
    folder = Path(result.merges[main])
    row = result.rows.get(f"merge {main}")
    if row:
        write_model_index(
            folder,
            {col: {result.metrics.get(col, "score"): v} for col, v in row.items() if col != "avg"},
            name=recipe.merge.publish,
        )
    _, rev = run.cache.run(
        f"publish:merged:{main}",
        {"merge": run.cache.key(f"merge:{main}"), "repo": recipe.merge.publish},
        lambda: _publish(folder, recipe.merge.publish),
    )
    result.published[recipe.merge.publish] = rev


def _stage(run: _Run, kind: str, label: str, kwargs: dict) -> Any:
    """A generate/train/eval stage: in this process, or under the recipe's launcher when ``launch:`` names it
    (one spec, :mod:`.stage`, for both). vLLM stages stay here: vLLM parallelises inside one process."""
    from .stage import run_stage

    spec = {"stage": kind, "kwargs": kwargs}
    launch = run.recipe.launch
    if not launch.runs(kind) or _uses_vllm(run.recipe, kind):
        return run_stage(spec, log=run.log)
    folder = run.work / "launch"
    spec_file, result_file = folder / f"{label}.json", folder / f"{label}.result.json"
    result_file.unlink(missing_ok=True)
    atomic_write_text(spec_file, json.dumps({**spec, "result": str(result_file)}, indent=1))
    cmd = [*launch.command(), "-m", "deltahub.pipeline.stage", str(spec_file)]
    run.log("$ " + shlex.join(cmd))
    from ..endpoint import current

    env = dict(os.environ)
    if current() is not None:  # the registry this run set up (an embedded one lives in this process)
        env["DELTAHUB_ENDPOINT"] = current().url
    code = subprocess.call(cmd, env=env)
    if code != 0 or not result_file.is_file():
        raise DeltahubError(
            f"stage {label} failed under {launch.launcher} with {launch.processes} processes (exit {code}; "
            "its output is above)",
            "fix what it reported and run the recipe again: finished stages are kept",
        )
    return json.loads(result_file.read_text(encoding="utf-8"))["value"]


def _uses_vllm(recipe: Recipe, kind: str) -> bool:
    """Whether a stage would run on vLLM (generation on a GPU machine with vLLM; lm-eval's vllm backend)."""
    if kind == "generate":
        from ..generate.backends import resolve_backend

        return resolve_backend("auto") == "vllm"
    if kind == "eval" and recipe.eval.kind == "lm-eval":
        from ..evaluate.core import pick_backend

        return pick_backend(recipe.eval.backend) == "vllm"
    return False


def _write_summary(run: _Run) -> None:
    result = run.result
    result.ran, result.skipped = run.cache.ran, run.cache.skipped
    result.order = [d.name for d in run.recipe.merge_deltas()]
    result.supervisors = {
        d.name: {"chosen": d.chosen.removeprefix("toy:"), "rejected": d.rejected.removeprefix("toy:")}
        for d in run.recipe.deltas
    }
    summary = {
        "rows": result.rows,
        "kinds": result.kinds,
        "metrics": result.metrics,
        "deltas": result.deltas,
        "merges": result.merges,
        "published": result.published,
        "order": result.order,
        "curve": run.recipe.merge.curve,
        "correct": result.correct,
        "select": result.select,
        "supervisors": result.supervisors,
        "diagnostic": result.diagnostic,
    }
    atomic_write_text(run.work / "results.json", json.dumps(summary, indent=2))


def curve_name(method: str, k: int) -> str:
    """The merge of the first ``k`` deltas with ``method`` (a point of the composition curve)."""
    return f"{method}-first{k}"


def _merge_jobs(recipe: Recipe, inputs: list, keys: list) -> list[tuple[str, str, list, list]]:
    """(name, method, inputs, input keys) of every merge: each method over all deltas, then the
    composition curve (``merge.curve``): that method over the first k deltas, k = 2 .. K-1, in
    recipe order (k = 1 is the first single delta, k = K the full merge)."""
    jobs = [(m, m, inputs, keys) for m in recipe.merge.methods]
    if recipe.merge.curve:
        jobs += [
            (curve_name(recipe.merge.curve, k), recipe.merge.curve, inputs[:k], keys[:k]) for k in range(2, len(inputs))
        ]
    return jobs


def _publish(folder: Path, repo: str, **links) -> str:
    """Publish a folder (idempotent: unchanged content makes no new commit); returns the commit sha."""
    from ..share.publish import publish

    return publish(folder, repo, **links)["commit"]


def _publish_delta(run: _Run, d: DeltaSpec, pairs_dir: Path, pairs_key: str, delta_dir: Path, train_key: str) -> dict:
    """Publish the pairs and the delta (linked to the pairs' commit), then pull the delta back: merges read
    what the registry serves."""
    from ..share.pull import pull

    cache, recipe, work = run.cache, run.recipe, run.work

    ds_repo = d.repo.dataset or _default_repo(recipe, d, "pairs")
    ad_repo = d.repo.adapter or _default_repo(recipe, d, "delta")
    _, ds_rev = cache.run(
        f"publish:pairs:{d.name}", {"pairs": pairs_key, "repo": ds_repo}, lambda: _publish(pairs_dir, ds_repo)
    )
    _, ad_rev = cache.run(
        f"publish:delta:{d.name}",
        {"delta": train_key, "repo": ad_repo, "dataset": ds_rev},
        lambda: _publish(delta_dir, ad_repo, dataset_repo=ds_repo, dataset_revision=ds_rev),
    )
    pulled = work / f"pulled-{d.name}"
    cache.run(
        f"pull:{d.name}",
        {"repo": ad_repo, "revision": ad_rev},
        lambda: str(pull(f"{ad_repo}@{ad_rev}", out=pulled)),
        pulled,
    )
    return {
        "repo": ad_repo,
        "revision": ad_rev,
        "dataset_repo": ds_repo,
        "dataset_revision": ds_rev,
        "pulled": str(pulled),
    }


def _scorer(spec, skills: list[str]):
    """``score(model, adapter) -> {"scores": {column: value, "avg": mean}, "metrics": {column: metric}}``
    for the recipe's evaluation kind."""
    if spec.kind == "toy":
        from ..evaluate.core import toy_verdicts
        from ..toy.graded import is_graded

        def score_toy(model, adapter, select: bool = False) -> dict:
            """Scores on the ``n`` evaluation questions; per-question verdicts for paired statistics (a graded
            skill's are partial credits); with ``select``, also those of ``select_n`` further questions."""
            from ..toy.evaluate import toy_credits

            extra = spec.select_n if select else 0
            plain, graded = [s for s in skills if not is_graded(s)], [s for s in skills if is_graded(s)]
            verdicts = toy_verdicts(model, plain, adapter=adapter, n=spec.n + extra, seed=spec.seed) if plain else {}
            bits_of: dict = {s: "".join("1" if hit else "0" for hit in v) for s, v in verdicts.items()}
            if graded:
                credits = toy_credits(model, graded, adapter=adapter, n=spec.n + extra, seed=spec.seed)
                bits_of.update({s: [round(c, 4) for c in v] for s, v in credits.items()})
            correct = {s: bits_of[s][: spec.n] for s in skills}
            scores = {s: (v.count("1") if isinstance(v, str) else sum(v)) / spec.n for s, v in correct.items()}
            out = {
                "scores": {**scores, "avg": sum(scores.values()) / len(scores)},
                "correct": correct,
                "metrics": {s: "graded_credit" if is_graded(s) else "exact_match" for s in skills},
            }
            if extra:
                out["select"] = {s: bits[spec.n :] for s, bits in bits_of.items()}
            return out

        return score_toy
    from ..evaluate import evaluate

    def score(model, adapter, select: bool = False) -> dict:
        res = evaluate(
            model,
            spec.tasks,
            adapter=adapter,
            limit=spec.limit,
            batch_size=spec.batch_size,
            backend=spec.backend,
            include_path=spec.include_path,
            chat_template=spec.chat_template,
            seed=spec.seed,
        )
        metrics = {task: primary_metric(res[task]) for task in spec.tasks}
        row = {task: res[task][metric] for task, metric in metrics.items()}
        return {"scores": {**row, "avg": sum(row.values()) / len(row)}, "metrics": metrics}

    return score


PRIMARY_METRICS = ("exact_match", "acc_norm", "acc", "f1", "prompt_level_strict_acc")


def primary_metric(metrics: dict[str, float]) -> str:
    """The one metric a table shows for an lm-eval task: the first of ``PRIMARY_METRICS`` it reports."""
    for name in PRIMARY_METRICS:
        if name in metrics:
            return name
    return next(iter(metrics))


def _evaluate_all(run: _Run) -> None:
    """A row per model the report compares: teachers, the student, each delta, each SFT control, each merge."""
    cache, recipe, res, result, work = run.cache, run.recipe, run.res, run.result, run.work
    student, student_key, skills = run.student, run.student_key, run.skills
    spec = recipe.eval

    def score(model, adapter, select: bool) -> dict:
        kwargs = {"eval": spec.model_dump(), "skills": skills, "model": model, "adapter": adapter, "select": select}
        return _stage(run, "eval", f"eval-{len(result.rows)}", kwargs)

    # teachers / sft_control choose which rows exist, not a row's score: not part of its key
    eval_key = spec.model_dump(exclude={"teachers", "sft_control", "select_n", "oracle"})

    def row(
        name: str, kind: str, key_inputs: dict, model: str, adapter: str | None = None, select: bool = False
    ) -> None:
        inputs = {**key_inputs, "skills": skills, "eval": eval_key}
        if select and spec.select_n:
            inputs["select_n"] = spec.select_n
        _, payload = cache.run(f"eval:{name}", inputs, lambda: score(model, adapter, select))
        result.rows[name] = payload["scores"]
        result.metrics.update(payload["metrics"])
        result.kinds[name] = kind
        for field_name in ("correct", "select"):
            if field_name in payload:
                getattr(result, field_name)[name] = payload[field_name]

    teachers_seen = []
    if recipe.eval.teachers:
        for d in recipe.deltas:
            for ref in (d.chosen, d.rejected):
                if ref not in teachers_seen:
                    teachers_seen.append(ref)
                    row(ref.removeprefix("toy:"), "teacher", {"model": res.model_key(ref)}, res.model(ref))
    row("student", "student", {"model": student_key}, student)
    merged = {d.name for d in recipe.merge_deltas()}
    for d in recipe.deltas:  # a delta left out of the merges is a dose-response point
        row(
            f"+ delta {d.name}",
            "single delta" if d.name in merged else "dose",
            {"adapter": cache.key(f"train:{d.name}")},
            student,
            str(work / f"delta-{d.name}"),
            select=d.name in merged,
        )
    if recipe.eval.oracle:
        row("+ oracle SFT", "oracle", {"adapter": cache.key("oracle")}, student, str(work / "oracle"))
    if recipe.eval.sft_control:
        for d in recipe.merge_deltas():
            row(
                f"+ SFT-on-chosen {d.name}",
                "SFT control",
                {"adapter": cache.key(f"sft:{d.name}")},
                student,
                str(work / f"sft-{d.name}"),
            )
    from ..merge.registry import METHODS

    for name, out in result.merges.items():
        method = name.split("-first")[0]
        full = not METHODS[method].low_rank
        kind = "composition curve" if "-first" in name else "merge"
        row(
            f"merge {name}",
            kind,
            {"merge": cache.key(f"merge:{name}")},
            out if full else student,
            None if full else out,
        )
