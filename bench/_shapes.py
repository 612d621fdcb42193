"""Random Qwen3 models of real shapes for the train/generate benches (imported by them; runs nothing).

The character tokenizer keeps the vocabulary tiny, so a shape's parameter count is the transformer
body's (Qwen3-8B: ~6.95B of its 8.2B; the rest is the 151,936-token embedding and head).
"""

from __future__ import annotations

import random
from pathlib import Path

# name: (hidden, layers, intermediate, heads, kv heads, head_dim)
SHAPES = {
    "tiny": (128, 4, 256, 4, 2, 32),
    "50m": (512, 12, 1536, 8, 4, 64),
    "350m": (1024, 24, 3072, 16, 8, 64),
    "qwen3-8b": (4096, 36, 12288, 32, 8, 128),
}


def build(
    path: Path, shape: str, max_positions: int = 4096, seed: int = 0, vocab_size: int | None = None, tied: bool = True
) -> Path:
    """Save a random model of ``shape``: built on the GPU in bf16 when there is one (an 8B model in seconds),
    else on the CPU in fp32. ``vocab_size`` (default: the character tokenizer's) and ``tied`` give a real
    model's embedding and head, for memory figures (the tokenizer uses the first ids only)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from deltahub.tiny import char_tokenizer

    hidden, layers, inter, heads, kv, head_dim = SHAPES[shape]
    tok = char_tokenizer()
    cfg = Qwen3Config(
        vocab_size=max(vocab_size or 0, len(tok)),
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tied,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    cuda = torch.cuda.is_available()
    torch.manual_seed(seed)
    with torch.device("cuda" if cuda else "cpu"):
        model = Qwen3ForCausalLM._from_config(cfg, dtype=torch.bfloat16 if cuda else torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    del model
    if cuda:
        torch.cuda.empty_cache()
    return Path(path)


def params(shape: str) -> float:
    """Parameters of the transformer body (the benches' models), in billions."""
    hidden, layers, inter, heads, kv, head_dim = SHAPES[shape]
    attn = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2
    return layers * (attn + 3 * hidden * inter) / 1e9


def text(rng: random.Random, n: int) -> str:
    """``n`` characters (= tokens with the character tokenizer) of lowercase words."""
    words = []
    while sum(len(w) + 1 for w in words) < n:
        words.append("".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 7))))
    return " ".join(words)[:n]
