"""Settings of one generation run: the single source of each sampling, batching and placement setting.

The ``deltahub generate`` options, a recipe's ``generation:`` section, the resume fingerprint and the
``generation`` block of the pairs' ``deltahub.json`` all derive from :class:`GenerationSettings`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from ..settings import Settings, setting


class GenerationSettings(Settings):
    """Sampling, batching and placement, the same for both models (greedy by default, as the delta-learning
    generator)."""

    temperature: float = setting(0.0, "Sampling temperature; 0 = greedy.", ge=0)
    top_p: float = setting(1.0, "Nucleus sampling mass.", gt=0, le=1)
    max_new_tokens: int = setting(256, "Answer length limit in tokens.", ge=1)
    seed: int = setting(0, "Sampling seed (each batch is seeded from it, so a resumed run matches).")
    batch_size: int = setting(16, "Prompts per generate call (= per shard on disk).", ge=1)
    system_prompt: str | None = setting(None, "System turn prepended to every conversation.")
    enable_thinking: bool | None = setting(None, "Passed to Qwen3-style chat templates.", off_flag="--disable-thinking")
    device: Literal["auto", "cpu", "cuda"] = setting(
        "auto",
        "transformers backend: where the model runs; auto = the GPU when one is visible (several: "
        "device_map=auto spreads the model over them; under torchrun/accelerate launch each process takes one).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting(
        "auto",
        "Weights dtype; auto = bfloat16 on a GPU (float16 where bf16 is unsupported), the checkpoint's dtype on CPU.",
    )
    tensor_parallel_size: int = setting(1, "vLLM only: GPUs per model.", ge=1)
    data_parallel_size: int = setting(1, "vLLM only: model replicas.", ge=1)
    gpu_memory_utilization: float = setting(0.9, "vLLM only: fraction of GPU memory to use.", gt=0, le=1)
    max_model_len: int | None = setting(None, "vLLM only: context length to reserve.", ge=1)
    extra: dict[str, Any] = setting(dict, "Backend keyword arguments, e.g. {vllm: {...}} (recipes only).", cli=False)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def provenance(self, backend: str) -> dict:
        """The ``generation`` block of ``deltahub.json``: every setting plus the backend that ran."""
        return {"backend": backend, **self.to_dict()}

    def chat_template_kwargs(self) -> dict:
        return {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-able settings (what a resumed run must share with the first)."""
    if isinstance(obj, Settings):
        obj = obj.to_dict()
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
