"""The GPU backend: vLLM's offline ``LLM.chat`` (the model's own chat template), tensor/data parallel.

Per-request seeds make seeded sampling reproducible regardless of batching, so a resumed run
matches an uninterrupted one.
"""

from __future__ import annotations

import gc
import os

from ...errors import InputError
from . import ModelInfo, Response
from .common import local_revision, prepare_model_source, require_chat_template


class VLLMBackend:
    name = "vllm"

    def __init__(self, settings):
        self.settings = settings
        self.llm = None

    def load(self, model: str) -> ModelInfo:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from vllm import LLM

        s = self.settings
        source = prepare_model_source(model)
        kwargs = dict(
            model=source,
            dtype=s.dtype,
            seed=s.seed,
            tensor_parallel_size=s.tensor_parallel_size,
            gpu_memory_utilization=s.gpu_memory_utilization,
            trust_remote_code=False,
        )
        if s.data_parallel_size > 1:
            kwargs["data_parallel_size"] = s.data_parallel_size
        if s.max_model_len:
            kwargs["max_model_len"] = s.max_model_len
        import torch

        if not torch.cuda.is_available():
            kwargs["enforce_eager"] = True
        kwargs.update(s.extra.get("vllm", {}))
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:
            raise InputError(
                f"vLLM cannot load model {model}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                "check the model id/folder, --gpu-memory-utilization and --tensor-parallel-size",
            ) from exc
        tok = self.llm.get_tokenizer()
        require_chat_template(tok, model)
        self.tokenizer, self.model_id = tok, model
        self.context = self.llm.llm_engine.model_config.max_model_len
        return ModelInfo(
            model,
            local_revision(model),
            _param_count(source),
            device="cuda" if torch.cuda.is_available() else "cpu",
            dtype=s.dtype,
        )

    def generate(self, conversations: list[list[dict]], first_index: int) -> list[Response]:
        from vllm import SamplingParams

        s = self.settings
        for j, conv in enumerate(conversations):
            ids = self.tokenizer.apply_chat_template(
                conv, add_generation_prompt=True, tokenize=True, **s.chat_template_kwargs()
            )
            n = len(ids["input_ids"] if isinstance(ids, dict) else ids)
            if n + s.max_new_tokens > self.context:
                raise InputError(
                    f"prompt {first_index + j} has {n} tokens; with --max-new-tokens {s.max_new_tokens} it "
                    f"exceeds {self.model_id}'s context of {self.context} tokens",
                    "shorten or drop long prompts, or lower --max-new-tokens",
                )
        params = [
            SamplingParams(
                temperature=s.temperature,
                top_p=s.top_p if not s.greedy else 1.0,
                max_tokens=s.max_new_tokens,
                seed=s.seed * 1_000_003 + first_index + j,
            )
            for j in range(len(conversations))
        ]
        outs = self.llm.chat(
            conversations, params, use_tqdm=False, chat_template_kwargs=s.chat_template_kwargs() or None
        )
        result = []
        for o in outs:
            c = o.outputs[0]
            result.append(
                Response(
                    c.text,
                    "length" if c.finish_reason == "length" else "stop",
                    len(o.prompt_token_ids or []),
                    len(c.token_ids),
                )
            )
        return result

    def close(self) -> None:
        if self.llm is not None:
            try:
                self.llm.llm_engine.engine_core.shutdown()
            except Exception:
                pass
        self.llm = None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _param_count(source: str) -> int | None:
    """Parameter count from the safetensors headers of a local folder (vLLM hides its torch module)."""
    import json
    import struct
    from pathlib import Path

    files = sorted(Path(source).glob("*.safetensors")) if Path(source).is_dir() else []
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for key, meta in header.items():
            if key != "__metadata__":
                n = 1
                for d in meta["shape"]:
                    n *= d
                total += n
    return total
