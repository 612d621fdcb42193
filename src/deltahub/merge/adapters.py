"""Reading PEFT LoRA adapter folders as per-module low-rank updates, lazily.

An adapter is read module by module from its safetensors file, so merging N adapters holds one
module's factors per adapter at a time, never N whole adapters. The factors are zero-copy views of
the memory-mapped file in their stored dtype: no copy, no conversion and no NaN/Inf pass at read
time (#16: those three passes were 90% of a merge's time). A NaN or Inf shows up in the Gram
matrix that every factor-space method computes anyway; :func:`check_finite` is the exact test for
the rest.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import AdapterError
from ..weights import read_adapter_config, tensor_names
from .lowrank import LowRank

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_NAMES = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth", "pytorch_model.bin")
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>A|B)(?:\.[^.]+)?\.weight$")


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's rule for ``rank_pattern``/``alpha_pattern``: the first key whose regex matches a
    suffix of the module name (``(.*\\.)?(key)$``)."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
_PAGE = mmap.PAGESIZE


class MappedSafetensors:
    """A safetensors file mapped into memory (private, read-only in practice): tensors are views.

    safetensors' own ``get_tensor`` also maps the file but costs ~0.3 ms a tensor (2,016 tensors in
    an N=4 8B merge); here a view is a slice. Pages a merge has finished with are handed back
    (:meth:`release`), so the resident memory stays one chunk of modules, not the whole file.
    """

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise AdapterError(f"{path} is not a safetensors file (too short)", "re-export the adapter")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # writable view, never written
        (n,) = struct.unpack("<Q", self._map[:8])
        if not 8 + n <= size:
            raise AdapterError(f"{path} is not a safetensors file (bad header length)", "re-export the adapter")
        try:
            header = json.loads(self._map[8 : 8 + n])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AdapterError(f"{path} has a corrupt safetensors header", "re-export the adapter") from exc
        self._start = 8 + n
        self._bytes = torch.frombuffer(self._map, dtype=torch.uint8)
        self._entries = {k: v for k, v in header.items() if k != "__metadata__"}
        for key in self._entries:
            self._span(key)  # validate every entry once: offsets inside the file, size = shape x dtype

    def _span(self, key: str) -> tuple[int, int, torch.dtype, list[int]]:
        e = self._entries[key]
        dtype = _DTYPES.get(e.get("dtype"))
        shape, offsets = e.get("shape"), e.get("data_offsets")
        if dtype is None:
            raise AdapterError(
                f"{self.path}: tensor {key} has dtype {e.get('dtype')}, not a float type",
                "LoRA factors must be float32, bfloat16, float16 or float64",
            )
        valid = (
            isinstance(shape, list)
            and all(isinstance(x, int) and x >= 0 for x in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(x, int) for x in offsets)
        )
        begin, end = (self._start + offsets[0], self._start + offsets[1]) if valid else (0, -1)
        if (
            not valid
            or not self._start <= begin <= end <= len(self._map)
            or end - begin != math.prod(shape) * dtype.itemsize
        ):
            raise AdapterError(f"{self.path}: tensor {key} has an inconsistent header entry", "re-export the adapter")
        return begin, end, dtype, shape

    def shape(self, key: str) -> list[int]:
        return list(self._entries[key]["shape"])

    def tensor(self, key: str) -> torch.Tensor:
        """The stored tensor as a view of the mapping (a copy only if the file misaligns it)."""
        begin, end, dtype, shape = self._span(key)
        raw = self._bytes[begin:end]
        if begin % dtype.itemsize:
            raw = raw.clone()
        return raw.view(dtype).view(shape)

    def release(self, keys: Iterable[str]) -> None:
        """Drop these tensors' pages from this process (the page cache keeps them): the views stay
        valid and fault the data back in if read again."""
        for key in keys:
            begin, end, _, _ = self._span(key)
            first = -(-begin // _PAGE) * _PAGE  # whole pages inside the tensor only
            if end - first >= _PAGE:
                self._map.madvise(mmap.MADV_DONTNEED, first, (end - first) // _PAGE * _PAGE)


def nonfinite_error(where: str | Path, module: str) -> AdapterError:
    """The one error for NaN/Inf factors, naming the adapter and the module."""
    return AdapterError(
        f"{where}: module {module} has NaN or Inf in its LoRA factors",
        "the adapter is corrupt or training diverged; retrain or drop it",
    )


def check_finite(delta: LowRank) -> bool:
    """Whether every factor entry is finite: a sum is non-finite if any entry is (``isfinite`` on
    bf16 is ~50x slower), confirmed exactly only then (a sum can overflow)."""
    return all(
        bool(torch.isfinite(t.sum(dtype=torch.float64))) or bool(torch.isfinite(t).all()) for t in (delta.B, delta.A)
    )


@dataclass
class LoraAdapter:
    """A PEFT LoRA adapter folder; ``modules`` maps base weight names (without ``.weight``) to
    their :class:`LowRank` update (factors as stored, LoRA scale alongside), read on access."""

    path: Path
    config: dict
    keys: dict[str, tuple[str, str]] = field(repr=False)  # module -> (key of A, key of B)
    _handle: object = field(default=None, repr=False, compare=False)

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model_name_or_path")

    @property
    def module_names(self) -> list[str]:
        return list(self.keys)

    @property
    def name(self) -> str:
        return self.path.name

    def scale(self, module: str, rank: int) -> float:
        """α/r (or α/√r with rsLoRA), with PEFT's per-module ``rank_pattern``/``alpha_pattern``."""
        alpha = _pattern_value(self.config.get("alpha_pattern") or {}, module, self.config.get("lora_alpha", 8))
        r = _pattern_value(self.config.get("rank_pattern") or {}, module, self.config.get("r", rank))
        if r != rank:
            raise AdapterError(
                f"{self.path}: module {module} has rank {rank} but the config says {r}",
                "the adapter's weights and adapter_config.json disagree; re-export the adapter",
            )
        return alpha / math.sqrt(r) if self.config.get("use_rslora") else alpha / r

    def _open(self) -> MappedSafetensors:
        if self._handle is None:  # mapped once: parsing the header per module dominated reads
            self._handle = MappedSafetensors(self.path / WEIGHTS_NAME)
        return self._handle

    def rank(self, name: str) -> int:
        """The module's LoRA rank, from the tensor header (no factor is read)."""
        return self._open().shape(self.keys[name][0])[0]

    def shape(self, name: str) -> tuple[int, int]:
        """(out, in) features of the module's weight, from the tensor headers (no factor is read)."""
        key_a, key_b = self.keys[name]
        return self._open().shape(key_b)[0], self._open().shape(key_a)[-1]

    def module(self, name: str) -> LowRank:
        """The module's update scale·B·A, the factors as stored (views of the mapped file, any
        float dtype). Reading never writes: the scale stays a number beside the factors (an
        in-place ``B.mul_(scale)`` here once made every later read of the module scale it again)."""
        key_a, key_b = self.keys[name]
        handle = self._open()
        A, B = handle.tensor(key_a), handle.tensor(key_b)
        if B.ndim != 2 or A.ndim != 2 or B.shape[1] != A.shape[0]:
            raise AdapterError(
                f"{self.path}: module {name} is not a linear LoRA layer (A {tuple(A.shape)}, B {tuple(B.shape)})",
                "only LoRA on linear layers can be merged",
            )
        return LowRank(B, A, self.scale(name, A.shape[0]))

    def release(self, names: Iterable[str]) -> None:
        """Hand back the memory pages of these modules' factors (see :class:`MappedSafetensors`)."""
        self._open().release(key for name in names if name in self.keys for key in self.keys[name])

    @property
    def modules(self) -> Mapping[str, LowRank]:
        return _LazyModules(self)


