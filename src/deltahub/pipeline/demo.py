"""``deltahub demo``: a toy recipe on the embedded registry for several world seeds, with a report
of every claim as a paired difference with a confidence interval.

Seeds are independent runs, so with ``workers`` > 1 they run side by side in separate processes
(one torch thread each: more throughput than one process with two threads; figures in
docs/measurements.md). The workers publish to and pull from the
registry of this process, whose URL they get in ``DELTAHUB_ENDPOINT``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..errors import InputError
from ..recipe import Recipe, load_recipe
from .report import write_report

RECIPES = Path(__file__).parent / "recipes"
# world preset -> its recipe; ``sections`` is the default demo
DEMOS = {
    "sections": "toy-sections.yaml",
    "pda": "toy.yaml",
    "delta": "toy-delta.yaml",
    "specialists": "toy-specialists.yaml",
    "quick": "toy-quick.yaml",
}


def demo_recipe(name: str) -> Recipe:
    try:
        return load_recipe(RECIPES / DEMOS[name])
    except KeyError:
        raise InputError(f"unknown demo {name!r}", f"use one of: {', '.join(DEMOS)}") from None


def seeded(recipe: Recipe, seed: int, workers: int) -> Recipe:
    """The recipe for one world seed: its own repos (seed 0 keeps the plain names)."""
    out = recipe.model_copy(deep=True)
    out.world.seed, out.world.workers = seed, workers
    if seed:
        out.merge.publish = f"{recipe.merge.publish}-seed{seed}" if recipe.merge.publish else None
        for d in out.deltas:
            d.repo.dataset = f"{recipe.hub.namespace}/{recipe.name}-{d.name}-pairs-seed{seed}"
            d.repo.adapter = f"{recipe.hub.namespace}/{recipe.name}-{d.name}-delta-seed{seed}"
    return out


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the demo process dies, so a killed demo leaves nothing running."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_seed(recipe_json: str, seed: int, work: str, endpoint: str | None) -> tuple[int, float]:
    """One seed in a worker process; its log goes to ``WORK/log.txt``."""
    if endpoint:
        os.environ["DELTAHUB_ENDPOINT"] = endpoint
    os.environ["TQDM_DISABLE"] = "1"  # the worker's stderr is the demo's console: no interleaved bars
    from ..toy.world import one_thread
    from .run import run_recipe

    t0 = time.time()
    Path(work).mkdir(parents=True, exist_ok=True)
    with open(Path(work) / "log.txt", "a") as log, one_thread():
        # whatever else the seed prints (library warnings) goes to its log, not the demo's console
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        run_recipe(
            Recipe.model_validate_json(recipe_json),
            work,
            log=lambda m: print(f"{time.time() - t0:6.1f}s {m}", file=log, flush=True),
        )
    return seed, time.time() - t0


def run_demo(
    name: str = "sections",
    seeds: int = 3,
    first_seed: int = 0,
    out: str | Path = "deltahub-demo",
    workers: int | None = None,
    log=print,
    recipe: Recipe | None = None,
) -> Path:
    """Run demo ``name`` (or ``recipe``) for world seeds first_seed .. first_seed+seeds-1; write
    ``out/report.md`` and ``out/results.png``; return the report's path."""
    if seeds < 1:
        raise InputError("--seeds must be at least 1", "pass --seeds 5 (the default)")
    out = Path(out)
    recipe = recipe or demo_recipe(name)
    workers = min(workers or min(2, os.cpu_count() or 1), seeds)  # an explicit --workers is taken as given
    seed_list = list(range(first_seed, first_seed + seeds))
    t0 = time.time()
    if workers == 1:
        from ..toy.world import one_thread
        from .run import run_recipe

        for seed in seed_list:
            log(f"== seed {seed}")
            with one_thread():
                run_recipe(seeded(recipe, seed, os.cpu_count() or 1), out / f"seed-{seed}", log=log)
    else:
        _run_parallel(recipe, seed_list, out, workers, log)
    wall = time.time() - t0
    results = {s: json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in seed_list}
    # compose the first seed's published deltas with the unmodified mergekit (registry/mergekit_config.py)
    from ..merge.registry import default_method
    from ..share.mergekit_config import write_for_published

    mergekit_line = write_for_published(
        results[first_seed]["deltas"], out / "gam.yml", recipe.merge.parameters.get(default_method())
    )
    setting = [
        f"Demo `{name}` (recipe `{recipe.name}`: {recipe.description}). Wall time {wall:.0f} s for "
        f"{seeds} seed(s) ({workers} worker process(es), world builds included).",
        "",
    ]
    if recipe.world is not None:
        from ..toy.world import describe, preset

        world = preset(recipe.world.preset, recipe.world.seed, recipe.world.overrides)
        setting += [f"World `{recipe.world.preset}`: {describe(world)}.", ""]
    d, t = recipe.deltas[0], recipe.deltas[0].train
    setting += [
        f"Deltas: {t.get('objective', 'dpo')} (beta {t.get('beta')}, lr {t.get('learning_rate')}, "
        f"{t.get('max_steps')} steps, LoRA r {t.get('rank')}) on the weak member's answers over the weaker "
        f"member's, {d.prompts.count} prompts per skill from {d.prompts.source}, identical pairs dropped; "
        "merges " + ", ".join(recipe.merge.methods) + ".",
        "",
        f"Reproduce: `deltahub demo{' --quick' if name == 'quick' else ''}"
        f"{f' --preset {name}' if name not in ('sections', 'quick') else ''} --seeds {seeds} "
        f"--first-seed {first_seed}`; every seed's folder holds its results.json and stages.",
    ]
    if mergekit_line:
        setting += [
            "",
            f"Compose the published deltas (seed {first_seed}) with the unmodified mergekit: `{mergekit_line}`",
        ]
    return write_report(out, f"deltahub demo — {recipe.description}", results, setting, plumbing_only=name == "quick")


def _run_parallel(recipe: Recipe, seeds: list[int], out: Path, workers: int, log) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    endpoint = None
    if recipe.hub.publish:
        from ..endpoint import connect

        endpoint = connect(None if recipe.hub.endpoint == "embedded" else recipe.hub.endpoint).url
    with ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
    ) as pool:
        jobs = [
            pool.submit(_run_seed, seeded(recipe, s, 1).model_dump_json(), s, str(out / f"seed-{s}"), endpoint)
            for s in seeds
        ]
        log(f"running seeds {seeds[0]}..{seeds[-1]} in {workers} processes (logs: {out}/seed-*/log.txt)")
        for job in as_completed(jobs):
            seed, secs = job.result()
            log(f"== seed {seed} done in {secs:.0f} s")
