"""The toy-world experiment: world -> pairs -> one DPO delta per family -> merges -> exact match.

Run ``python -m deltahub.toy.research --preset full --seed 0 --out DIR`` to reproduce a row set of
docs/toyworld.md. Training uses TRL's DPOTrainer with the settings ``deltahub train`` exposes
(objective, beta, learning rate, LoRA r/alpha, steps, batch), and merging uses ``deltahub.merge``,
so each number maps 1:1 onto the CLI pipeline. The evaluation never changes between rows.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from deltahub.toy.evaluate import evaluate, greedy_answers, load_model
from deltahub.toy.skills import get_skill, sample
from deltahub.toy.world import build_world, preset

OBJECTIVES = {"dpo": (["sigmoid"], None), "dpo+sft": (["sigmoid", "sft"], [1.0, 1.0]),
              "dpo_norm": (["sigmoid_norm"], None), "ipo": (["ipo"], None), "sft": (["sft"], None)}


def make_pairs(weak: Path, weaker: Path, skill: str, n: int, seed: int) -> list[dict]:
    """Greedy answers of weak (chosen) and weaker (rejected) on the pairs split; identical pairs dropped."""
    items = sample(skill, "pairs", n, seed=seed)
    qs = [q for q, _ in items]
    width = get_skill(skill).max_answer_len + 1
    chosen = greedy_answers(*load_model(weak), qs, width)
    rejected = greedy_answers(*load_model(weaker), qs, width)
    return [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}], "answer": a}
            for (q, a), c, r in zip(items, chosen, rejected, strict=True) if c != r]


def near_miss(answer: str, rng: random.Random) -> str:
    """A near miss: two neighbouring characters swapped (or one changed when they are equal)."""
    s = list(answer)
    i = rng.randrange(len(s) - 1)
    s[i], s[i + 1] = s[i + 1], s[i]
    if s == list(answer):
        s[i] = "9" if s[i] != "9" else "0"
    return "".join(s)


def near_miss_pairs(skill: str, n: int, seed: int, swap: bool = False) -> list[dict]:
    """Pairs on the 'pairs' split: the right answer over a near miss, or with ``swap`` the near miss over the
    right answer (a deliberately harmful delta's data: it teaches the near misses)."""
    rng = random.Random(seed)
    rows = []
    for q, a in sample(skill, "pairs", n, seed=seed):
        good, bad = (near_miss(a, rng), a) if swap else (a, near_miss(a, rng))
        rows.append({"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": good}],
                     "rejected": [{"role": "assistant", "content": bad}]})
    return rows