class _LazyModules(Mapping):
    def __init__(self, adapter: LoraAdapter):
        self._adapter = adapter

    def __getitem__(self, name: str) -> LowRank:
        if name not in self._adapter.keys:
            raise KeyError(name)
        return self._adapter.module(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapter.keys)

    def __len__(self) -> int:
        return len(self._adapter.keys)


def load_adapter(path: str | Path) -> LoraAdapter:
    """Open and check a PEFT LoRA adapter folder (config and tensor names; tensors load lazily)."""
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(f"adapter folder {path} does not exist", "pass a PEFT adapter folder or a Hub repo id")
    config = read_adapter_config(path)  # malformed JSON or a JSON list: a one-line error
    if config is None:
        raise AdapterError(
            f"{path} has no {CONFIG_NAME}: not a PEFT adapter folder",
            "pass the folder written by save_pretrained() of a PeftModel",
        )
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise AdapterError(
            f"{path} is a {peft_type or 'unknown'} adapter; only LoRA adapters can be merged",
            "train the delta as a LoRA adapter",
        )
    if config.get("use_dora"):
        raise AdapterError(
            f"{path} is a DoRA adapter: its magnitude vector is not a low-rank delta and cannot be merged here",
            "train the delta with plain LoRA (use_dora=False)",
        )
    if config.get("modules_to_save"):
        raise AdapterError(
            f"{path} also trains full modules ({', '.join(config['modules_to_save'])}) via modules_to_save",
            "train the delta without modules_to_save so it is a pure LoRA delta",
        )
    if config.get("lora_bias"):
        raise AdapterError(
            f"{path} trains LoRA biases (lora_bias=True), which are not low-rank", "train without lora_bias"
        )
    weights = path / WEIGHTS_NAME
    if not weights.exists():
        pickled = [n for n in PICKLE_NAMES if (path / n).exists()]
        if pickled:
            raise AdapterError(
                f"{path} has only pickled weights ({pickled[0]}); pickles can run code and are refused",
                "convert the adapter to safetensors (save_pretrained(..., safe_serialization=True))",
            )
        raise AdapterError(f"{path} has no {WEIGHTS_NAME}", "pass a complete PEFT adapter folder")
    names = tensor_names(weights, "adapter weights", "re-download or re-export the adapter (the file is damaged)")
    parts: dict[str, dict[str, str]] = {}
    for key in names:
        m = _KEY.match(key)
        if m is None:
            if "lora_embedding" in key or "lora_magnitude" in key:
                raise AdapterError(
                    f"{path}: tensor {key} is not a linear LoRA factor",
                    "only LoRA on linear layers (no embedding LoRA, no DoRA) can be merged",
                )
            raise AdapterError(
                f"{path}: unexpected tensor {key} in {WEIGHTS_NAME}",
                "the adapter holds weights other than LoRA factors; remove them or retrain",
            )
        parts.setdefault(m["module"], {})[m["part"]] = key
    incomplete = [mod for mod, p in parts.items() if set(p) != {"A", "B"}]
    if incomplete:
        raise AdapterError(f"{path}: module {incomplete[0]} lacks its lora_A or lora_B tensor", "re-export the adapter")
    if not parts:
        raise AdapterError(f"{path}: {WEIGHTS_NAME} holds no LoRA factors", "pass a trained LoRA adapter")
    keys = {mod: (p["A"], p["B"]) for mod, p in sorted(parts.items(), key=lambda kv: _natural_key(kv[0]))}
    return LoraAdapter(path=path, config=config, keys=keys)


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
