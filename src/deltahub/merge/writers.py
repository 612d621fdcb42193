"""Writing merge results: a PEFT LoRA adapter folder, or a full model in safetensors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import InputError
from .adapters import CONFIG_NAME, WEIGHTS_NAME
from .lowrank import LowRank

PEFT_PREFIX = "base_model.model."


def pad_rank(delta: LowRank, rank: int) -> LowRank:
    """Zero-pad B's columns and A's rows to ``rank``; B·A is unchanged."""
    extra = rank - delta.rank
    if extra <= 0:
        return delta
    return LowRank(torch.nn.functional.pad(delta.B, (0, extra)), torch.nn.functional.pad(delta.A, (0, 0, 0, extra)),
                   delta.scale)


def write_adapter(
    out: Path, modules: dict[str, LowRank], template_config: dict, dtype: torch.dtype = torch.float32
) -> None:
    """Save merged updates as a PEFT LoRA adapter with one uniform rank and scale 1.

    Every module is zero-padded to the largest rank, and ``lora_alpha = r`` so PEFT's scale
    α/r is exactly 1: the file holds B' and A' with B'·A' = ΔW, loadable by PeftModel and by
    multi-LoRA servers that expect one rank per adapter.
    """
    from safetensors.torch import save_file

    rank = max(d.rank for d in modules.values())
    tensors = {}
    for name, delta in modules.items():
        delta = pad_rank(delta, rank).folded()  # the file's scale is 1: B' = scale·B
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = delta.A.to(dtype).contiguous()
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = delta.B.to(dtype).contiguous()
    config = {
        k: v for k, v in template_config.items()
        if k not in ("rank_pattern", "alpha_pattern", "use_rslora", "r", "lora_alpha", "target_modules",
                     "layers_to_transform", "layers_pattern", "lora_dropout")
    }
    config.update(
        peft_type="LORA", r=rank, lora_alpha=rank, use_rslora=False, rank_pattern={}, alpha_pattern={},
        lora_dropout=0.0, target_modules=sorted(modules), inference_mode=True, use_dora=False,
        modules_to_save=None,
    )
    save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


MODEL_FILES_TO_COPY = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
)


def write_full_model(
    out: Path, base: Path, delta_for: Callable[[str], torch.Tensor | None], module_names: list[str],
    on_module: Callable[[], None] | None = None,
) -> list[str]:
    """Write base + ΔW for every merged module, shard by shard, as safetensors.

    ``delta_for(module)`` returns the dense update of a module (or None). Only one base shard is
    in memory at a time. Returns the merged modules missing from the base (an error upstream).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    if any((base / n).exists() for n in ("pytorch_model.bin", "pytorch_model.bin.index.json")) and not list(
        base.glob("*.safetensors")
    ):
        raise InputError(f"base model {base} has only pickled weights; pickles can run code and are refused",
                         "convert the base model to safetensors")
    shards = sorted(base.glob("*.safetensors"))
    if not shards:
        raise InputError(f"base model folder {base} has no safetensors weights", "pass a Hugging Face model folder")
    wanted = {f"{m}.weight": m for m in module_names}
    found = set()
    for shard in shards:
        tensors = {}
        with safe_open(shard, framework="pt") as f:
            metadata = f.metadata() or {"format": "pt"}
            for key in f.keys():
                t = f.get_tensor(key)
                if key in wanted:
                    module = wanted[key]
                    delta = delta_for(module)
                    if tuple(delta.shape) != tuple(t.shape):
                        raise InputError(f"delta for {module} has shape {tuple(delta.shape)} but the base weight "
                                         f"is {tuple(t.shape)}",
                                         "merge adapters trained on this base model")
                    t = (t.to(torch.float32) + delta.to(torch.float32)).to(t.dtype)
                    found.add(key)
                    if on_module:
                        on_module()
                tensors[key] = t.contiguous()
        save_file(tensors, str(out / shard.name), metadata=metadata)
        del tensors
    for name in MODEL_FILES_TO_COPY + ("model.safetensors.index.json",):
        if (base / name).exists():
            shutil.copy2(base / name, out / name)
    return sorted(m for k, m in wanted.items() if k not in found)
