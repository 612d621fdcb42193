"""The CPU default: transformers ``generate``, batched with left padding, fixed batch boundaries.

Batches always cover the same prompt indices and sampling is seeded per batch, so a resumed run
produces exactly the tokens an uninterrupted one would.
"""

from __future__ import annotations

import gc

from ...errors import InputError
from . import ModelInfo, Response
from .common import local_revision, prepare_model_source, require_chat_template


class TransformersBackend:
    name = "transformers"

    def __init__(self, settings):
        self.settings = settings
        self.model = None
        self.tokenizer = None
        self.model_id = None

    def load(self, model: str) -> ModelInfo:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = prepare_model_source(model)
        try:
            tok = AutoTokenizer.from_pretrained(source)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot load the tokenizer of {model}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                             "check the model id or folder (it needs tokenizer files)") from exc
        require_chat_template(tok, model)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(
            self.settings.dtype, "auto")
        try:
            m = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, use_safetensors=True, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot load model {model}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                             "check the model id or folder (config.json + *.safetensors; pickled weights are refused)") from exc
        m.eval()
        self.model, self.tokenizer, self.model_id = m, tok, model
        eos = m.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self.eos_ids = set(eos) | ({tok.eos_token_id} if tok.eos_token_id is not None else set())
        self.context = getattr(m.config, "max_position_embeddings", None)
        return ModelInfo(model, local_revision(model), sum(p.numel() for p in m.parameters()))

    def generate(self, conversations: list[list[dict]], first_index: int) -> list[Response]:
        """Answer one batch; ``first_index`` (the batch's first prompt index) seeds sampling."""
        import torch
        from transformers import GenerationConfig

        s, tok = self.settings, self.tokenizer
        enc = tok.apply_chat_template(conversations, add_generation_prompt=True, return_tensors="pt", padding=True,
                                      return_dict=True, **s.chat_template_kwargs())
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        if self.context is not None:
            for j, n in enumerate(lengths):
                if n + s.max_new_tokens > self.context:
                    raise InputError(
                        f"prompt {first_index + j} has {n} tokens; with --max-new-tokens {s.max_new_tokens} it exceeds "
                        f"{self.model_id}'s context of {self.context} tokens",
                        "shorten or drop long prompts, or lower --max-new-tokens")
        kwargs = dict(max_new_tokens=s.max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=sorted(self.eos_ids))
        if s.greedy:
            gc_ = GenerationConfig(do_sample=False, **kwargs)
        else:
            gc_ = GenerationConfig(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=0, **kwargs)
            torch.manual_seed(s.seed * 1_000_003 + first_index)
        with torch.inference_mode():
            seqs = self.model.generate(**enc, generation_config=gc_)
        new = seqs[:, enc["input_ids"].shape[1]:].tolist()
        out = []
        for j, row in enumerate(new):
            stop = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
            ids = row if stop is None else row[:stop]
            text = tok.decode(ids, skip_special_tokens=True)
            out.append(Response(text, "length" if stop is None else "stop", lengths[j],
                                len(ids) + (0 if stop is None else 1)))
        return out

    def close(self) -> None:
        self.model = self.tokenizer = None
        gc.collect()