def train_dpo(student: Path, rows: list[dict], out: Path, objective: str = "dpo+sft", beta: float = 0.1,
              lr: float = 1e-4, steps: int = 100, batch: int = 32, r: int = 8, alpha: int = 16, seed: int = 0) -> Path:
    """One LoRA delta on the student with TRL's DPOTrainer (reference = adapter-disabled student)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    loss_type, weights = OBJECTIVES[objective]
    tok = AutoTokenizer.from_pretrained(student)
    model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
    cfg = DPOConfig(output_dir=str(out / "_trainer"), per_device_train_batch_size=batch, max_steps=steps,
                    learning_rate=lr, beta=beta, loss_type=loss_type, loss_weights=weights, max_length=64,
                    bf16=False, gradient_checkpointing=False, use_cpu=True, logging_steps=max(1, steps // 5),
                    save_strategy="no", report_to="none", seed=seed, disable_tqdm=True,
                    precompute_ref_log_probs=objective != "sft")
    lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    ds = Dataset.from_list([{k: v for k, v in row.items() if k in ("prompt", "chosen", "rejected")} for row in rows])
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, peft_config=lora)
    trainer.train()
    trainer.model.save_pretrained(out)
    return out


def run(preset_name: str, seed: int, out: Path, objective: str = "dpo+sft", beta: float = 0.1, lr: float = 1e-4,
        steps: int = 100, batch: int = 32, pairs: int = 512, n_eval: int = 200,
        merges: tuple[str, ...] = ("gam", "average", "ties"), control: bool = False,
        student_steps: int | None = None, weak_steps: int | None = None) -> dict:
    """One seed of the whole experiment; returns {row: scores} and writes results.json."""
    from deltahub.merge import merge_adapters

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    cfg = preset(preset_name, seed=seed)
    if student_steps is not None:
        cfg.student = cfg.student.model_copy(update={"steps": student_steps})
    if weak_steps is not None:
        for fam in cfg.families:
            fam.weak = fam.weak.model_copy(update={"steps": weak_steps})
    world = build_world(config=cfg, progress=False)
    skills = cfg.skills
    rows: dict[str, dict] = {}
    for name in world.names():
        rows[name] = evaluate(world.model(name), skills, n=n_eval)
    deltas = []
    stats: dict[str, dict] = {}
    for fam in cfg.families:
        prs = make_pairs(world.teachers[fam.skill]["weak"], world.teachers[fam.skill]["weaker"], fam.skill, pairs, seed)
        right = sum(p["chosen"][0]["content"] == p["answer"] for p in prs)
        stats[fam.skill] = {"pairs": len(prs), "chosen_correct": right / max(1, len(prs))}
        if not prs:  # weak and weaker agree on every prompt: no preference signal, no delta
            continue
        ad = out / f"delta-{fam.skill}"
        if not (ad / "adapter_model.safetensors").is_file():
            train_dpo(world.student, prs, ad, objective, beta, lr, steps, batch, seed=seed)
        deltas.append(ad)
        rows[f"student+{fam.skill} delta"] = evaluate(world.student, skills, adapter=ad, n=n_eval)
        if control:  # SFT on the chosen answers alone, same data, steps and learning rate
            sd = out / f"sft-{fam.skill}"
            if not (sd / "adapter_model.safetensors").is_file():
                train_dpo(world.student, prs, sd, "sft", beta, lr, steps, batch, seed=seed)
            rows[f"student+{fam.skill} SFT-on-chosen"] = evaluate(world.student, skills, adapter=sd, n=n_eval)
    for method in merges:
        mo = out / f"merge-{method}"
        full = method in ("ties",)
        if not mo.exists():
            merge_adapters(deltas, mo, method=method, base=world.student if full else None, full=full, progress=False)
        rows[f"merge {method}"] = (evaluate(mo, skills, n=n_eval) if full
                                   else evaluate(world.student, skills, adapter=mo, n=n_eval))
    result = {"preset": preset_name, "world": cfg.model_dump(), "seed": seed, "objective": objective, "beta": beta,
              "lr": lr, "steps": steps,
              "batch": batch, "pairs": stats, "rows": rows, "seconds": round(time.time() - t0, 1)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    return result


def summarize(results: list[dict]) -> str:
    """A markdown table: per row and skill, the mean over seeds and the spread (min-max)."""
    rows = list(results[0]["rows"])
    skills = list(results[0]["rows"][rows[0]])
    lines = ["| row | " + " | ".join(skills) + " |", "|---" * (len(skills) + 1) + "|"]
    for row in rows:
        cells = []
        for sk in skills:
            vals = [r["rows"][row][sk] for r in results if row in r["rows"]]
            mean = sum(vals) / len(vals)
            cells.append(f"{mean:.3f} ({min(vals):.2f}-{max(vals):.2f})" if len(vals) > 1 else f"{mean:.3f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="full")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--summarize", type=Path, nargs="+", help="results.json files to tabulate (no training)")
    ap.add_argument("--objective", default="dpo+sft", choices=sorted(OBJECTIVES))
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--control", action="store_true", help="also train SFT-on-chosen adapters")
    ap.add_argument("--student-steps", type=int, help="override the preset's student budget")
    ap.add_argument("--weak-steps", type=int, help="override the preset's weak-teacher budget")
    a = ap.parse_args()
    if a.summarize:
        print(summarize([json.loads(p.read_text()) for p in a.summarize]))
        return
    res = run(a.preset, a.seed, a.out, a.objective, a.beta, a.lr, a.steps, a.batch, a.pairs, control=a.control,
              student_steps=a.student_steps, weak_steps=a.weak_steps)
    skills = list(next(iter(res["rows"].values())))
    print("| row | " + " | ".join(skills) + " |")
    for name, sc in res["rows"].items():
        print(f"| {name} | " + " | ".join(f"{sc[s]:.3f}" for s in skills) + " |")
    print(json.dumps(res["pairs"]), res["seconds"], "s")


if __name__ == "__main__":
    main()
