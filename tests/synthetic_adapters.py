"""PEFT LoRA adapters written by hand for the merge tests: random factors, any rank, dtype and α.

The config is a real PEFT save's (``deltahub.tiny.build_random_adapter`` on the model) with ``r``,
``lora_alpha`` and ``use_rslora`` set per adapter, so the adapters load in PEFT and in deltahub alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def peft_template(model: Path, root: Path, targets) -> tuple[dict, dict[str, tuple[int, int]]]:
    """(a PEFT adapter config for ``model``, the (out, in) shape of every targeted module)."""
    from deltahub.tiny import build_random_adapter

    template = build_random_adapter(model, root / "template", r=4, alpha=4, target_modules=list(targets))
    config = json.loads((template / "adapter_config.json").read_text())
    base = load_file(Path(model) / "model.safetensors")
    prefix, suffix = "base_model.model.", ".lora_A.weight"
    modules = [k[len(prefix) : -len(suffix)] for k in load_file(template / "adapter_model.safetensors") if suffix in k]
    return config, {m: tuple(base[f"{m}.weight"].shape) for m in modules}


def write_adapter(
    folder: Path,
    config: dict,
    shapes: dict[str, tuple[int, int]],
    r: int,
    g: torch.Generator,
    *,
    std: float = 0.2,
    dtype: str = "float32",
    alpha: int | None = None,
    rslora: bool = False,
) -> Path:
    """An adapter of rank ``r`` in ``folder``: A, B = std·randn (A first, per module), stored in ``dtype``."""
    folder.mkdir(parents=True)
    tensors = {}
    for module, (d, k) in shapes.items():
        A, B = std * torch.randn(r, k, generator=g), std * torch.randn(d, r, generator=g)
        tensors[f"base_model.model.{module}.lora_A.weight"] = A.to(getattr(torch, dtype))
        tensors[f"base_model.model.{module}.lora_B.weight"] = B.to(getattr(torch, dtype))
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = {**config, "r": r, "lora_alpha": r if alpha is None else alpha, "use_rslora": rslora}
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def merge_stage(student: Path, inputs: list[Path], merge: dict, work: Path) -> dict[str, str]:
    """A recipe's merge stage (``deltahub.pipeline.run.run_merges``) over ``inputs``, each delta named as its
    folder, with the recipe's ``merge:`` section; the output folder of every merge by name."""
    from deltahub.pipeline.cache import StageCache
    from deltahub.pipeline.run import run_merges
    from deltahub.recipe import parse_recipe

    names = [p.name for p in inputs]
    recipe = parse_recipe(
        {
            "name": "merge-stage",
            "hub": {"publish": False},
            "student": {"model": str(student)},
            "deltas": [
                {"name": n, "chosen": "weak", "rejected": "weaker", "prompts": {"source": "p.jsonl"}} for n in names
            ],
            "merge": merge,
        }
    )
    return run_merges(
        recipe,
        StageCache(work, log=lambda _: None),
        {n: {} for n in names},
        dict(zip(names, inputs, strict=True)),
        str(student),
        work,
    )
