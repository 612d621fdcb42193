"""The PDA-style probe of docs/toyworld.md (third session): generalist teacher families.

Historical: it ran at commit a56a3da and imports ``deltahub.toy.research`` and the ``full``
preset, which the fourth session replaced (the ``pda`` preset, ``docs/toyworld-runs/sweep.py``);
check that commit out to rerun it. Its GAM rows used ``merge_adapters``' default reference 0 (one read per
module), so the ``reference: auto`` 2x bug of issue #13 did not touch them.

The shipped toy world gives each family one skill, so its deltas are complementary and interfere.
PDA's own setting is several teacher *families* on the *same* prompts; this probe builds it on the
full world's student: three families (different sizes and seeds), each weak and weaker member
trained on the mixture of srt/dsc/lsr, one DPO+SFT delta per family on 128 pairs-split prompts per
skill, then GAM / averaging / TIES / KnOTS over the three deltas. Same library functions and the
same evaluation (200 eval questions per skill, exact match) as ``deltahub demo``.

    python docs/toyworld-runs/pda_probe.py --seed 0 --weakers near-miss --lr 3e-4 --out /tmp/pda
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deltahub.merge import merge_adapters
from deltahub.toy.evaluate import evaluate
from deltahub.toy.research import make_pairs, train_dpo
from deltahub.toy.world import ModelSpec, build_world, preset, train_model


def _spec(hidden: int, layers: int, steps: int) -> ModelSpec:
    return ModelSpec(hidden_size=hidden, num_layers=layers, steps=steps, batch_size=32)


WEAK = {"A": _spec(64, 2, 400), "B": _spec(96, 2, 300), "C": _spec(64, 3, 300)}
WEAKERS = {  # r12: weakers that answer almost nothing right; r13: near-miss weakers (0.12-0.23 EM)
    "garbage": {"A": _spec(32, 2, 200), "B": _spec(32, 1, 300), "C": _spec(64, 1, 150)},
    "near-miss": {"A": _spec(64, 2, 150), "B": _spec(32, 2, 400), "C": _spec(64, 1, 250)},
}


def _teacher(root: Path, name: str, spec: ModelSpec, skills: list[str], seed: int) -> Path:
    path = root / f"{name}-{spec.hidden_size}x{spec.num_layers}-{spec.steps}"
    if not (path / "model.safetensors").is_file():
        train_model(path, spec, skills, seed=seed, pool=2000, progress=False, desc=path.name)
    return path


def run(seed: int, weakers: str, lr: float, steps: int, out: Path) -> dict:
    t0 = time.time()
    cfg = preset("full", seed=seed)
    world = build_world(config=cfg, progress=False)
    skills = cfg.skills
    rows = {"student": evaluate(world.student, skills, n=200)}
    run_dir = out / f"{weakers}-lr{lr:g}-s{seed}"
    deltas = []
    for i, family in enumerate(WEAK):
        weak = _teacher(out / f"teachers-s{seed}", f"{family}-weak", WEAK[family], skills, seed * 1000 + 500 + 2 * i)
        weaker = _teacher(
            out / f"teachers-s{seed}", f"{family}-weaker", WEAKERS[weakers][family], skills, seed * 1000 + 501 + 2 * i
        )
        rows[f"{family}-weak"] = evaluate(weak, skills, n=200)
        rows[f"{family}-weaker"] = evaluate(weaker, skills, n=200)
        pairs = [p for s in skills for p in make_pairs(weak, weaker, s, 128, seed)]
        for kind, objective in (("delta", "dpo+sft"), ("sft", "sft")):
            adapter = run_dir / f"{kind}-{family}"
            if not (adapter / "adapter_model.safetensors").is_file():
                train_dpo(world.student, pairs, adapter, objective, 0.1, lr, steps, 32, seed=seed)
            rows[f"+ {kind} {family}"] = evaluate(world.student, skills, adapter=adapter, n=200)
        deltas.append(run_dir / f"delta-{family}")
    for method in ("gam", "average", "ties", "knots"):
        merged = run_dir / f"merge-{method}"
        full = method == "ties"  # TIES is not low-rank: a full model
        if not merged.exists():
            merge_adapters(
                deltas, merged, method=method, base=world.student if full else None, full=full, progress=False
            )
        rows[f"merge {method}"] = (
            evaluate(merged, skills, n=200) if full else evaluate(world.student, skills, adapter=merged, n=200)
        )
    result = {
        "seed": seed,
        "weakers": weakers,
        "objective": "dpo+sft",
        "beta": 0.1,
        "lr": lr,
        "steps": steps,
        "rows": rows,
        "seconds": round(time.time() - t0, 1),
    }
    (run_dir / "results.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weakers", choices=sorted(WEAKERS), default="near-miss")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    res = run(a.seed, a.weakers, a.lr, a.steps, a.out)
    for name, scores in res["rows"].items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in scores.values()) + " |")
    print(res["seconds"], "s")


if __name__ == "__main__":
    main()
