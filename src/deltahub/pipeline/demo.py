"""``deltahub demo``: the toy recipe on the embedded registry, for one or more seeds, with a report."""

from __future__ import annotations

import time
from pathlib import Path

from ..recipe import load_recipe
from .report import aggregate, table, write_report
from .run import run_recipe

RECIPES = Path(__file__).parent / "recipes"


def run_demo(quick: bool = False, seeds: int = 1, out: str | Path = "deltahub-demo", log=print) -> Path:
    """Run the toy recipe for ``seeds`` world seeds and write ``out/report.md`` + ``out/results.png``."""
    out = Path(out)
    recipe = load_recipe(RECIPES / ("toy-quick.yaml" if quick else "toy.yaml"))
    runs, kinds, t0 = [], {}, time.time()
    mergekit_line = None
    for seed in range(seeds):
        seeded = recipe.model_copy(deep=True)
        seeded.world.seed = seed
        if seed:
            seeded.merge.publish = f"{recipe.merge.publish}-seed{seed}" if recipe.merge.publish else None
            for d in seeded.deltas:
                d.repo.dataset = f"{recipe.hub.namespace}/{recipe.name}-{d.name}-pairs-seed{seed}"
                d.repo.adapter = f"{recipe.hub.namespace}/{recipe.name}-{d.name}-delta-seed{seed}"
        log(f"== seed {seed}")
        result = run_recipe(seeded, out / f"seed-{seed}", log=log)
        runs.append(result.rows)
        if seed == 0:  # --- compose the published deltas with mergekit (registry/mergekit_config.py) ---
            from ..registry.mergekit_config import write_for_published

            mergekit_line = write_for_published(result.deltas, out / "gam.yml", recipe.merge.parameters.get("gam"))
        kinds.update(result.kinds)
        skills = sorted({k for r in result.rows.values() for k in r} - {"avg"})
        log(table(aggregate([result.rows]), result.kinds, skills))
    agg = aggregate(runs)
    extra = [f"Wall time: {time.time() - t0:.0f} s for {seeds} seed(s). Recipe: `{recipe.name}` "
             f"({'quick' if quick else 'full'} world)."]
    if mergekit_line:
        extra.append(f"Compose the published deltas (seed 0) with the unmodified mergekit: `{mergekit_line}`")
    return write_report(out, f"deltahub demo — {recipe.description}", agg, kinds, skills, list(range(seeds)), extra)
