"""Writing merge results: a PEFT LoRA adapter folder, or a full model in safetensors.

An adapter is written as it is produced (:class:`SafetensorsWriter`): the file's layout is fixed by
the names, dtypes and shapes, all known before the first module is merged, so each module's factors
go to their place in the file the moment they exist, from any worker thread, and the merged adapter
is never held in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from ..errors import InputError
from .adapters import CONFIG_NAME, WEIGHTS_NAME
from .lowrank import LowRank

PEFT_PREFIX = "base_model.model."
# safetensors' dtype codes, in the order save_file sorts them (descending; then by name)
_CODES = {torch.float64: ("F64", 3), torch.float32: ("F32", 2), torch.bfloat16: ("BF16", 1), torch.float16: ("F16", 0)}


class SafetensorsWriter:
    """A safetensors file whose tensors arrive one at a time, in any order, from any thread.

    The header (every tensor's dtype, shape and byte range) is computed up front exactly as
    ``safetensors.torch.save_file`` lays it out (tensors by descending dtype, then by name; compact
    JSON padded with spaces to 8 bytes), so the file is byte-identical to ``save_file`` of the same
    tensors; each :meth:`write` puts one tensor's bytes at its offset. :meth:`close` fails if a
    tensor was never written.
    """

    def __init__(
        self, path: Path, specs: Mapping[str, tuple[torch.dtype, Sequence[int]]], metadata: dict[str, str] | None = None
    ):
        header: dict = {"__metadata__": metadata} if metadata is not None else {}
        self._where: dict[str, tuple[int, torch.dtype, tuple[int, ...]]] = {}
        offset = 0
        for name in sorted(specs, key=lambda n: (-_CODES[specs[n][0]][1], n)):
            dtype, shape = specs[name]
            size = dtype.itemsize * int(torch.Size(shape).numel())
            header[name] = {"dtype": _CODES[dtype][0], "shape": list(shape), "data_offsets": [offset, offset + size]}
            self._where[name] = (offset, dtype, tuple(shape))
            offset += size
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        text += b" " * (-len(text) % 8)
        self._start = 8 + len(text)
        self._pending = set(specs)
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.ftruncate(self._fd, self._start + offset)
            self._pwrite(struct.pack("<Q", len(text)) + text, 0)
        except BaseException:
            os.close(self._fd)
            raise

    def _pwrite(self, data, offset: int) -> None:
        view = memoryview(data).cast("B")
        while view:
            n = os.pwrite(self._fd, view, offset)
            view, offset = view[n:], offset + n

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Store ``tensor`` (on the CPU, of its declared dtype and shape) under ``name``."""
        offset, dtype, shape = self._where[name]
        if tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise ValueError(f"{name}: declared {dtype} {shape}, got {tensor.dtype} {tuple(tensor.shape)}")
        self._pwrite(tensor.contiguous().view(torch.uint8).numpy(), self._start + offset)
        with self._lock:
            self._pending.discard(name)

    def close(self) -> None:
        os.close(self._fd)
        if self._pending:
            raise RuntimeError(f"{len(self._pending)} tensors were never written, e.g. {min(self._pending)}")

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
        else:
            os.close(self._fd)


def pad_rank(delta: LowRank, rank: int) -> LowRank:
    """Zero-pad B's columns and A's rows to ``rank``; B·A is unchanged."""
    extra = rank - delta.rank
    if extra <= 0:
        return delta
    return LowRank(
        torch.nn.functional.pad(delta.B, (0, extra)), torch.nn.functional.pad(delta.A, (0, 0, 0, extra)), delta.scale
    )


class AdapterWriter:
    """A PEFT LoRA adapter with one uniform rank and scale 1, written module by module.

    Every module is zero-padded to ``rank`` and ``lora_alpha = r``, so PEFT's scale α/r is exactly
    1: the file holds B' and A' with B'·A' = ΔW, loadable by PeftModel and by multi-LoRA servers that
    expect one rank per adapter.
    """

    def __init__(
        self,
        out: Path,
        shapes: Mapping[str, tuple[int, int]],
        rank: int,
        template_config: dict,
        dtype: torch.dtype = torch.float32,
    ):
        self.out, self.rank, self.dtype, self.modules = out, rank, dtype, sorted(shapes)
        self._config = template_config
        specs = {}
        for name, (d, k) in shapes.items():
            specs[f"{PEFT_PREFIX}{name}.lora_A.weight"] = (dtype, (rank, k))
            specs[f"{PEFT_PREFIX}{name}.lora_B.weight"] = (dtype, (d, rank))
        self._file = SafetensorsWriter(out / WEIGHTS_NAME, specs, {"format": "pt"})

    def write(self, name: str, delta: LowRank) -> None:
        """Store one module's update (padded to the rank, the scale folded into B, cast to the dtype)."""
        delta = pad_rank(delta, self.rank).folded()
        self._file.write(f"{PEFT_PREFIX}{name}.lora_A.weight", delta.A.to("cpu", self.dtype))
        self._file.write(f"{PEFT_PREFIX}{name}.lora_B.weight", delta.B.to("cpu", self.dtype))

    def write_factors(self, name: str, B: torch.Tensor, A: torch.Tensor) -> None:
        """Store factors already in the file's dtype and rank, on the CPU (no copy)."""
        self._file.write(f"{PEFT_PREFIX}{name}.lora_A.weight", A)
        self._file.write(f"{PEFT_PREFIX}{name}.lora_B.weight", B)

    def __enter__(self) -> AdapterWriter:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        self._file.__exit__(exc_type, *rest)
        if exc_type is None:
            config = {
                k: v
                for k, v in self._config.items()
                if k
                not in (
                    "rank_pattern",
                    "alpha_pattern",
                    "use_rslora",
                    "r",
                    "lora_alpha",
                    "target_modules",
                    "layers_to_transform",
                    "layers_pattern",
                    "lora_dropout",
                )
            }
            config.update(
                peft_type="LORA",
                r=self.rank,
                lora_alpha=self.rank,
                use_rslora=False,
                rank_pattern={},
                alpha_pattern={},
                lora_dropout=0.0,
                target_modules=self.modules,
                inference_mode=True,
                use_dora=False,
                modules_to_save=None,
            )
            (self.out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_adapter(
    out: Path, modules: dict[str, LowRank], template_config: dict, dtype: torch.dtype = torch.float32
) -> None:
    """Save merged updates held in memory as a PEFT LoRA adapter (see :class:`AdapterWriter`),
    padded to their largest rank."""
    rank = max(d.rank for d in modules.values())
    with AdapterWriter(out, {name: d.shape for name, d in modules.items()}, rank, template_config, dtype) as writer:
        for name, delta in modules.items():
            writer.write(name, delta)


MODEL_FILES_TO_COPY = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)


def write_full_model(
    out: Path,
    base: Path,
    delta_for: Callable[[str], torch.Tensor | None],
    module_names: list[str],
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
        raise InputError(
            f"base model {base} has only pickled weights; pickles can run code and are refused",
            "convert the base model to safetensors",
        )
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
                        raise InputError(
                            f"delta for {module} has shape {tuple(delta.shape)} but the base weight "
                            f"is {tuple(t.shape)}",
                            "merge adapters trained on this base model",
                        )
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
