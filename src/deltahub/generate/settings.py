"""Settings of one generation run; their fingerprint guards resumption against changed settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass
class GenerationSettings:
    """Sampling and batching, the same for both models (greedy by default, as the delta-learning generator)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    batch_size: int = 16
    system_prompt: str | None = None
    enable_thinking: bool | None = None
    dtype: str = "auto"
    # vLLM only
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def provenance(self, backend: str) -> dict:
        return {"backend": backend, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed, "batch_size": self.batch_size,
                "system_prompt": self.system_prompt, "enable_thinking": self.enable_thinking}

    def chat_template_kwargs(self) -> dict:
        return {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}


def fingerprint(obj) -> str:
    """A short stable hash of JSON-able settings (what a resumed run must share with the first)."""
    if hasattr(obj, "__dataclass_fields__"):
        obj = asdict(obj)
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
