"""Tiny, offline Hugging Face models: a character-level tokenizer with a chat template and
small Qwen3-architecture models with random weights.

No model can be downloaded here, so tests, benchmarks and the toy world build their models from
configs. Everything saved is an ordinary Hugging Face folder that transformers, PEFT, TRL,
mergekit and vLLM load unchanged.
"""

from __future__ import annotations

import string
from pathlib import Path

# ChatML, the format of Qwen models; an assistant turn ends with <|im_end|>, which is also EOS.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + " +-=*/>?.,:;!'\"()[]\n"


def char_tokenizer(alphabet: str = ALPHABET):
    """A character-level ``PreTrainedTokenizerFast``: one token per character, ChatML template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in dict.fromkeys(alphabet):
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL_TOKENS)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>"
    )
    hf.chat_template = CHATML_TEMPLATE
    hf.padding_side = "left"
    return hf


def tiny_qwen3_config(
    vocab_size: int,
    hidden_size: int = 64,
    num_layers: int = 2,
    head_dim: int = 32,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 256,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
):
    """A Qwen3 config with ``head_dim`` >= 32 (vLLM's CPU kernels reject smaller heads)."""
    from transformers import Qwen3Config

    heads = max(1, hidden_size // head_dim)
    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=None,
    )


def build_tiny_model(
    path: str | Path,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    tokenizer=None,
    **config_kwargs,
) -> Path:
    """Save a randomly initialised tiny Qwen3 causal LM with its tokenizer to ``path``."""
    import torch
    from transformers import Qwen3ForCausalLM

    tok = tokenizer if tokenizer is not None else char_tokenizer()
    cfg = tiny_qwen3_config(
        len(tok), hidden_size, num_layers, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **config_kwargs
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    path = Path(path)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_random_adapter(
    base: str | Path,
    out: str | Path,
    r: int = 4,
    alpha: float = 8,
    seed: int = 0,
    target_modules: list[str] | str = "all-linear",
    std: float = 0.05,
    **lora_kwargs,
) -> Path:
    """Save a PEFT LoRA adapter on ``base`` with random, non-zero A and B factors.

    Training would give the same kind of folder; random factors make every module's delta
    non-trivial, which is what merge and registry tests need.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=r, lora_alpha=alpha, target_modules=target_modules, lora_dropout=0.0, task_type="CAUSAL_LM", **lora_kwargs
    )
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    out = Path(out)
    peft_model.save_pretrained(out)
    return out
