"""Generation backends with one output schema: vLLM on GPUs, transformers ``generate`` on CPU.

A backend loads one model at a time (``load``), answers a batch of conversations (``generate``)
and frees the model (``close``) before the next one is loaded, so one GPU holds one model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ...errors import InputError

BACKENDS = ("transformers", "vllm")


@dataclass
class Response:
    """One model answer: the text, why it stopped (``stop`` | ``length``) and token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class ModelInfo:
    """What the provenance records about a loaded model."""

    model: str
    revision: str | None
    params: int | None
    device: str | None = None  # where it ran: cpu, cuda, or cuda:auto (spread over several GPUs)
    dtype: str | None = None


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_backend(name: str = "auto") -> str:
    """``auto`` picks vLLM when it is importable and a GPU is visible, else transformers."""
    if name == "auto":
        if vllm_available():
            import torch

            if torch.cuda.is_available():
                return "vllm"
        return "transformers"
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}", f"use one of: auto, {', '.join(BACKENDS)}")
    if name == "vllm" and not vllm_available():
        raise InputError(
            "the vLLM backend is not installed",
            "pip install 'deltahub[vllm]' on a GPU machine, or use --backend transformers",
        )
    return name


def make_backend(name: str, settings):
    """An unloaded backend object for ``name`` (already resolved)."""
    if name == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(settings)
    from .transformers import TransformersBackend

    return TransformersBackend(settings)
