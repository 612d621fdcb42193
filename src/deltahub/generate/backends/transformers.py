"""transformers ``generate``, batched with left padding, on the GPU when one is visible (else the CPU).

Batches always cover the same prompt indices and sampling is seeded per batch, so a resumed run
produces exactly the tokens an uninterrupted one would. On a GPU the model loads in bf16 by default
(float16 where bf16 is unsupported); several GPUs share one model through ``device_map="auto"``.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError
from ...weights import check_safetensors
from . import ModelInfo, Response
from .common import prepare_model_source, require_chat_template

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Placement:
    """Where and in what precision a model runs: ``device_map`` for ``from_pretrained`` (None: the CPU)."""

    device: str  # "cpu", "cuda" or "cuda:auto" (spread over several GPUs), as the provenance records it
    device_map: str | None
    dtype: str  # "auto" (the checkpoint's) or one of DTYPES


def placement(device: str, dtype: str, gpus: int, bf16_capable: bool, local_rank: int | None = None) -> Placement:
    """Resolve the ``device``/``dtype`` settings for a machine with ``gpus`` visible GPUs; ``local_rank``: this
    process's index on its node when a launcher started several (each then takes one GPU of its own)."""
    if device == "cuda" and gpus == 0:
        raise InputError("device is 'cuda' but no GPU is visible here", "use --device cpu (or auto)")
    if device == "cpu" or (device == "auto" and gpus == 0):
        return Placement("cpu", None, dtype)
    if dtype == "auto":
        dtype = "bfloat16" if bf16_capable else "float16"
    if local_rank is not None:
        return Placement("cuda", f"cuda:{local_rank % gpus}", dtype)
    if gpus > 1:
        return Placement("cuda:auto", "auto", dtype)
    return Placement("cuda", "cuda:0", dtype)


def machine_placement(device: str, dtype: str) -> Placement:
    """:func:`placement` for this machine and launch."""
    import torch

    from ...distributed import current

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    launch = current()
    rank = launch.local_rank if launch.distributed else None
    return placement(device, dtype, gpus, bool(gpus and torch.cuda.is_bf16_supported()), rank)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


class TransformersBackend:
    name = "transformers"

    def __init__(self, settings):
        self.settings = settings
        self.model = None
        self.tokenizer = None
        self.model_id = None
        self.placement: Placement | None = None

    def load(self, model: str) -> ModelInfo:
        source = prepare_model_source(model)
        tok = self._tokenizer(model, source)
        where = machine_placement(self.settings.device, self.settings.dtype)
        m = self._model(model, source, where)
        self.model, self.tokenizer, self.model_id, self.placement = m, tok, model, where
        eos = m.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self.eos_ids = set(eos) | ({tok.eos_token_id} if tok.eos_token_id is not None else set())
        self.context = getattr(m.config, "max_position_embeddings", None)
        revision = None if Path(model).exists() else getattr(m.config, "_commit_hash", None)  # the commit loaded
        return ModelInfo(
            model,
            revision,
            sum(p.numel() for p in m.parameters()),
            device=where.device,
            dtype=str(m.dtype).removeprefix("torch."),
        )

    def _tokenizer(self, model: str, source: str):
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(source)
        except Exception as exc:
            raise InputError(
                f"cannot load the tokenizer of {model}: {_first_line(exc)}",
                "check the model id or folder (it needs tokenizer files)",
            ) from None
        require_chat_template(tok, model)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        return tok

    def _model(self, model: str, source: str, where: Placement):
        import torch
        from transformers import AutoModelForCausalLM

        if Path(source).is_dir():
            check_safetensors(
                sorted(Path(source).glob("*.safetensors")),
                "model weights",
                "re-download or re-save the model (the file is damaged)",
            )
        dtype = getattr(torch, where.dtype) if where.dtype in DTYPES else "auto"
        kwargs = {"device_map": where.device_map} if where.device_map else {}
        try:
            m = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, use_safetensors=True, trust_remote_code=False, **kwargs
            )
        except torch.OutOfMemoryError:
            raise InputError(
                f"model {model} does not fit in GPU memory ({where.dtype})",
                "use more GPUs (device_map=auto spreads one model over all visible ones), "
                "--dtype bfloat16, or --device cpu",
            ) from None
        except Exception as exc:
            raise InputError(
                f"cannot load model {model}: {_first_line(exc)}",
                "check the model id or folder (config.json + *.safetensors; pickled weights are refused)",
            ) from None
        return m.eval()

    def generate(self, conversations: list[list[dict]], first_index: int) -> list[Response]:
        """Answer one batch; ``first_index`` (the batch's first prompt index) seeds sampling."""
        import torch
        from transformers import GenerationConfig

        s, tok = self.settings, self.tokenizer
        enc = tok.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            return_tensors="pt",
            padding=True,
            return_dict=True,
            **s.chat_template_kwargs(),
        )
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        if self.context is not None:
            for j, n in enumerate(lengths):
                if n + s.max_new_tokens > self.context:
                    raise InputError(
                        f"prompt {first_index + j} has {n} tokens; with --max-new-tokens {s.max_new_tokens} it exceeds "
                        f"{self.model_id}'s context of {self.context} tokens",
                        "shorten or drop long prompts, or lower --max-new-tokens",
                    )
        kwargs = dict(max_new_tokens=s.max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=sorted(self.eos_ids))
        if s.greedy:
            gc_ = GenerationConfig(do_sample=False, **kwargs)
        else:
            gc_ = GenerationConfig(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=0, **kwargs)
            torch.manual_seed(s.seed * 1_000_003 + first_index)
        try:
            with torch.inference_mode():
                seqs = self.model.generate(**enc.to(self.model.device), generation_config=gc_)
        except torch.OutOfMemoryError:
            raise InputError(
                f"out of GPU memory generating a batch of {len(conversations)} with {self.model_id}",
                "lower --batch-size or --max-new-tokens (finished batches are kept; rerun to resume)",
            ) from None
        new = seqs[:, enc["input_ids"].shape[1] :].tolist()
        out = []
        for j, row in enumerate(new):
            stop = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
            ids = row if stop is None else row[:stop]
            text = tok.decode(ids, skip_special_tokens=True)
            out.append(
                Response(text, "length" if stop is None else "stop", lengths[j], len(ids) + (0 if stop is None else 1))
            )
        return out

    def close(self) -> None:
        self.model = self.tokenizer = None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
